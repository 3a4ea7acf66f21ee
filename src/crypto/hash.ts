// SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104), Noise's HKDF (Noise rev 34 section 4.3) and
// RFC 5869 HKDF, on top of the runtime's native digest: nothing here hashes in bytecode.
import { digest, hmac } from "@devicescript/crypto"

/** SHA-256 output length in bytes (Noise's HASHLEN). */
export const HASH_LEN = 32

const ONE = hex`01`
const TWO = hex`02`
const THREE = hex`03`

/**
 * SHA-256 of the concatenation of `data`.
 * @returns 32 bytes
 */
export function sha256(...data: Buffer[]): Buffer {
    return digest("sha256", ...data)
}

/**
 * HMAC-SHA-256 under `key` of the concatenation of `data` (RFC 2104).
 * @returns 32 bytes
 */
export function hmacSha256(key: Buffer, ...data: Buffer[]): Buffer {
    return hmac(key, "sha256", ...data)
}

/**
 * Noise HKDF (rev 34 section 4.3) with two outputs:
 * `temp_key = HMAC(ck, ikm)`, `out1 = HMAC(temp_key, 0x01)`, `out2 = HMAC(temp_key, out1 || 0x02)`.
 * @param ck chaining key (32 bytes)
 * @param ikm input key material: empty, 32 bytes or a DH output
 * @returns `[out1, out2]`, 32 bytes each
 */
export function hkdf2(ck: Buffer, ikm: Buffer): Buffer[] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    const out2 = hmacSha256(tempKey, out1, TWO)
    // Best effort on a garbage-collected VM: copies may live on until collected.
    tempKey.fillAt(0, tempKey.length, 0)
    return [out1, out2]
}

/**
 * Noise HKDF (rev 34 section 4.3) with three outputs, as {@link hkdf2} plus
 * `out3 = HMAC(temp_key, out2 || 0x03)` (used by MixKeyAndHash for psk tokens).
 * @returns `[out1, out2, out3]`, 32 bytes each
 */
export function hkdf3(ck: Buffer, ikm: Buffer): Buffer[] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    const out2 = hmacSha256(tempKey, out1, TWO)
    const out3 = hmacSha256(tempKey, out2, THREE)
    tempKey.fillAt(0, tempKey.length, 0) // best effort, see hkdf2
    return [out1, out2, out3]
}

/**
 * HKDF-SHA-256 as in RFC 5869 (extract then expand), for the RFC's vectors and any
 * derivation that needs an `info` string or more than 32 bytes.
 * @param ikm input key material
 * @param salt salt; an empty buffer means HashLen zero bytes (RFC 5869 section 2.2)
 * @param info context string, may be empty
 * @param length output length in bytes, 0 < length <= 255 * 32
 * @returns `length` bytes of output key material
 */
export function hkdfSha256(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
    if (!(length > 0 && length <= 255 * HASH_LEN) || Math.floor(length) !== length) throw new RangeError("hkdfSha256: bad length " + length)
    // HMAC pads an empty key with zeros, which equals HashLen zero bytes: no special case.
    const prk = hmacSha256(salt, ikm)
    const okm = Buffer.alloc(length)
    const counter = Buffer.alloc(1)
    let t = Buffer.alloc(0)
    let pos = 0
    for (let i = 1; pos < length; i++) {
        counter[0] = i
        t = hmacSha256(prk, t, info, counter)
        okm.blitAt(pos, t, 0, Math.min(HASH_LEN, length - pos))
        pos += HASH_LEN
    }
    prk.fillAt(0, prk.length, 0) // best effort, see hkdf2
    return okm
}

/**
 * Compares two buffers in time that depends only on their lengths (OR-accumulated
 * differences, no early exit). Buffers of different lengths are unequal.
 */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
    if (a.length !== b.length) return false
    let diff = 0
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i]
    return diff === 0
}
