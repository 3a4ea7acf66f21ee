#!/usr/bin/env node
// Generates devs/bench/device/alt/field-int32.ts, the int32 field engine that src/crypto used up
// to issue 17 (20 limbs of 13 bits), kept as the bench's side-by-side alternative to the
// current doubles engine (devs/gen/x25519-field.mjs). It was: the GF(2^255-19) arithmetic and the Montgomery ladder
// behind src/crypto/x25519.ts, as one function (`fengine`) around ONE unrolled multiplication
// and ONE unrolled squaring.
//
//   node devs/gen/x25519-field-int32.mjs
//
// Why generated: the DeviceScript VM executes one bytecode instruction per operand load,
// operator and store, and a local variable costs one instruction where an array element
// costs three. A fully unrolled multiplication over locals is about 2,000 instructions; the
// same written as loops over arrays is several times that. Nobody should maintain 400
// products by hand, so this script writes them and the output says it is generated.
//
// Why one engine: the VM refuses an image whose function code exceeds 64 KB, and every
// unrolled multiplication costs about 3 KB of bytecode, a squaring about 2 KB. The previous
// generator inlined the 5 multiplications and 4 squarings of a ladder step (30 KB) and kept
// separate array-based fmul/fsqrn for the inversion (6.6 KB). Now a loop runs the ladder step
// as 5 phases; each phase moves values between seven registers of 20 locals (2 instructions a
// limb for a copy, 4 for a sum) and then runs the shared squaring core, the shared
// multiplication core, or both. The inversion runs through the same cores (modes below).
// What pays for the moves: the cores produce unsigned 13-bit digits (no +-4096 bias per limb,
// 80 instructions per core), sums subtract 32p limb-wise instead (see the bound argument).
//
// Representation and bounds: see HEADER below (repeated in the generated file).
import { readFileSync, writeFileSync } from "node:fs"
import { join, dirname } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const N = 20
const MASK = 8191
const WRAP = 608 // 2^260 mod p
const A24P1 = 121666 // a24 + 1: AA + a24 E = BB + (a24 + 1) E
// 32p = 2^260 - 608 as limbs: 7584, 8191, ..., 8191. Subtracted from every sum of two
// elements so that the sum's limbs are balanced again.
const P32 = i => (i === 0 ? 7584 : MASK)
// st layout shared with src/crypto/x25519.ts
const CTL = 101

const range = n => Array.from({ length: n }, (_, i) => i)
const names = p => range(N).map(i => p + i)

// Column k of a*b: sum over i+j=k of a[i]*b[j].
function colMul(a, b, k) {
    const t = []
    for (let i = Math.max(0, k - N + 1); i <= Math.min(k, N - 1); i++) t.push(`${a[i]} * ${b[k - i]}`)
    return t.join(" + ")
}

// Column k of a^2: 2 * (sum over i<j, i+j=k of a[i]*a[j]) + a[k/2]^2.
function colSqr(a, k) {
    const cross = []
    for (let i = Math.max(0, k - N + 1); i < k - i; i++) cross.push(`${a[i]} * ${a[k - i]}`)
    const parts = []
    if (cross.length === 1) parts.push(`2 * ${cross[0]}`)
    else if (cross.length > 1) parts.push(`2 * (${cross.join(" + ")})`)
    if (k % 2 === 0) parts.push(`${a[k / 2]} * ${a[k / 2]}`)
    return parts.join(" + ")
}

// Reduction of 39 column sums into 20 unsigned digits o[] with two running carries: v walks
// the high columns 20..38 (13-bit digit v & 8191 of column 20+k, weight 2^(13k) * 608), u the
// low columns, in lockstep so no digit needs a local of its own. u & 8191 is the digit and
// u >> 13 (arithmetic: floor) its carry, also for negative u.
function reduceCols(col, o) {
    const s = []
    for (let k = 0; k < N; k++) {
        let hi
        if (k < N - 1) {
            s.push(`v = ${col(N + k)}${k === 0 ? "" : " + (v >> 13)"}`)
            hi = `(v & ${MASK})`
        } else hi = "(v >> 13)" // carry out of column 38
        s.push(`u = ${col(k)} + ${WRAP} * ${hi}${k === 0 ? "" : " + (u >> 13)"}`)
        s.push(`${o[k]} = u & ${MASK}`)
    }
    s.push(...wrapTop(o))
    return s
}

// After the low chain, u >> 13 is the carry out of bit 260: fold it back as 608 * carry
// into limb 0, carry limb 0 into limb 1 and limb 1 into limb 2 (a carry of -2..2).
function wrapTop(o) {
    return [
        `u = ${o[0]} + ${WRAP} * (u >> 13)`,
        `${o[0]} = u & ${MASK}`,
        `u = ${o[1]} + (u >> 13)`,
        `${o[1]} = u & ${MASK}`,
        `${o[2]} = ${o[2]} + (u >> 13)`,
    ]
}

const mulStmts = (o, a, b) => {
    for (const x of o) if (a.includes(x) || b.includes(x)) throw new Error("output aliases input")
    return reduceCols(k => colMul(a, b, k), o)
}
const sqrStmts = (o, a) => {
    for (const x of o) if (a.includes(x)) throw new Error("output aliases input")
    return reduceCols(k => colSqr(a, k), o)
}
const copy = (o, a) => range(N).map(i => `${o[i]} = ${a[i]}`)
const sub = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} - ${b[i]}`)
// a + b - 32p: balanced again (U + U - 32p, see the bounds)
const add = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} + ${b[i]} - ${P32(i)}`)
// o = a ^ (m & (a ^ b)): a when m = 0, b when m = -1
const sel = (o, a, b) => range(N).map(i => `${o[i]} = ${a[i]} ^ (m & (${a[i]} ^ ${b[i]}))`)
// y = y + 121666 * x, reduced to U in place (column k reads only limb k)
function addMulA24(y, x) {
    const s = []
    for (let k = 0; k < N; k++) {
        s.push(`u = ${y[k]} + ${A24P1} * ${x[k]}${k === 0 ? "" : " + (u >> 13)"}`)
        s.push(`${y[k]} = u & ${MASK}`)
    }
    s.push(...wrapTop(y))
    return s
}
// st[base + i] for a numeric base, st[base + i] with a variable base
const at = (base, i) => (typeof base === "number" ? `st[${base + i}]` : `st[${base}${i ? " + " + i : ""}]`)
const loadAt = (v, base) => range(N).map(i => `${v[i]} = ${at(base, i)}`)
const storeAt = (base, v) => range(N).map(i => `${at(base, i)} = ${v[i]}`)
const body = (stmts, ind) => stmts.map(s => ind + s).join("\n")

const HEADER = `// GENERATED by devs/gen/x25519-field-int32.mjs: do not edit; change the generator and rerun
// \`node devs/gen/x25519-field-int32.mjs\`.
//
// GF(2^255 - 19) for X25519 (RFC 7748) on the DeviceScript VM, and the Montgomery ladder.
//
// Code size first: the VM refuses an image with more than 64 KB of function code, and the
// firmware needs the room. So there is ONE unrolled multiplication and ONE unrolled squaring
// in one function, fengine(), which runs the ladder step as a loop of 5 phases (values move
// between seven registers of 20 locals each), and the inversion's squarings and
// multiplications through the same two cores. About 10 KB of bytecode for all the field
// arithmetic, against 36.5 KB for the previous fully inlined ladder step (which had 5
// multiplications and 4 squarings inlined, plus separate fmul and fsqrn functions).
// Measured (devs/bench/x25519.mjs): 10,764 bytes of bytecode; 4,831,057 instructions per
// scalar multiplication (ladder step 17,103, squaring 1,372), against 36,512 bytes and
// 4,938,429 for the inlined version. The register moves and the phase dispatch cost a few
// hundred instructions a step more than the inlined code's sums; dropping the +-4096 digit
// bias (unsigned digits, 32p subtracted in sums instead) saves about 80 per core call (9 a
// step) and pays for them.
//
// Representation: 20 limbs of radix 2^13 (260 bits) in locals or number[],
// value = sum l[i] * 2^(13 i) mod p, p = 2^255 - 19, and 2^260 = 32 * 19 = 608 (mod p).
//
// Bounds (every intermediate is an int32, so the VM stays on its integer fast path, the
// one a chip without an FPU can afford; no operation ever produces a double):
//   U  "unsigned": -2 <= l[i] <= 8193 (limbs 0, 1 and 3..19 are in [0, 8191], limb 2 may
//      differ by the final carry of -2..2). Every core output (mul, sqr, a24) is in U, and so
//      is an unpacked input (13-bit digits, bit 255 cleared).
//   Sums of two U elements subtract 32p = 2^260 - 608 limb-wise (7584, 8191, ..., 8191), a
//      multiple of p: limb 0 in [-7588, 8802], the others in [-8195, 8195]. Differences of two
//      U elements: [-8195, 8195]. Selections (conditional swaps) pick one of two such values.
//   So every core operand has |l[i]| <= 8802 (8195 except limb 0).
//   Product columns: column k holds at most 20 products, so |col| <= 20 * 8802^2 =
//      1,549,504,080 (and each partial sum of a column expression is bounded by the same
//      sum of absolute values; the squaring's 2 * (cross terms) is part of that sum).
//   High columns 20..38 are carried into digits h[0..18] in [0, 8191] (v & 8191) with
//      |v| <= 1,549,504,080 + 2^18, and a top digit h[19] = v >> 13 from column 38 alone:
//      |h[19]| <= (8802^2 + 2^18) / 2^13 < 9,500.
//   Low column k: u = col(k) + 608 * h[k] + (u >> 13),
//      |u| <= 1,549,504,080 + 608 * 9,500 + 2^18 < 1,556,000,000 < 2^31 - 1 = 2,147,483,647.
//      The digit u & 8191 is in [0, 8191]; the carry u >> 13 is below 190,000 in magnitude.
//   Top: the carry out of limb 19 times 608 (< 1.2e8) is added to limb 0; its carry
//      (< 14,300) to limb 1; limb 1's carry (-2..2) to limb 2: the result is in U.
//   a24: y + 121666 * x with |x| <= 8195 (x = AA - BB): |u| <= 8193 + 997,052,870 + 2^17
//      < 998,000,000; the same top fold gives U. (AA + a24 E = BB + (a24 + 1) E.)
//
// Constant time: straight-line cores; the loop and its branches depend only on the phase
// counter and the mode (public); the conditional swap is a mask (0 or -1) and XOR; the
// scalar bit is read at an index that depends only on the (public) bit position.
//
// st layout (number[], shared with src/crypto/x25519.ts): x1 at 0, x2 at 20, z2 at 40, x3 at
// 60, z3 at 80 (20 limbs each), the pending swap bit at 100, the field-mode operand offsets
// at ${CTL}..${CTL + 2}, free temporaries after that.
`

// The ladder step as 5 phases. Registers: X, Y (multiplication inputs), O (its output), S (the
// squaring's input), Q (its output), F, G. In each phase: moves, then Q = S^2 (phases 0..3),
// then O = X * Y. State between steps: x2 in G, z2 in S, x3 in F, z3 in O.
//
// The RFC swaps (x2, z2) and (x3, z3) by swap ^ k_t and then computes x2 = double(x2),
// x3 = add(x2, x3). The differential addition is symmetric in its two points (swapping them
// swaps DA and CB, which leaves DA + CB and (DA - CB)^2 unchanged), so only the input of the
// doubling has to be selected: AA, BB = swapped ? (C^2, D^2) : (A^2, B^2).
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
        [...copy(S, O), ...copy(Y, Q), ...loadAt(X, 0)],
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
/** st index of the field-mode operand offsets (out, a, b). */
export const ST_CTL = ${CTL}
/** fengine mode (t argument): n squarings, st[out..] = st[a..]^(2^n). */
export const MODE_SQR = -1
/** fengine mode (t argument): st[out..] = st[a..] * st[b..]. */
export const MODE_MUL = -2
`)
    out.push(`/**
 * The field engine. t >= 0: n ladder steps for scalar bits t, t - 1, ..., t - n + 1 (RFC 7748
 * section 5) on the state in st (see the layout above; k is the clamped scalar). t = MODE_SQR:
 * n squarings, t = MODE_MUL: one multiplication, of the elements at the offsets in
 * st[ST_CTL..ST_CTL + 2] (out, a, b; out may alias a or b), k unused. Outputs are in U,
 * inputs must be in U.
 */
export function fengine(st: number[], k: Buffer, t: number, n: number): void {
    // registers (no initializers: every path assigns a register before reading it)
    let ${regs.map(r => r + "!: number").join(", ")}
    let u = 0, v = 0, m = 0, sw = 0, ph = 0
    if (t >= 0) {
        // ladder: x2 -> G, z2 -> S, x3 -> F, z3 -> O
${body([...loadAt(G, 20), ...loadAt(S, 40), ...loadAt(F, 60), ...loadAt(O, 80)], "        ")}
        sw = st[100]
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
${body([...storeAt(20, G), ...storeAt(40, S), ...storeAt(60, F), ...storeAt(80, O)], "        ")}
        st[100] = sw
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
const file = join(root, "devs", "bench", "device", "alt", "field-int32.ts")
if (process.argv.includes("--check")) {
    // writes nothing: fails when the committed module is not what this script writes
    if (readFileSync(file, "utf8") !== text) {
        console.error(`${file} is stale: run node devs/gen/x25519-field.mjs`)
        process.exitCode = 1
    } else console.log(`${file} is up to date`)
} else {
    writeFileSync(file, text)
    console.log(`wrote ${file} (${text.length} bytes)`)
}
