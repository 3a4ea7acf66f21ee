// The device's X25519 before it moved to 12 limbs (src/crypto/x25519.ts at that commit, on the
// 13-limb engine alt/field-13.ts), for the bench only.
// X25519 (RFC 7748, section 5) for the DeviceScript VM.
//
// The field arithmetic and the ladder are generated code (src/crypto/field25519.ts, from
// devs/gen/x25519-field.mjs): 13 limbs of 19-20 bits in doubles, every product and sum exact
// below 2^53 (the bound argument heads that file and the generator checks it), in ONE function,
// fengine(), holding one unrolled multiplication and one unrolled squaring shared by the
// ladder (a loop of 5 phases per step) and the inversion (modes MODE_SQR and MODE_MUL on
// offsets into the state array).
//
// Cost (issue 17), counted by the VM itself (`npm run bench`: devs/bench/x25519.mjs and the
// device group, with the counting VM of devs/bench/device/counting-vm.mjs): 2.54 million
// bytecode instructions per scalar multiplication, against 4.85 million for the int32 engine
// of 20 limbs of 13 bits it replaced (kept for the bench in devs/bench/device/alt/). The VM
// panics after 128K instructions without an await; this code yields (`await ds.sleep(0)`)
// after every LADDER_STEPS ladder steps and every SQR_CHUNK squarings: the longest slice
// measured is about 31K instructions.
//
// Constant time: the ladder executes the same instructions for every scalar and point
// (conditional swaps by mask, scalar bits read at public positions, the engine's branches
// depend only on the public phase counter and mode); the final reduction selects by mask;
// the all-zero check OR-accumulates every byte before the one branch on its (public) outcome.
import * as ds from "@devicescript/core"
import {
    LIMBS,
    LIMB_POS,
    ST_CTL,
    ST_LEN,
    ST_SWAP,
    ST_TMP,
    ST_X1,
    ST_X2,
    ST_X3,
    ST_Z2,
    ST_Z3,
    MODE_SQR,
    MODE_MUL,
    fengine,
} from "./field-13"

/** Ladder steps per slice between yields (see the bench for the measured slice). */
const LADDER_STEPS = 3
/** Squarings per slice between yields. */
const SQR_CHUNK = 30
const X2 = ST_X2
const Z2 = ST_Z2
const T0 = ST_TMP
const T1 = ST_TMP + LIMBS
const T2 = ST_TMP + 2 * LIMBS
const T3 = ST_TMP + 3 * LIMBS

function checkLength(name: string, b: Buffer): void {
    if (!b || b.length !== DH_LEN) throw new TypeError("x25519: " + name + " must be a 32-byte Buffer")
}

/** Best effort on a garbage-collected VM: old copies may survive until the heap is reused. */
function wipe(a: number[]): void {
    for (let i = 0; i < a.length; i++) a[i] = 0
}

// u-coordinate (RFC 7748: mask the top bit; non-canonical values >= p are accepted and
// reduced by the arithmetic) into unsigned digits of the limb widths at st[off..off+LIMBS).
function unpack(st: number[], off: number, u: Buffer): void {
    let acc = 0
    let bits = 0
    let j = 0
    for (let i = 0; i < 32; i++) {
        acc |= (i === 31 ? u[i] & 0x7f : u[i]) << bits
        bits += 8
        const w = LIMB_POS[j + 1] - LIMB_POS[j]
        if (bits >= w) {
            st[off + j++] = acc & ((1 << w) - 1)
            acc >>= w
            bits -= w
        }
    }
}

// One carry pass into unsigned digits (floor carries); returns the carry out of bit 255.
function carry(a: number[]): number {
    let c = 0
    for (let i = 0; i < LIMBS; i++) {
        const w = 1 << (LIMB_POS[i + 1] - LIMB_POS[i])
        const v = a[i] + c
        c = Math.floor(v / w)
        a[i] = v - c * w
    }
    return c
}

// Fully reduces a (core outputs: balanced digits) to the canonical value in [0, p) in unsigned
// digits, in constant time (the same operations for every value). t is scratch.
function freeze(a: number[], t: number[]): void {
    // fold the carry of bit 255 (2^255 = 19) three times: the first leaves a value within a
    // few p of [0, 2^255), the second a carry of -1, 0 or 1, the third none
    for (let r = 0; r < 3; r++) a[0] += 19 * carry(a)
    // now 0 <= a < 2^255: subtract p if a + 19 >= 2^255, selected by mask
    for (let i = 0; i < LIMBS; i++) t[i] = a[i]
    t[0] += 19
    const m = 0 - carry(t) // -1 when a + 19 >= 2^255 (then t = a + 19 - 2^255 = a - p)
    for (let i = 0; i < LIMBS; i++) a[i] ^= m & (a[i] ^ t[i])
}

function pack(a: number[]): Buffer {
    const out = Buffer.alloc(32)
    let acc = 0
    let bits = 0
    let j = 0
    for (let i = 0; i < LIMBS; i++) {
        acc |= a[i] << bits
        bits += LIMB_POS[i + 1] - LIMB_POS[i]
        while (bits >= 8 && j < 32) {
            out[j++] = acc & 0xff
            acc >>= 8
            bits -= 8
        }
    }
    if (j < 32) out[j] = acc & 0xff
    return out
}

// st[o..] = st[a..] * st[b..] (offsets into st; o may alias a or b)
function fmul(st: number[], k: Buffer, o: number, a: number, b: number): void {
    st[ST_CTL] = o
    st[ST_CTL + 1] = a
    st[ST_CTL + 2] = b
    fengine(st, k, MODE_MUL, 1)
}

// st[o..] = st[a..]^(2^n), yielding every SQR_CHUNK squarings
async function sqrn(st: number[], k: Buffer, o: number, a: number, n: number): Promise<void> {
    while (n > 0) {
        const c = n < SQR_CHUNK ? n : SQR_CHUNK
        st[ST_CTL] = o
        st[ST_CTL + 1] = a
        fengine(st, k, MODE_SQR, c)
        a = o
        n -= c
        await ds.sleep(0)
    }
}

// st[o..] = z^(p - 2) = z^(2^255 - 21) for z = st[z..]: 254 squarings and 11 multiplications.
async function invert(st: number[], k: Buffer, o: number, z: number): Promise<void> {
    await sqrn(st, k, T0, z, 1) // z^2
    await sqrn(st, k, T1, T0, 2) // z^8
    fmul(st, k, T1, z, T1) // z^9
    fmul(st, k, T0, T0, T1) // z^11
    await sqrn(st, k, T2, T0, 1) // z^22
    fmul(st, k, T1, T1, T2) // z^(2^5 - 1)
    await sqrn(st, k, T2, T1, 5)
    fmul(st, k, T1, T2, T1) // z^(2^10 - 1)
    await sqrn(st, k, T2, T1, 10)
    fmul(st, k, T2, T2, T1) // z^(2^20 - 1)
    await sqrn(st, k, T3, T2, 20)
    fmul(st, k, T2, T3, T2) // z^(2^40 - 1)
    await sqrn(st, k, T2, T2, 10)
    fmul(st, k, T1, T2, T1) // z^(2^50 - 1)
    await sqrn(st, k, T2, T1, 50)
    fmul(st, k, T2, T2, T1) // z^(2^100 - 1)
    await sqrn(st, k, T3, T2, 100)
    fmul(st, k, T2, T3, T2) // z^(2^200 - 1)
    await sqrn(st, k, T2, T2, 50)
    fmul(st, k, T1, T2, T1) // z^(2^250 - 1)
    await sqrn(st, k, T1, T1, 5) // z^(2^255 - 32)
    fmul(st, k, o, T1, T0) // z^(2^255 - 21)
}

/**
 * X25519 scalar multiplication (RFC 7748, section 5): the u-coordinate of scalar * u.
 * The scalar is clamped on a copy (the caller's buffer is not modified) and the top bit of
 * u is ignored. Cooperative: yields to other fibers at least every 32K VM instructions.
 * @param scalar 32-byte secret scalar
 * @param u 32-byte u-coordinate (any 32 bytes are accepted, as the RFC requires)
 * @returns the 32-byte shared u-coordinate
 * @throws TypeError if an input is not a 32-byte Buffer
 * @throws Error("x25519: all-zero shared secret (low-order point)") when u is of low order
 */
export async function x25519Limbs13(scalar: Buffer, u: Buffer): Promise<Buffer> {
    checkLength("scalar", scalar)
    checkLength("u", u)
    const k = scalar.slice(0)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64

    // st: x1, x2, z2, x3, z3 (20 limbs each), the pending swap bit, the field-mode offsets and
    // the inversion's temporaries
    const st: number[] = []
    for (let i = 0; i < ST_LEN; i++) st.push(0)
    unpack(st, ST_X1, u)
    st[ST_X2] = 1 // x2 = 1, z2 = 0
    for (let i = 0; i < LIMBS; i++) st[ST_X3 + i] = st[ST_X1 + i] // x3 = u
    st[ST_Z3] = 1 // z3 = 1

    for (let t = 254; t >= 0; t -= LADDER_STEPS) {
        fengine(st, k, t, t + 1 < LADDER_STEPS ? t + 1 : LADDER_STEPS)
        await ds.sleep(0)
    }
    // the last conditional swap, by mask
    const m = 0 - st[ST_SWAP]
    for (let i = X2; i < X2 + 2 * LIMBS; i++) {
        const d = m & (st[i] ^ st[i + 2 * LIMBS])
        st[i] ^= d
        st[i + 2 * LIMBS] ^= d
    }

    await invert(st, k, Z2, Z2)
    fmul(st, k, X2, X2, Z2)
    const x2 = st.slice(X2, X2 + LIMBS)
    const t0 = st.slice(T0, T0 + LIMBS)
    freeze(x2, t0)
    const out = pack(x2)

    // wipe secrets (best effort on a garbage-collected VM: the runtime may have copied them)
    for (let i = 0; i < 32; i++) k[i] = 0
    wipe(st)
    wipe(x2)
    wipe(t0)

    // RFC 7748 section 6.1: reject the all-zero output, checked without early exit
    let acc = 0
    for (let i = 0; i < 32; i++) acc |= out[i]
    if (acc === 0) throw new Error("x25519: all-zero shared secret (low-order point)")
    return out
}

/** Length of an X25519 scalar, u-coordinate and shared secret (Noise's DHLEN). */
const DH_LEN = 32
