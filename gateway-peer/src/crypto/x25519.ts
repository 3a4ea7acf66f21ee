// X25519 (RFC 7748 section 5) on node:crypto. Keys cross this module's edge as 32-byte raw
// buffers; inside, node:crypto wants KeyObjects, so the raw bytes are wrapped in the fixed
// DER prefixes of RFC 8410 (PKCS#8 for a private key, SPKI for a public key). OpenSSL clamps
// the scalar and masks the top bit of u, as RFC 7748 section 5 requires.
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto"
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

// RFC 8410 section 7 / 4: OneAsymmetricKey { version 0, id-X25519 (1.3.101.110), OCTET STRING
// { OCTET STRING (32) } } and SubjectPublicKeyInfo { id-X25519, BIT STRING (32) }.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex")
const LOW_ORDER = "x25519: all-zero shared secret (low-order point)"

function check(b: Buffer, name: string): void {
    if (!Buffer.isBuffer(b) || b.length !== DH_LEN) throw new TypeError(`x25519: ${name} must be ${DH_LEN} bytes`)
}

function privateKeyObject(scalar: Buffer): KeyObject {
    return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, scalar]), format: "der", type: "pkcs8" })
}

function publicKeyObject(u: Buffer): KeyObject {
    return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, u]), format: "der", type: "spki" })
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
    const spki = createPublicKey(privateKeyObject(scalar)).export({ format: "der", type: "spki" })
    return Buffer.from(spki.subarray(SPKI_PREFIX.length))
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
