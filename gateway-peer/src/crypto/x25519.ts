// X25519 (RFC 7748 section 5) on node:crypto. Keys cross this module's edge as 32-byte raw
// buffers; inside, node:crypto wants KeyObjects. OpenSSL clamps the scalar and masks the top
// bit of u, as RFC 7748 section 5 requires.
//
// Speed. Building a KeyObject from DER goes through OpenSSL 3's decoder lookup, which costs
// about ten X25519 operations (0.15 ms for a public key, 0.4 ms for a private one, against
// 0.034 ms for the DH itself). So raw keys are imported as JWK (node's raw import: 0.01 ms
// public, 0.035 ms private), and the KeyObject of a private key is kept for as long as the
// caller keeps the same Buffer: the gateway's static key is imported once, and an ephemeral
// from generateKeyPair() is imported once for its key generation and reused by its two DHs.
// The cache is a WeakMap keyed by the Buffer object, so it never outlives the caller's key,
// and an entry is used only while the Buffer still holds the bytes it was made from (a
// caller may overwrite or wipe a key in place).
import { createPrivateKey, createPublicKey, diffieHellman, timingSafeEqual, type KeyObject } from "node:crypto"
import { randomBytes } from "./random.js"

/** Length of an X25519 scalar, u-coordinate and shared secret (Noise's DHLEN). */
export const DH_LEN = 32

/** A raw X25519 key pair. */
export interface KeyPair {
    /** the 32-byte scalar (clamped when used, not here) */
    readonly privateKey: Buffer
    /** the 32-byte u-coordinate of privateKey times the base point */
    readonly publicKey: Buffer
}

const LOW_ORDER = "x25519: all-zero shared secret (low-order point)"

function check(b: Buffer, name: string): void {
    if (!Buffer.isBuffer(b) || b.length !== DH_LEN) throw new TypeError(`x25519: ${name} must be ${DH_LEN} bytes`)
}

/** Private KeyObjects by the caller's Buffer, with a copy of the bytes they were made from. */
const privateKeys = new WeakMap<Buffer, { bytes: Buffer; key: KeyObject }>()

function privateKeyObject(scalar: Buffer): KeyObject {
    const hit = privateKeys.get(scalar)
    if (hit !== undefined && timingSafeEqual(hit.bytes, scalar)) return hit.key
    // A private JWK needs an `x` string for node's validator, which derives the public key
    // from `d` and ignores `x` (the tests check x25519Base against RFC 7748 through this path).
    const key = createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: scalar.toString("base64url"), x: "" }, format: "jwk" })
    privateKeys.set(scalar, { bytes: Buffer.from(scalar), key })
    return key
}

/**
 * Public KeyObjects by the caller's Buffer, with a copy of the bytes they were made from: an
 * ephemeral `re` is imported once for its two DHs (es, ee), and a device's static key once for
 * as long as its interned Buffer lives (internPublicKey). Public keys are not secret: a plain
 * comparison checks that the Buffer still holds its bytes.
 */
const publicKeys = new WeakMap<Buffer, { bytes: Buffer; key: KeyObject }>()

function publicKeyObject(u: Buffer): KeyObject {
    const hit = publicKeys.get(u)
    if (hit !== undefined && hit.bytes.equals(u)) return hit.key
    const key = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: u.toString("base64url") }, format: "jwk" })
    publicKeys.set(u, { bytes: Buffer.from(u), key })
    return key
}

/** How many static public keys internPublicKey keeps (the oldest goes first). */
export const INTERNED_PUBLIC_KEYS_MAX = 8192

const interned = new Map<string, Buffer>()

/**
 * One Buffer per public key value, for keys used again and again (a device's static key, read
 * afresh from the registry at every handshake): passing the returned Buffer to x25519 imports
 * the key into node:crypto once per device instead of once per handshake. Bounded at
 * INTERNED_PUBLIC_KEYS_MAX keys, least recently used out first. Never for private keys.
 */
export function internPublicKey(u: Buffer): Buffer {
    check(u, "u")
    const id = u.toString("latin1")
    const hit = interned.get(id)
    if (hit !== undefined) {
        interned.delete(id) // refreshed: most recently used last
        interned.set(id, hit)
        return hit
    }
    if (interned.size >= INTERNED_PUBLIC_KEYS_MAX) interned.delete(interned.keys().next().value as string)
    const copy = Buffer.from(u)
    interned.set(id, copy)
    return copy
}

function isZero(b: Buffer): boolean {
    // OR-accumulate: no early exit, so the time does not depend on where a byte is non-zero.
    let acc = 0
    for (const x of b) acc |= x
    return acc === 0
}

/**
 * X25519(scalar, u): the u-coordinate of scalar times the point with u-coordinate `u`.
 * @param scalar 32 bytes, clamped per RFC 7748
 * @param u 32 bytes, the peer's public key (top bit ignored)
 * @returns the 32-byte shared secret
 * @throws Error("x25519: all-zero shared secret (low-order point)") when `u` is a low-order
 *   point (Noise section 12.1 and the design brief: reject before use)
 */
export function x25519(scalar: Buffer, u: Buffer): Buffer {
    check(scalar, "scalar")
    check(u, "u")
    let shared: Buffer
    try {
        shared = diffieHellman({ privateKey: privateKeyObject(scalar), publicKey: publicKeyObject(u) })
    } catch {
        // OpenSSL refuses to derive an all-zero secret itself (X25519 returns 0); any other
        // failure here is also a bad point. Its message is replaced: no detail, no key bytes.
        throw new Error(LOW_ORDER)
    }
    if (shared.length !== DH_LEN || isZero(shared)) throw new Error(LOW_ORDER)
    return shared
}

/**
 * X25519(scalar, 9): the public key for `scalar`.
 * @param scalar 32 bytes
 * @returns the 32-byte public key
 */
export function x25519Base(scalar: Buffer): Buffer {
    check(scalar, "scalar")
    const x = createPublicKey(privateKeyObject(scalar)).export({ format: "jwk" }).x
    const pub = typeof x === "string" ? Buffer.from(x, "base64url") : Buffer.alloc(0)
    if (pub.length !== DH_LEN) throw new Error("x25519: node:crypto exported a malformed public key")
    return pub
}

/** The key pair of a given private key (test vectors, provisioned keys). */
export function keyPairFromPrivate(privateKey: Buffer): KeyPair {
    return { privateKey: Buffer.from(privateKey), publicKey: x25519Base(privateKey) }
}

/**
 * A fresh key pair from the CSPRNG (node:crypto `randomBytes`, which throws rather than
 * return weak bytes: the default fails closed).
 * @param rng the randomness source, injected for deterministic tests
 */
export function generateKeyPair(rng: (n: number) => Buffer = randomBytes): KeyPair {
    const privateKey = rng(DH_LEN)
    check(privateKey, "random scalar")
    return { privateKey, publicKey: x25519Base(privateKey) }
}
