// The straight TweetNaCl-style X25519 port, kept ONLY as the reference the benchmark
// (devs/bench/device/x25519.ts) times against src/crypto/x25519.ts. Not shipped, not for use.
//
// Field elements are number[] of 16 limbs of 16 bits; every operation allocates its
// temporaries, as a direct port does. Products of 16-bit limbs exceed int32, so the VM
// computes them in doubles. It yields after every half ladder step and every few inversion
// steps (a field multiplication here is about 9,000 VM instructions).
import * as ds from "@devicescript/core"

type Fe = number[]

function fe(): Fe {
    return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

function carry(o: Fe): void {
    let c = 1
    for (let i = 0; i < 16; i++) {
        const v = o[i] + c + 65535
        c = Math.floor(v / 65536)
        o[i] = v - c * 65536
    }
    o[0] += 38 * (c - 1)
}

function select(p: Fe, q: Fe, b: number): void {
    const m = ~(b - 1)
    for (let i = 0; i < 16; i++) {
        const t = m & (p[i] ^ q[i])
        p[i] ^= t
        q[i] ^= t
    }
}

function add(a: Fe, b: Fe): Fe {
    const o = fe()
    for (let i = 0; i < 16; i++) o[i] = a[i] + b[i]
    return o
}

function sub(a: Fe, b: Fe): Fe {
    const o = fe()
    for (let i = 0; i < 16; i++) o[i] = a[i] - b[i]
    return o
}

function mul(a: Fe, b: Fe): Fe {
    const t = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) t[i + j] += a[i] * b[j]
    for (let i = 0; i < 15; i++) t[i] += 38 * t[i + 16]
    const o = fe()
    for (let i = 0; i < 16; i++) o[i] = t[i]
    carry(o)
    carry(o)
    return o
}

const sqr = (a: Fe) => mul(a, a)

async function invert(z: Fe): Promise<Fe> {
    let c = z.slice(0)
    for (let a = 253; a >= 0; a--) {
        c = sqr(c)
        if (a !== 2 && a !== 4) c = mul(c, z)
        if ((a & 3) === 0) await ds.sleep(0)
    }
    return c
}

function unpack(n: Buffer): Fe {
    const o = fe()
    for (let i = 0; i < 16; i++) o[i] = n[2 * i] + (n[2 * i + 1] << 8)
    o[15] &= 0x7fff
    return o
}

function pack(n: Fe): Buffer {
    const t = n.slice(0)
    carry(t)
    carry(t)
    carry(t)
    const m = fe()
    for (let j = 0; j < 2; j++) {
        m[0] = t[0] - 0xffed
        for (let i = 1; i < 15; i++) {
            m[i] = t[i] - 0xffff - ((m[i - 1] >> 16) & 1)
            m[i - 1] &= 0xffff
        }
        m[15] = t[15] - 0x7fff - ((m[14] >> 16) & 1)
        const b = (m[15] >> 16) & 1
        m[14] &= 0xffff
        select(t, m, 1 - b)
    }
    const o = Buffer.alloc(32)
    for (let i = 0; i < 16; i++) {
        o[2 * i] = t[i] & 0xff
        o[2 * i + 1] = t[i] >> 8
    }
    return o
}

/** Reference X25519 (RFC 7748), the straight port. Benchmark use only. */
export async function x25519Reference(scalar: Buffer, u: Buffer): Promise<Buffer> {
    const k = scalar.slice(0)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    const x1 = unpack(u)
    let a = fe()
    let b = x1.slice(0)
    let c = fe()
    let d = fe()
    a[0] = 1
    d[0] = 1
    const a24 = fe()
    a24[0] = 0xdb41
    a24[1] = 1
    for (let i = 254; i >= 0; i--) {
        const r = (k[i >> 3] >> (i & 7)) & 1
        select(a, b, r)
        select(c, d, r)
        let e = add(a, c)
        a = sub(a, c)
        c = add(b, d)
        b = sub(b, d)
        d = sqr(e)
        const f = sqr(a)
        a = mul(c, a)
        c = mul(b, e)
        e = add(a, c)
        a = sub(a, c)
        b = sqr(a)
        c = sub(d, f)
        await ds.sleep(0)
        a = mul(c, a24)
        a = add(a, d)
        c = mul(c, a)
        a = mul(d, f)
        d = mul(b, x1)
        b = sqr(e)
        select(a, b, r)
        select(c, d, r)
        await ds.sleep(0)
    }
    const zi = await invert(c)
    return pack(mul(a, zi))
}
