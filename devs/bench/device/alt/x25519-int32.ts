// src/crypto/x25519.ts as it was on the int32 engine (alt/field-int32.ts), for the bench only.
// X25519 (RFC 7748, section 5) for the DeviceScript VM.
//
// The field arithmetic and the ladder are generated code (src/crypto/field25519.ts, from
// devs/gen/x25519-field.mjs): 20 limbs of 13 bits whose every intermediate provably stays an
// int32 (the bound argument heads that file), in ONE function, fengine(), holding one unrolled
// multiplication and one unrolled squaring shared by the ladder (a loop of 5 phases per step)
// and the inversion (modes MODE_SQR and MODE_MUL on offsets into the state array).
//
// Cost and size, measured by devs/bench/x25519.mjs (`npm run bench`, the instruction count
// comes from executing the compiled image's statements, see there): 4.83 million bytecode
// instructions per scalar multiplication (a ladder step is 17,103; a squaring 1,372; a
// multiplication call 2,427), and 10.8 KB of bytecode for all the field code (the previous
// fully inlined ladder step alone was 29.9 KB of the image's 64 KB limit on function code). The VM panics after 128K instructions without an await; this code
// yields (`await ds.sleep(0)`) after every LADDER_STEPS ladder steps and every SQR_CHUNK
// squarings.
//
// Constant time: the ladder executes the same instructions for every scalar and point
// (conditional swaps by mask, scalar bits read at public positions, the engine's branches
// depend only on the public phase counter and mode); the final reduction selects by mask;
// the all-zero check OR-accumulates every byte before the one branch on its (public) outcome.
import * as ds from "@devicescript/core"
import { LIMBS, ST_CTL, MODE_SQR, MODE_MUL, fengine } from "./field-int32"

/** Ladder steps per slice between yields (17,103 instructions each; a slice is 34,884). */
const LADDER_STEPS = 2
/** Squarings per slice between yields (1,372 instructions each). */
const SQR_CHUNK = 20
const MASK = 8191
// st layout: x1 0, x2 20, z2 40, x3 60, z3 80, swap bit 100, ST_CTL 101..103, then the
// inversion's temporaries
const X2 = 20
const Z2 = 40
const T0 = 104
const T1 = 124
const T2 = 144
const T3 = 164
const ST_LEN = 184

function checkLength(name: string, b: Buffer): void {
    if (!b || b.length !== DH_LEN) throw new TypeError("x25519: " + name + " must be a 32-byte Buffer")
}

function fe(): number[] {
    const a: number[] = []
    for (let i = 0; i < LIMBS; i++) a.push(0)
    return a
}

/** Best effort on a garbage-collected VM: old copies may survive until the heap is reused. */
function wipe(a: number[]): void {
    for (let i = 0; i < a.length; i++) a[i] = 0
}

// u-coordinate (RFC 7748: mask the top bit; non-canonical values >= p are accepted and
// reduced by the arithmetic) into 13-bit unsigned limbs at st[off..off+20) (the class U of
// field25519.ts).
function unpack(st: number[], off: number, u: Buffer): void {
    let acc = 0
    let bits = 0
    let j = 0
    for (let i = 0; i < 32; i++) {
        acc |= (i === 31 ? u[i] & 0x7f : u[i]) << bits
        bits += 8
        if (bits >= 13) {
            st[off + j++] = acc & MASK
            acc >>= 13
            bits -= 13
        }
    }
    st[off + j] = acc // limb 19: the top 8 bits
}

// One unsigned carry pass; returns the carry out of bit 260.
function carry(a: number[]): number {
    let c = 0
    for (let i = 0; i < LIMBS; i++) {
        const v = a[i] + c
        a[i] = v & MASK
        c = v >> 13
    }
    return c
}

// Fully reduces a (limbs in [-2, 8193], the class U of field25519.ts) to the canonical value
// in [0, p) with unsigned 13-bit limbs, in constant time. t is scratch.
function freeze(a: number[], t: number[]): void {
    // + 32p = 2^260 - 608 (limbs 7584, 8191, ..., 8191) makes every limb positive
    a[0] += 7584
    for (let i = 1; i < LIMBS; i++) a[i] += MASK
    // value < 2^261.01: fold the carry of bit 260 (2^260 = 608) twice (the second fold carries
    // at most 1 and leaves a value far below 2^260)
    a[0] += 608 * carry(a)
    a[0] += 608 * carry(a)
    carry(a) // now < 2^260 with 13-bit limbs
    for (let r = 0; r < 2; r++) {
        // fold bits 255..259 (2^255 = 19); twice, the second carries at most 1
        const hi = a[19] >> 8
        a[19] &= 255
        a[0] += 19 * hi
        carry(a)
    }
    // now a < 2^255: subtract p if a + 19 >= 2^255, selected by mask
    let c = 19
    for (let i = 0; i < LIMBS; i++) {
        const v = a[i] + c
        t[i] = v & MASK
        c = v >> 13
    }
    const m = 0 - ((t[19] >> 8) & 1)
    t[19] &= 255
    for (let i = 0; i < LIMBS; i++) a[i] ^= m & (a[i] ^ t[i])
}

function pack(a: number[]): Buffer {
    const out = Buffer.alloc(32)
    let acc = 0
    let bits = 0
    let j = 0
    for (let i = 0; i < LIMBS; i++) {
        acc |= a[i] << bits
        bits += 13
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
 * u is ignored. Cooperative: yields to other fibers at least every 36K VM instructions.
 * @param scalar 32-byte secret scalar
 * @param u 32-byte u-coordinate (any 32 bytes are accepted, as the RFC requires)
 * @returns the 32-byte shared u-coordinate
 * @throws TypeError if an input is not a 32-byte Buffer
 * @throws Error("x25519: all-zero shared secret (low-order point)") when u is of low order
 */
export async function x25519Int32(scalar: Buffer, u: Buffer): Promise<Buffer> {
    checkLength("scalar", scalar)
    checkLength("u", u)
    const k = scalar.slice(0)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64

    // st: x1, x2, z2, x3, z3 (20 limbs each), the pending swap bit, the field-mode offsets and
    // the inversion's temporaries
    const st: number[] = []
    for (let i = 0; i < ST_LEN; i++) st.push(0)
    unpack(st, 0, u)
    st[20] = 1 // x2 = 1, z2 = 0
    for (let i = 0; i < LIMBS; i++) st[60 + i] = st[i] // x3 = u
    st[80] = 1 // z3 = 1

    for (let t = 254; t >= 0; t -= LADDER_STEPS) {
        fengine(st, k, t, t + 1 < LADDER_STEPS ? t + 1 : LADDER_STEPS)
        await ds.sleep(0)
    }
    // the last conditional swap, by mask
    const m = 0 - st[100]
    for (let i = 20; i < 60; i++) {
        const d = m & (st[i] ^ st[i + 40])
        st[i] ^= d
        st[i + 40] ^= d
    }

    await invert(st, k, Z2, Z2)
    fmul(st, k, X2, X2, Z2)
    const x2 = st.slice(X2, X2 + LIMBS)
    const t0 = fe()
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
