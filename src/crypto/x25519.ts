// X25519 (RFC 7748, section 5) for the DeviceScript VM.
//
// The field arithmetic and the ladder step are generated straight-line code over locals
// (src/crypto/field25519.ts, from devs/gen/x25519-field.mjs): 20 limbs of 13 bits whose every
// intermediate provably stays an int32 (the bound argument heads that file).
//
// Cost, measured by devs/bench/x25519.mjs (`npm run bench`): 4.94 million bytecode
// instructions per scalar multiplication (a ladder step is 17,331; a squaring 1,423; an
// array-based multiplication 2,430), counted opcode by opcode from the compiled image and
// cross-checked against the VM's InfiniteLoop counter. The VM panics after 128K instructions
// without an await; this code yields (`await ds.sleep(0)`) after every LADDER_STEPS ladder
// steps and every SQR_CHUNK squarings: the longest slice is 35.6K instructions (two ladder
// steps plus loading and storing the state).
//
// Code size: the unrolled ladder is about 30 KB of bytecode (fmul 3.9 KB, fsqrn 2.8 KB) out
// of the image's 64 KB limit on function code: the price of the speed.
//
// Constant time: the ladder executes the same instructions for every scalar and point
// (conditional swaps by mask, scalar bits read at public positions); the final reduction
// selects by mask; the all-zero check OR-accumulates every byte before the one branch on
// its (public) outcome.
import * as ds from "@devicescript/core"
import { LIMBS, fmul, fsqrn, ladder } from "./field25519"

/** Ladder steps per slice between yields (17,331 instructions each). */
const LADDER_STEPS = 2
/** Squarings per slice between yields (1,423 instructions each). */
const SQR_CHUNK = 20
const MASK = 8191
const HALF = 4096

function checkLength(name: string, b: Buffer): void {
    if (!b || b.length !== 32) throw new TypeError("x25519: " + name + " must be a 32-byte Buffer")
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
// reduced by the arithmetic) into balanced limbs at st[off..off+20).
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
    // balance: limbs into [-4096, 4095] with the carry into the next (bit 255 is clear, so
    // the last carry is 0)
    let c = 0
    for (let i = 0; i < LIMBS; i++) {
        const v = st[off + i] + c + HALF
        st[off + i] = (v & MASK) - HALF
        c = v >> 13
    }
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

// Fully reduces a (limbs in [-4098, 4097]) to the canonical value in [0, p) with unsigned
// 13-bit limbs, in constant time. t is scratch.
function freeze(a: number[], t: number[]): void {
    // + 32p = 2^260 - 608 (limbs 7584, 8191, ..., 8191) makes every limb positive
    a[0] += 7584
    for (let i = 1; i < LIMBS; i++) a[i] += MASK
    a[0] += 608 * carry(a) // value < 2^261: fold the carry of bit 260 (2^260 = 608)
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

async function sqrn(o: number[], a: number[], n: number): Promise<void> {
    let src = a
    while (n > 0) {
        const c = n < SQR_CHUNK ? n : SQR_CHUNK
        fsqrn(o, src, c)
        src = o
        n -= c
        await ds.sleep(0)
    }
}

// o = z^(p - 2) = z^(2^255 - 21): 254 squarings and 11 multiplications.
async function invert(o: number[], z: number[], t0: number[], t1: number[], t2: number[], t3: number[]): Promise<void> {
    await sqrn(t0, z, 1) // z^2
    await sqrn(t1, t0, 2) // z^8
    fmul(t1, z, t1) // z^9
    fmul(t0, t0, t1) // z^11
    await sqrn(t2, t0, 1) // z^22
    fmul(t1, t1, t2) // z^(2^5 - 1)
    await sqrn(t2, t1, 5)
    fmul(t1, t2, t1) // z^(2^10 - 1)
    await sqrn(t2, t1, 10)
    fmul(t2, t2, t1) // z^(2^20 - 1)
    await sqrn(t3, t2, 20)
    fmul(t2, t3, t2) // z^(2^40 - 1)
    await sqrn(t2, t2, 10)
    fmul(t1, t2, t1) // z^(2^50 - 1)
    await sqrn(t2, t1, 50)
    fmul(t2, t2, t1) // z^(2^100 - 1)
    await sqrn(t3, t2, 100)
    fmul(t2, t3, t2) // z^(2^200 - 1)
    await sqrn(t2, t2, 50)
    fmul(t1, t2, t1) // z^(2^250 - 1)
    await sqrn(t1, t1, 5) // z^(2^255 - 32)
    fmul(o, t1, t0) // z^(2^255 - 21)
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
export async function x25519(scalar: Buffer, u: Buffer): Promise<Buffer> {
    checkLength("scalar", scalar)
    checkLength("u", u)
    const k = scalar.slice(0)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64

    // st: x1, x2, z2, x3, z3 (20 limbs each) and the pending swap bit
    const st: number[] = []
    for (let i = 0; i <= 5 * LIMBS; i++) st.push(0)
    unpack(st, 0, u)
    st[20] = 1 // x2 = 1, z2 = 0
    for (let i = 0; i < LIMBS; i++) st[60 + i] = st[i] // x3 = u
    st[80] = 1 // z3 = 1

    for (let t = 254; t >= 0; t -= LADDER_STEPS) {
        ladder(st, k, t, t + 1 < LADDER_STEPS ? t + 1 : LADDER_STEPS)
        await ds.sleep(0)
    }
    // the last conditional swap, by mask
    const m = 0 - st[100]
    for (let i = 20; i < 60; i++) {
        const d = m & (st[i] ^ st[i + 40])
        st[i] ^= d
        st[i + 40] ^= d
    }

    const x2 = st.slice(20, 40)
    const z2 = st.slice(40, 60)
    const t0 = fe()
    const t1 = fe()
    const t2 = fe()
    const t3 = fe()
    await invert(z2, z2, t0, t1, t2, t3)
    fmul(x2, x2, z2)
    freeze(x2, t0)
    const out = pack(x2)

    // wipe secrets (best effort on a garbage-collected VM: the runtime may have copied them)
    for (let i = 0; i < 32; i++) k[i] = 0
    wipe(st)
    wipe(x2)
    wipe(z2)
    wipe(t0)
    wipe(t1)
    wipe(t2)
    wipe(t3)

    // RFC 7748 section 6.1: reject the all-zero output, checked without early exit
    let acc = 0
    for (let i = 0; i < 32; i++) acc |= out[i]
    if (acc === 0) throw new Error("x25519: all-zero shared secret (low-order point)")
    return out
}

const BASE_U = Buffer.from("0900000000000000000000000000000000000000000000000000000000000000", "hex")

/**
 * X25519 with the base point u = 9: the public key for a secret scalar.
 * @param scalar 32-byte secret scalar (clamped on a copy)
 * @returns the 32-byte public key
 */
export async function x25519Base(scalar: Buffer): Promise<Buffer> {
    return await x25519(scalar, BASE_U)
}
