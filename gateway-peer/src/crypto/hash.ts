// SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and the HKDF of Noise revision 34 section 4.3,
// on node:crypto.
//
// Speed (issue 15): a handshake makes a few dozen of these calls on inputs of a few dozen bytes,
// where node:crypto's per-call object costs more than the compressions. SHA-256 therefore goes
// through the one-shot crypto.hash (Node 20.12 and later; createHash before), and the HKDF's last
// output can be left to be computed when it is used (hkdf2Deferred: Noise's MixKey computes a
// temp_k that the next MixKey often overwrites unused).
import * as nodeCrypto from "node:crypto"
import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto"

/** SHA-256 output length (Noise's HASHLEN). */
export const HASH_LEN = 32

/** node:crypto's one-shot hash (Node 20.12+), or undefined on an older Node 20. */
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: Buffer, encoding: "buffer") => Buffer }).hash

/** SHA-256 of the concatenation of `data`. */
export function sha256(...data: Buffer[]): Buffer {
    if (oneShot !== undefined) return oneShot("sha256", data.length === 1 ? (data[0] as Buffer) : Buffer.concat(data), "buffer")
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
 * Noise HKDF with two outputs, the second computed only when asked for: the same bytes as
 * hkdf2, one HMAC less when output2 is never used (MixKey's temp_k overwritten by the next
 * MixKey, Noise section 5.2). The closure holds temp_key until output2 is computed (then it is
 * wiped) or the closure is dropped: best effort on a garbage-collected VM. Asking again returns
 * the same Buffer: whoever keeps it copies it.
 */
export function hkdf2Deferred(ck: Buffer, ikm: Buffer): [Buffer, () => Buffer] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    let out2: Buffer | undefined
    const second = (): Buffer => {
        if (out2 === undefined) {
            out2 = hmacSha256(tempKey, out1, TWO)
            tempKey.fill(0)
        }
        return out2
    }
    return [out1, second]
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

/** Noise HKDF with three outputs, the third computed only when asked for (as hkdf2Deferred). */
export function hkdf3Deferred(ck: Buffer, ikm: Buffer): [Buffer, Buffer, () => Buffer] {
    const tempKey = hmacSha256(ck, ikm)
    const out1 = hmacSha256(tempKey, ONE)
    const out2 = hmacSha256(tempKey, out1, TWO)
    let out3: Buffer | undefined
    const third = (): Buffer => {
        if (out3 === undefined) {
            out3 = hmacSha256(tempKey, out2, THREE)
            tempKey.fill(0)
        }
        return out3
    }
    return [out1, out2, third]
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
