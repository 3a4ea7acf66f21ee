#!/usr/bin/env node
// Generates src/crypto/field25519.ts: the straight-line GF(2^255-19) arithmetic and the
// Montgomery ladder step behind src/crypto/x25519.ts.
//
//   node devs/gen/x25519-field.mjs
//
// Why generated: the DeviceScript VM executes one bytecode instruction per operand load,
// operator and store, and a local variable costs one instruction where an array element
// costs three. A fully unrolled multiplication over locals is about 2,100 instructions; the
// same written as loops over arrays is several times that. Nobody should maintain 400
// products by hand, so this script writes them and the output says it is generated.
//
// Representation (the bound argument is repeated in the generated file's header):
//   20 limbs of radix 2^13 (260 bits), value = sum l[i] * 2^(13 i) mod p, and
//   2^260 = 2^5 * 2^255 = 32 * 19 = 608 (mod p).
//   "Reduced" limbs are balanced: -4098 <= l[i] <= 4097, so a sum or difference of two
//   reduced elements has limbs of magnitude <= 8196, and a product column of 20 such terms
//   stays below 20 * 8196^2 = 1,343,487,680 < 2^31 - 1: every intermediate is an int32 and
//   the VM stays on its integer fast path.
import { writeFileSync } from "node:fs"
import { join, dirname } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const N = 20
const MASK = 8191
const HALF = 4096
const WRAP = 608 // 2^260 mod p
const A24 = 121665

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

// Reduction of 39 column sums into 20 balanced limbs o[] with two running carries: v walks
// the high columns 20..38 (13-bit digit v & 8191 of column 20+k, weight 2^(13k) * 608), u the
// low columns, in lockstep so no digit needs a local of its own. The +4096 bias makes
// (u & 8191) - 4096 a balanced digit and u >> 13 its (floor) carry.
function reduceCols(col, o) {
    const s = []
    for (let k = 0; k < N; k++) {
        let hi
        if (k < N - 1) {
            s.push(`v = ${col(N + k)}${k === 0 ? "" : " + (v >> 13)"}`)
            hi = `(v & ${MASK})`
        } else hi = "(v >> 13)" // carry out of column 38
        s.push(`u = ${col(k)} + ${WRAP} * ${hi}${k === 0 ? "" : " + (u >> 13)"} + ${HALF}`)
        s.push(`${o[k]} = (u & ${MASK}) - ${HALF}`)
    }
    s.push(...wrapTop(o))
    return s
}

// After the low chain, u >> 13 is the carry out of bit 260: fold it back as 608 * carry
// into limb 0 and re-balance limbs 0 and 1; limb 2 absorbs a carry of at most 2.
function wrapTop(o) {
    return [
        `u = ${o[0]} + ${WRAP} * (u >> 13) + ${HALF}`,
        `${o[0]} = (u & ${MASK}) - ${HALF}`,
        `u = ${o[1]} + (u >> 13) + ${HALF}`,
        `${o[1]} = (u & ${MASK}) - ${HALF}`,
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
const addStmts = (o, a, b, op) => range(N).map(i => `${o[i]} = ${a[i]} ${op} ${b[i]}`)

// o = a + a24 * e, reduced (|a24 * e[i]| <= 121665 * 8196 < 2^30).
function addMulA24Stmts(o, a, e) {
    const s = []
    for (let k = 0; k < N; k++) {
        const carry = k === 0 ? "" : " + (u >> 13)"
        s.push(`u = ${a[k]} + ${A24} * ${e[k]}${carry} + ${HALF}`)
        s.push(`${o[k]} = (u & ${MASK}) - ${HALF}`)
    }
    s.push(...wrapTop(o))
    return s
}

const load = (v, arr, off) => range(N).map(i => `${v[i]} = ${arr}[${off + i}]`)
const store = (arr, off, v) => range(N).map(i => `${arr}[${off + i}] = ${v[i]}`)
const decl = vs => `    let ${vs.map(v => v + " = 0").join(", ")}`
const body = (stmts, ind = "    ") => stmts.map(s => ind + s).join("\n")

// In-place p, q = p + q, p - q (u is the temporary).
const sumDiffStmts = (p, q) => range(N).flatMap(i => [`u = ${p[i]}`, `${p[i]} = u + ${q[i]}`, `${q[i]} = u - ${q[i]}`])

// One RFC 7748 ladder step over seven field registers of locals (the compiler allows 148
// locals per function). State on entry and exit: R0 = x2, R1 = z2, R2 = x3, R3 = z3; x1 is
// read from st[0..20) when needed.
//
// The RFC swaps (x2, z2) and (x3, z3) by swap ^ k_t and then computes x2 = double(x2),
// x3 = add(x2, x3). The differential addition is symmetric in its two points (swapping them
// swaps DA and CB, which leaves DA + CB and (DA - CB)^2 unchanged), so only the input of the
// doubling has to be selected: A, B = swapped ? (C, D) : (A, B), by mask, after DA and CB.
function ladderStepStmts() {
    const R = range(7).map(r => names(`r${r}_`))
    const s = []
    s.push("m = (k[t >> 3] >> (t & 7)) & 1") // k_t
    s.push("u = m")
    s.push("m = 0 - (sw ^ m)") // mask of swap ^ k_t
    s.push("sw = u") // swap = k_t
    s.push(...sumDiffStmts(R[0], R[1])) // R0 = A = x2 + z2, R1 = B = x2 - z2
    s.push(...sumDiffStmts(R[2], R[3])) // R2 = C = x3 + z3, R3 = D = x3 - z3
    s.push(...mulStmts(R[4], R[3], R[0])) // R4 = DA
    s.push(...mulStmts(R[5], R[2], R[1])) // R5 = CB
    for (const [p, q] of [
        [R[0], R[2]],
        [R[1], R[3]],
    ])
        for (let i = 0; i < N; i++) s.push(`${p[i]} = ${p[i]} ^ (m & (${p[i]} ^ ${q[i]}))`) // select
    s.push(...sqrStmts(R[6], R[0])) // R6 = AA
    s.push(...sqrStmts(R[3], R[1])) // R3 = BB
    s.push(...mulStmts(R[0], R[6], R[3])) // R0 = x2 = AA * BB
    s.push(...range(N).map(i => `${R[3][i]} = ${R[6][i]} - ${R[3][i]}`)) // R3 = E = AA - BB
    s.push(...addMulA24Stmts(R[6], R[6], R[3])) // R6 = AA + a24 * E (column k reads only k)
    s.push(...mulStmts(R[1], R[3], R[6])) // R1 = z2 = E * (AA + a24 * E)
    s.push(...sumDiffStmts(R[4], R[5])) // R4 = DA + CB, R5 = DA - CB
    s.push(...sqrStmts(R[2], R[4])) // R2 = x3 = (DA + CB)^2
    s.push(...sqrStmts(R[6], R[5])) // R6 = (DA - CB)^2
    s.push(...load(R[4], "st", 0)) // R4 = x1
    s.push(...mulStmts(R[3], R[4], R[6])) // R3 = z3 = x1 * (DA - CB)^2
    return s
}

const HEADER = `// GENERATED by devs/gen/x25519-field.mjs: do not edit; change the generator and rerun
// \`node devs/gen/x25519-field.mjs\`.
//
// GF(2^255 - 19) for X25519 (RFC 7748) on the DeviceScript VM, and the Montgomery ladder step.
//
// Representation: 20 limbs of radix 2^13 (260 bits) in number[] or in locals,
// value = sum l[i] * 2^(13 i) mod p, p = 2^255 - 19, and 2^260 = 32 * 19 = 608 (mod p).
//
// Bounds (every intermediate is an int32, so the VM stays on its integer fast path, the
// one a chip without an FPU can afford; no operation ever produces a double):
//   R  "reduced": -4098 <= l[i] <= 4097. Every mul/sqr/addMulA24 output is in R.
//   S  a sum or difference of two R elements: |l[i]| <= 8196. Every mul/sqr operand is in S
//      (an R element or a 13-bit unsigned unpacked input is in S too).
//   Product columns: column k holds at most 20 products of S limbs (column 19 exactly 20), so
//      |col| <= 20 * 8196^2 = 1,343,487,680. Each partial sum of a column expression is bounded
//      by the same sum of absolute values.
//   High columns 20..38 are carried into digits h[0..18] in [0, 8191] (u & 8191) and a signed
//      top digit h[19] = u >> 13, |h[19]| <= (8196^2 + 2^15) / 2^13 < 8300.
//      |u| <= 1,343,487,680 + 2^18 during this chain.
//   Low column k: u = col(k) + 608 * h[k] + (u >> 13) + 4096,
//      |u| <= 1,343,487,680 + 608 * 8300 + 2^18 + 4096 < 1,349,000,000 < 2^31 - 1 = 2,147,483,647.
//      Limb (u & 8191) - 4096 is in [-4096, 4095]; the carry u >> 13 (arithmetic, floor) is
//      below 2^18 in magnitude.
//   Top: the carry out of limb 19 (< 2^18) times 608 (< 2^27.3) is added to limb 0, which is
//      re-balanced into limb 1 (carry < 2^14.3), which is re-balanced into limb 2 (carry in
//      {-2..2}): all limbs end in [-4098, 4097] = R.
//   addMulA24: |a24 * e[i]| <= 121665 * 8196 = 997,166,340; plus a limb, carry and bias the
//      chain stays below 998,000,000; the same top fold gives R.
// The ladder's sums/differences (A, B, C, D, DA +- CB, E) are S; every product operand is S.
//
// Constant time: straight-line code, no branches or array indices that depend on secret
// data; the conditional swap is a mask (0 or -1) and XOR. The scalar bit is read at an index
// that depends only on the (public) bit position.
`

function generate() {
    const [a, b, o] = ["a", "b", "o"].map(names)
    const R = range(7).map(r => names(`r${r}_`))
    const out = [HEADER]
    out.push(`/** Limbs per field element. */
export const LIMBS = ${N}
`)
    out.push(`/** o = a * b, all 20-limb arrays, o in R (a, b in S). o may alias a or b. */
export function fmul(o: number[], a: number[], b: number[]): void {
${decl(a)}
${decl(b)}
${decl(o)}
    let u = 0, v = 0
${body(load(a, "a", 0))}
${body(load(b, "b", 0))}
${body(mulStmts(o, a, b))}
${body(store("o", 0, o))}
}
`)
    out.push(`/** o = a^(2^n) (n >= 1 squarings), o in R (a in S). o may alias a. */
export function fsqrn(o: number[], a: number[], n: number): void {
${decl(a)}
${decl(o)}
    let u = 0, v = 0
${body(load(a, "a", 0))}
    for (let r = 0; r < n; r++) {
${body(sqrStmts(o, a), "        ")}
${body(
    range(N).map(i => `${a[i]} = ${o[i]}`),
    "        "
)}
    }
${body(store("o", 0, a))}
}
`)
    out.push(`/**
 * Runs ladder steps for scalar bits t0, t0 - 1, ..., t0 - n + 1 (RFC 7748 section 5).
 * st holds x1, x2, z2, x3, z3 (20 limbs each, at offsets 0, 20, 40, 60, 80) and the pending
 * swap bit at offset 100; k is the clamped scalar.
 */
export function ladder(st: number[], k: Buffer, t0: number, n: number): void {
${R.map(decl).join("\n")}
    let u = 0, v = 0, m = 0, t = 0
    let sw = st[100]
${body(load(R[0], "st", 20))}
${body(load(R[1], "st", 40))}
${body(load(R[2], "st", 60))}
${body(load(R[3], "st", 80))}
    for (t = t0; t > t0 - n; t--) {
${body(ladderStepStmts(), "        ")}
    }
${body(store("st", 20, R[0]))}
${body(store("st", 40, R[1]))}
${body(store("st", 60, R[2]))}
${body(store("st", 80, R[3]))}
    st[100] = sw
}
`)
    return out.join("\n")
}

const text = generate()
const file = join(root, "src", "crypto", "field25519.ts")
writeFileSync(file, text)
console.log(`wrote ${file} (${text.length} bytes)`)
