#!/usr/bin/env node
// Generates src/crypto/field25519.ts: GF(2^255-19) and the Montgomery ladder behind
// src/crypto/x25519.ts, as one function (`fengine`) around ONE unrolled multiplication and ONE
// unrolled squaring, on N limbs of radix 2^(255/N) held in doubles.
//
//   node devs/gen/x25519-field.mjs            writes src/crypto/field25519.ts (N = 12)
//   node devs/gen/x25519-field.mjs --check    fails when the committed file is stale
//   node devs/gen/x25519-field.mjs --n 13 --out devs/bench/device/alt/field-13.ts
//                                             an alternative for the bench (devs/bench/x25519.mjs)
//
// Why doubles (issue 17, measured side by side by devs/bench/x25519.mjs): the DeviceScript VM
// costs one bytecode instruction per operand load, operator and store, so a multiplication
// costs about 4 instructions per limb product, and int32 limbs must be 13 bits (400 products
// for 20 limbs). VM numbers are doubles, exact to 2^53: with 12 limbs of 21-22 bits a
// multiplication is 144 products, and the reduction by 19 is folded into the columns
// (unreduced high columns never exist). The int32 engine (devs/bench/device/alt/field-int32.ts,
// devs/gen/x25519-field-int32.mjs) did 4.85 M instructions per X25519; 13 limbs (169 products,
// alt/field-13.ts) 2.54 M; 12 limbs 2.27 M and the least time in the same bench runs. 11 limbs
// fail the exactness bound below (a column could reach 2^54.8).
//
// Representation (HEADER below repeats it in the generated file).
import { readFileSync, writeFileSync } from "node:fs"
import { join, dirname } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const argv = process.argv.slice(2)
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt)
const N = +opt("--n", "12")
const OUT = opt("--out", join("src", "crypto", "field25519.ts"))

// limb i sits at bit P[i] = ceil(255 i / N) and is W[i] = P[i + 1] - P[i] bits wide
const P = Array.from({ length: N + 1 }, (_, i) => Math.ceil((255 * i) / N))
const W = Array.from({ length: N }, (_, i) => P[i + 1] - P[i])
// a[i] * b[j] lands in column (i + j) mod N with factor 2^e * (19 if it wrapped past 2^255)
function factor(i, j) {
    const k = (i + j) % N
    const wrap = i + j >= N
    const e = P[i] + P[j] - P[k] - (wrap ? 255 : 0)
    if (e !== 0 && e !== 1) throw new Error(`excess ${e} at ${i},${j}`)
    return (1 << e) * (wrap ? 19 : 1)
}
// round-to-nearest of x for |x| < 2^51: (x + RND) - RND
const RND = "6755399441055744" // 1.5 * 2^52
const A24P1 = 121666 // a24 + 1: AA + a24 E = BB + (a24 + 1) E

// st layout (shared with src/crypto/x25519.ts through the exported constants)
const X1 = 0
const X2 = N
const Z2 = 2 * N
const X3 = 3 * N
const Z3 = 4 * N
const SWAP = 5 * N
const CTL = 5 * N + 1
const TMP = 5 * N + 4
const ST_LEN = TMP + 4 * N

const range = n => Array.from({ length: n }, (_, i) => i)
const names = p => range(N).map(i => p + i)

// Bound bookkeeping: the largest |limb| a core produces (balanced digits after the carry chain,
// limbs 0 and 1 a little more from the fold of the top carry), of a sum of two, and the largest
// column a core can build from operands of that size. Checked below: every value stays an
// integer below 2^53 in magnitude, so every double operation is exact.
const OUT_MAX = W.map(w => 2 ** (w - 1))
let IN_MAX = OUT_MAX.map(v => 2 * v) // a sum or difference of two core outputs
function mulColumnBound() {
    let worst = 0
    for (let k = 0; k < N; k++) {
        let s = 0
        for (let i = 0; i < N; i++) {
            const j = (k - i + N) % N
            s += factor(i, j) * IN_MAX[i] * IN_MAX[j]
        }
        worst = Math.max(worst, s)
    }
    return worst
}

// Column k of a*b: products grouped by factor, each group one sum times its factor.
function colMul(a, b, k) {
    const groups = new Map()
    for (let i = 0; i < N; i++) {
        const j = (k - i + N) % N
        const f = factor(i, j)
        if (!groups.has(f)) groups.set(f, [])
        groups.get(f).push(`${a[i]} * ${b[j]}`)
    }
    return joinGroups(groups)
}
// Column k of a^2: cross terms twice (a factor 2 more), squares once.
function colSqr(a, k) {
    const groups = new Map()
    for (let i = 0; i < N; i++) {
        const j = (k - i + N) % N
        if (j < i) continue
        const f = factor(i, j) * (i === j ? 1 : 2)
        if (!groups.has(f)) groups.set(f, [])
        groups.get(f).push(`${a[i]} * ${a[j]}`)
    }
    return joinGroups(groups)
}
function joinGroups(groups) {
    const parts = []
    for (const [f, terms] of [...groups].sort((x, y) => x[0] - y[0])) {
        const sum = terms.join(" + ")
        parts.push(f === 1 ? sum : `${f} * ${terms.length > 1 ? "(" + sum + ")" : sum}`)
    }
    return parts.join(" + ")
}

// Carry chain over the columns into balanced digits: u the column plus the carry in, v its
// carry out (round to nearest, exact: |u| < 2^53 and u * 2^-W is exact), o = u - v * 2^W in
// [-2^(W-1), 2^(W-1)]. The carry out of the top limb has weight 2^255 = 19 (mod p): folded
// into limb 0, whose carry goes into limb 1.
function reduce(col, o) {
    const s = []
    for (let k = 0; k < N; k++) {
        s.push(`u = ${col(k)}${k === 0 ? "" : " + v"}`)
        s.push(`v = (u * ${2 ** -W[k]} + ${RND}) - ${RND}`)
        s.push(`${o[k]} = u - v * ${2 ** W[k]}`)
    }
    s.push(`u = ${o[0]} + 19 * v`)
    s.push(`v = (u * ${2 ** -W[0]} + ${RND}) - ${RND}`)
    s.push(`${o[0]} = u - v * ${2 ** W[0]}`)
    s.push(`${o[1]} = ${o[1]} + v`)
    return s
}

const mulStmts = (o, a, b) => {
    for (const x of o) if (a.includes(x) || b.includes(x)) throw new Error("output aliases input")
    return reduce(k => colMul(a, b, k), o)
}
const sqrStmts = (o, a) => {
    for (const x of o) if (a.includes(x)) throw new Error("output aliases input")
    return reduce(k => colSqr(a, k), o)
}
const copy = (o, a) => range(N).map(i => `${o[i]} = ${a[i]}`)
const sub = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} - ${b[i]}`)
const add = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} + ${b[i]}`)
// o = a ^ (m & (a ^ b)): a when m = 0, b when m = -1 (limbs are small integers: exact in int32)
const sel = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} ^ (m & (${a[i]} ^ ${b[i]}))`)
// y = y + 121666 * x, carried in place (column k reads only limb k)
const addMulA24 = (y, x) => reduce(k => `${y[k]} + ${A24P1} * ${x[k]}`, y)
const at = (base, i) => (typeof base === "number" ? `st[${base + i}]` : `st[${base}${i ? " + " + i : ""}]`)
const loadAt = (v, base) => range(N).map(i => `${v[i]} = ${at(base, i)}`)
const storeAt = (base, v) => range(N).map(i => `${at(base, i)} = ${v[i]}`)
const body = (stmts, ind) => stmts.map(s => ind + s).join("\n")

// the bound argument, checked (generation fails if a column could leave the exact range): the
// top limb's carry out is at most (column + carry in) / 2^W + 1/2; 19 times it goes into limb 0,
// whose carry (at most (2^(W0-1) + 19 * top) / 2^W0 + 1/2) makes limb 1 larger than a balanced
// digit. Iterated to a fixed point because limb 1's bound feeds the columns.
let COL = 0
for (let it = 0; it < 4; it++) {
    COL = mulColumnBound()
    const top = (COL + COL / 2 ** W[N - 1]) / 2 ** W[N - 1] + 0.5
    const carry0 = (2 ** (W[0] - 1) + 19 * top) / 2 ** W[0] + 0.5
    OUT_MAX[1] = 2 ** (W[1] - 1) + carry0
    IN_MAX = OUT_MAX.map(v => 2 * v)
}
COL = mulColumnBound()
if (!(COL < 2 ** 53)) throw new Error(`N = ${N}: a column can reach ${COL} >= 2^53`)
if (!(COL / 2 ** Math.min(...W) < 2 ** 50)) throw new Error(`N = ${N}: a carry can leave the rounding trick's range`)
const A24_MAX = Math.max(...OUT_MAX) + A24P1 * Math.max(...IN_MAX)
const fmt = v => Math.round(v).toLocaleString("en-US")

const HEADER = `// GENERATED by devs/gen/x25519-field.mjs: do not edit; change the generator and rerun
// \`node devs/gen/x25519-field.mjs${N === 12 ? "" : " --n " + N + " --out ..."}\`.
//
// GF(2^255 - 19) for X25519 (RFC 7748) on the DeviceScript VM, and the Montgomery ladder, on
// ${N} limbs in doubles (VM numbers are doubles: integers are exact up to 2^53).
//
// Cost (issue 17, devs/bench/x25519.mjs counts it with the VM's own instruction counter and
// times it next to the int32 engine it replaced, 20 limbs of 13 bits, 4.85 M instructions):
// a multiplication is ${N * N} limb products (4 instructions each: two loads, multiply, add)
// where the int32 engine had 400, and the reduction by 19 is folded into the columns.
//
// Representation: limb i sits at bit P[i] = ceil(255 i / ${N}) (${P.slice(0, N).join(", ")}),
// widths ${W.join(", ")}; value = sum l[i] * 2^P[i] mod p, p = 2^255 - 19. A product
// a[i] * b[j] belongs to column (i + j) mod ${N} with factor 2^e (e = P[i] + P[j] - P[col], 0
// or 1) times 19 when i + j >= ${N} (2^255 = 19 mod p). Core outputs are balanced digits,
// |l[i]| <= 2^(W[i] - 1), except limb 1: at most ${fmt(OUT_MAX[1])}, from the fold of the top carry.
//
// Exactness (checked by the generator, which refuses to write a file that violates it): core
// operands are sums or differences of two outputs, |l[i]| <= 2^W[i] (+ the fold); a column,
// the sum of its products times their factors, is then at most ${fmt(COL)} < 2^53 =
// 9,007,199,254,740,992 in magnitude, and so is every partial sum, so every product and sum is
// exact. a24: y + 121666 * x is at most ${fmt(A24_MAX)}. The carry of u is round(u / 2^W)
// computed as (u * 2^-W + 1.5 * 2^52) - 1.5 * 2^52: exact for |u * 2^-W| < 2^51 (the
// scaling by a power of two is exact, the addition rounds to the nearest integer, the
// subtraction is exact), and the digit u - carry * 2^W is exact and balanced.
//
// Constant time: straight-line cores (double multiplications and additions; no branch and no
// table depends on a secret); the loop and its branches depend only on the phase counter and
// the mode (public); the conditional swap is a mask (0 or -1) and XOR on small integers; the
// scalar bit is read at an index that depends only on the (public) bit position.
//
// st layout (number[], shared with src/crypto/x25519.ts): x1 at ${X1}, x2 at ${X2}, z2 at
// ${Z2}, x3 at ${X3}, z3 at ${Z3} (${N} limbs each), the pending swap bit at ${SWAP}, the
// field-mode operand offsets at ${CTL}..${CTL + 2}, temporaries from ${TMP}.
`

// The ladder step as 5 phases (as in the int32 engine). Registers: X, Y (multiplication inputs),
// O (its output), S (the squaring's input), Q (its output), F, G. In each phase: moves, then
// Q = S^2 (phases 0..3), then O = X * Y. State between steps: x2 in G, z2 in S, x3 in F, z3 in O.
// Only the doubling's input is selected by the swap bit: the differential addition is symmetric
// in its two points (swapping them swaps DA and CB, leaving DA + CB and (DA - CB)^2 unchanged).
function phases(R) {
    const { X, Y, O, S, Q, F, G } = R
    return [
        // 0: A = x2 + z2 -> Y, D = x3 - z3 -> X, B -> G, C -> F; S = A or C. Q = AA, O = DA
        [
            "u = (k[t >> 3] >> (t & 7)) & 1", // k_t
            "m = 0 - (sw ^ u)", // mask of swap ^ k_t
            "sw = u",
            ...add(Y, G, S),
            ...sub(X, F, O),
            ...sub(G, G, S),
            ...add(F, F, O),
            ...sel(S, Y, F),
        ],
        // 1: S = B or D; X = C, Y = B; save AA -> G, DA -> F. Q = BB, O = CB
        [...sel(S, G, X), ...copy(Y, G), ...copy(X, F), ...copy(G, Q), ...copy(F, O)],
        // 2: S = DA + CB, F = DA - CB, X = AA, Y = BB. Q = x3', O = x2' = AA * BB
        [...add(S, F, O), ...sub(F, F, O), ...copy(X, G), ...copy(Y, Q)],
        // 3: S = DA - CB; save x3' -> F, x2' -> G; X = E = AA - BB, Y = AA + a24 E.
        //    Q = (DA - CB)^2, O = z2' = E * (AA + a24 E)
        [...copy(S, F), ...copy(F, Q), ...copy(G, O), ...sub(X, X, Y), ...addMulA24(Y, X)],
        // 4: save z2' -> S; Y = (DA - CB)^2, X = x1. O = z3' (no squaring)
        [...copy(S, O), ...copy(Y, Q), ...loadAt(X, X1)],
    ]
}

function generate() {
    const R = { X: names("x"), Y: names("y"), O: names("o"), S: names("s"), Q: names("q"), F: names("f"), G: names("g") }
    const { X, Y, O, S, Q, F, G } = R
    const regs = [X, Y, O, S, Q, F, G].flat()
    const ph = phases(R)
    const I3 = "            "
    const out = [HEADER]
    out.push(`/** Limbs per field element. */
export const LIMBS = ${N}
/** Bit position of each limb (limb i holds bits LIMB_POS[i] .. LIMB_POS[i + 1] - 1). */
export const LIMB_POS = [${P.join(", ")}]
/** st index of x1, x2, z2, x3, z3 and the pending swap bit. */
export const ST_X1 = ${X1}
export const ST_X2 = ${X2}
export const ST_Z2 = ${Z2}
export const ST_X3 = ${X3}
export const ST_Z3 = ${Z3}
export const ST_SWAP = ${SWAP}
/** st index of the field-mode operand offsets (out, a, b). */
export const ST_CTL = ${CTL}
/** st index of the first of four free temporaries of LIMBS each. */
export const ST_TMP = ${TMP}
/** Length of st. */
export const ST_LEN = ${ST_LEN}
/** fengine mode (t argument): n squarings, st[out..] = st[a..]^(2^n). */
export const MODE_SQR = -1
/** fengine mode (t argument): st[out..] = st[a..] * st[b..]. */
export const MODE_MUL = -2
`)
    out.push(`/**
 * The field engine. t >= 0: n ladder steps for scalar bits t, t - 1, ..., t - n + 1 (RFC 7748
 * section 5) on the state in st (see the layout above; k is the clamped scalar). t = MODE_SQR:
 * n squarings, t = MODE_MUL: one multiplication, of the elements at the offsets in
 * st[ST_CTL..ST_CTL + 2] (out, a, b; out may alias a or b), k unused. Outputs are core outputs
 * (balanced digits); inputs must be core outputs or unpacked values (digits of width W).
 */
export function fengine(st: number[], k: Buffer, t: number, n: number): void {
    // registers (no initializers: every path assigns a register before reading it)
    let ${regs.map(r => r + "!: number").join(", ")}
    let u = 0, v = 0, m = 0, sw = 0, ph = 0
    if (t >= 0) {
        // ladder: x2 -> G, z2 -> S, x3 -> F, z3 -> O
${body([...loadAt(G, X2), ...loadAt(S, Z2), ...loadAt(F, X3), ...loadAt(O, Z3)], "        ")}
        sw = st[${SWAP}]
        n = 5 * n
    } else {
        m = st[${CTL}] // output offset (m is not touched by the cores)
        u = st[${CTL + 1}]
        v = st[${CTL + 2}]
        if (t === ${-1}) {
            ph = -1
${body(loadAt(S, "u"), "            ")}
        } else {
            ph = 5
            n = 1
${body([...loadAt(X, "u"), ...loadAt(Y, "v")], "            ")}
        }
    }
    // ph: ladder phase 0..4, -1 squaring chain, 5 multiplication
    for (; n > 0; n--) {
        if (ph === 0) {
${body(ph[0], I3)}
        } else if (ph === 1) {
${body(ph[1], I3)}
        } else if (ph === 2) {
${body(ph[2], I3)}
        } else if (ph === 3) {
${body(ph[3], I3)}
        } else if (ph === 4) {
${body(ph[4], I3)}
        }
        if (ph < 4) {
            // Q = S^2
${body(sqrStmts(Q, S), I3)}
        }
        if (ph >= 0) {
            // O = X * Y
${body(mulStmts(O, X, Y), I3)}
        }
        if (ph < 0) {
${body(copy(S, Q), I3)}
        } else if (ph < 4) {
            ph = ph + 1
        } else if (ph === 4) {
            ph = 0
            t = t - 1
        }
    }
    if (ph === 0) {
${body([...storeAt(X2, G), ...storeAt(Z2, S), ...storeAt(X3, F), ...storeAt(Z3, O)], "        ")}
        st[${SWAP}] = sw
    } else if (ph < 0) {
${body(storeAt("m", S), "        ")}
    } else {
${body(storeAt("m", O), "        ")}
    }
}
`)
    return out.join("\n")
}

const text = generate()
const file = join(root, OUT)
if (argv.includes("--check")) {
    // writes nothing: fails when the committed module is not what this script writes
    if (readFileSync(file, "utf8") !== text) {
        console.error(`${file} is stale: run node devs/gen/x25519-field.mjs`)
        process.exitCode = 1
    } else console.log(`${file} is up to date`)
} else {
    writeFileSync(file, text)
    console.log(`wrote ${file} (${text.length} bytes; column bound ${fmt(COL)}, 2^${Math.log2(COL).toFixed(2)})`)
}
