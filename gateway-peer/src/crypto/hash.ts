// SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and the HKDF of Noise revision 34 section 4.3,
// on node:crypto.
import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto"

/** SHA-256 output length (Noise's HASHLEN). */
export const HASH_LEN = 32

/** SHA-256 of the concatenation of `data`. */
export function sha256(...data: Buffer[]): Buffer {
    const h = createHash("sha256")
    for (const d of data) h.update(d)
    return h.digest()
}

/** HMAC-SHA-256 under `key` of the concatenation of `data`. */
export function hmacSha256(key: Buffer, ...data: Buffer[]): Buffer {
    const m = createHmac("sha256", key)
    for (const d of data) m.update(d)
    return m.digest()
}

const ONE = Buffer.from([1])
const TWO = Buffer.from([2])
const THREE = Buffer.from([3])

/**
 * Noise HKDF with two outputs (section 4.3):
 * "Sets temp_key = HMAC-HASH(chaining_key, input_key_material).
 *  Sets output1 = HMAC-HASH(temp_key, byte(0x01)).
 *  Sets output2 = HMAC-HASH(temp_key, output1 || byte(0x02))."
 * @param ck the chaining key (32 bytes)
 * @param ikm input key material (0, 32 or DHLEN bytes)
 */
export function hkdf2(ck: Buffer, ikm: Buffer): [Buffer, Buffer] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    const out2 = hmacSha256(tempKey, out1, TWO)
    tempKey.fill(0) // best effort on a garbage-collected VM
    return [out1, out2]
}

/**
 * Noise HKDF with three outputs (section 4.3): as hkdf2, then
 * "Sets output3 = HMAC-HASH(temp_key, output2 || byte(0x03))."
 */
export function hkdf3(ck: Buffer, ikm: Buffer): [Buffer, Buffer, Buffer] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    const out2 = hmacSha256(tempKey, out1, TWO)
    const out3 = hmacSha256(tempKey, out2, THREE)
    tempKey.fill(0)
    return [out1, out2, out3]
}

/**
 * RFC 5869 HKDF-SHA-256 (extract then expand), the same name and argument order as the
 * device's `hkdfSha256`. Noise's HKDF is the special case salt = ck, info empty, L = 64 or 96.
 * @param length output length in bytes, 0 < length <= 255 * 32
 */
export function hkdfSha256(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
    return Buffer.from(hkdfSync("sha256", ikm, salt, info, length))
}

/**
 * Constant-time equality for secrets (tags, MACs). Different lengths compare unequal; the
 * lengths themselves are not secret.
 */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && timingSafeEqual(a, b)
}
