// Tether's AEAD rule (PROTOCOL.md, "The substitution"; design brief): the device's native
// AES-256-CCM (RFC 3610 / NIST SP 800-38C) has no associated-data input, so the AD is bound
// through the key instead:
//
//     ENCRYPT(k, n, ad, plaintext) = AES-256-CCM(key = HMAC-SHA-256(k, ad),
//                                                nonce = 0x00 * 5 || uint64_be(n),
//                                                plaintext) -> ciphertext || tag16
//
// The native decrypt throws on a wrong tag; it is wrapped here, once, so that protocol code
// gets `undefined` and never an exception or a byte of unauthenticated plaintext. Both nonce
// encodings (counter n, and REKEY's 2^64 - 1) are built here, as on the gateway.
import { encrypt, decrypt } from "@devicescript/crypto"
import { hmacSha256 } from "./hash"

/** AES-256 key length in bytes; also the length of a Noise cipher key `k`. */
export const KEY_LEN = 32
/** CCM nonce length in bytes (L = 2: messages shorter than 64 KiB). */
export const NONCE_LEN = 13
/** CCM tag length in bytes. Never 0: the runtime's tagLength 0 is unauthenticated CTR. */
export const TAG_LEN = 16
/**
 * Tether's cap on the nonce counter (PROTOCOL.md 5.1): "a CipherState MUST refuse to encrypt or
 * decrypt with n >= NONCE_LIMIT = 2^32 - 1". Defined here, next to the nonce encoding, as on the
 * gateway: below both the CipherState that enforces it and tether/wire.ts that lists it.
 */
export const NONCE_LIMIT = 4294967295
/** The largest plaintext the runtime's CCM accepts (it needs length + 10 < 65536). */
export const MAX_PLAINTEXT = 65525

const TWO_32 = 4294967296
/** 2^53 - 1: the largest integer a double holds exactly; counters stay below it. */
const MAX_N = 9007199254740991

function checkBuffer(b: Buffer, name: string, len?: number) {
    if (!(b instanceof Buffer)) throw new TypeError(name + ": not a Buffer")
    if (len !== undefined && b.length !== len) throw new TypeError(name + ": expected " + len + " bytes, got " + b.length)
}

/** Writes v (an integer, 0 <= v < 2^32) big-endian at off, using no 32-bit bitwise ops. */
function putU32be(buf: Buffer, off: number, v: number) {
    const hi = Math.floor(v / 65536)
    const lo = v - hi * 65536
    buf[off] = hi >> 8
    buf[off + 1] = hi & 0xff
    buf[off + 2] = lo >> 8
    buf[off + 3] = lo & 0xff
}

/**
 * The 13-byte CCM nonce for counter `n`: five zero bytes then `n` as a big-endian uint64.
 * @param n a non-negative integer below 2^53 (a double holds it exactly)
 * @throws RangeError for anything else
 */
export function aeadNonce(n: number): Buffer {
    if (typeof n !== "number" || !(n >= 0 && n <= MAX_N) || Math.floor(n) !== n)
        throw new RangeError("aeadNonce: n must be an integer in [0, 2^53)")
    const nonce = Buffer.alloc(NONCE_LEN)
    const hi = Math.floor(n / TWO_32)
    // n - hi * 2^32 is exact for n < 2^53; it equals `n >>> 0` without relying on how the VM
    // converts a double above 2^31 to an integer.
    putU32be(nonce, 5, hi)
    putU32be(nonce, 9, n - hi * TWO_32)
    return nonce
}

/**
 * The 13-byte CCM nonce of n = 2^64 - 1, REKEY's maxnonce, built directly: PROTOCOL.md 5.1,
 * "implementations build these 13 bytes directly: 2^64 - 1 is not a safe integer in JavaScript".
 */
export function aeadMaxNonce(): Buffer {
    const nonce = Buffer.alloc(NONCE_LEN)
    nonce.fillAt(NONCE_LEN - 8, 8, 0xff)
    return nonce
}

/**
 * Raw AES-256-CCM encryption with a 16-byte tag and no associated data.
 * @param key 32 bytes
 * @param nonce 13 bytes
 * @param plaintext at most {@link MAX_PLAINTEXT} bytes
 * @returns ciphertext || tag (plaintext.length + 16 bytes)
 */
export function ccmEncrypt(key: Buffer, nonce: Buffer, plaintext: Buffer): Buffer {
    checkBuffer(key, "ccmEncrypt key", KEY_LEN)
    checkBuffer(nonce, "ccmEncrypt nonce", NONCE_LEN)
    checkBuffer(plaintext, "ccmEncrypt plaintext")
    if (plaintext.length > MAX_PLAINTEXT) throw new RangeError("ccmEncrypt: plaintext too long")
    return encrypt({ data: plaintext, algo: "aes-256-ccm", key, iv: nonce, tagLength: TAG_LEN })
}

/**
 * Raw AES-256-CCM decryption and tag check (16-byte tag, no associated data).
 * Never throws for a bad ciphertext: the tag is verified by the runtime before any plaintext
 * is returned.
 * @param key 32 bytes (a wrong length is a caller bug and throws TypeError)
 * @param nonce 13 bytes (likewise)
 * @param ciphertext ciphertext || tag
 * @returns the plaintext, or `undefined` when the input is too short, too long or not authentic
 */
export function ccmDecrypt(key: Buffer, nonce: Buffer, ciphertext: Buffer): Buffer | undefined {
    checkBuffer(key, "ccmDecrypt key", KEY_LEN)
    checkBuffer(nonce, "ccmDecrypt nonce", NONCE_LEN)
    if (!(ciphertext instanceof Buffer)) return undefined
    if (ciphertext.length < TAG_LEN || ciphertext.length > MAX_PLAINTEXT + TAG_LEN) return undefined
    try {
        return decrypt({ data: ciphertext, algo: "aes-256-ccm", key, iv: nonce, tagLength: TAG_LEN })
    } catch (e) {
        // "encryption tag mismatch": the only outcome is "not authentic"; the reason stays here.
        return undefined
    }
}

/**
 * Tether's ENCRYPT(k, n, ad, plaintext): AES-256-CCM under HMAC-SHA-256(k, ad) with the
 * nonce {@link aeadNonce}(n).
 * @param k the cipher key, 32 bytes
 * @param n the nonce counter, an integer in [0, 2^53)
 * @param ad associated data (may be empty; the rule is applied uniformly)
 * @param plaintext the message
 * @returns ciphertext || tag16
 */
export function aeadEncrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer {
    checkBuffer(k, "aeadEncrypt k", KEY_LEN)
    checkBuffer(ad, "aeadEncrypt ad")
    const nonce = aeadNonce(n)
    const key = hmacSha256(k, ad)
    const out = ccmEncrypt(key, nonce, plaintext)
    key.fillAt(0, key.length, 0) // best effort on a garbage-collected VM
    return out
}

/**
 * Tether's DECRYPT(k, n, ad, ciphertext), the inverse of {@link aeadEncrypt}.
 * @param k the cipher key, 32 bytes (a wrong length is a caller bug and throws TypeError)
 * @param n the nonce counter, an integer in [0, 2^53) (RangeError otherwise)
 * @returns the plaintext, or `undefined` if the ciphertext is short or not authentic;
 *     nothing of the plaintext is released on failure
 */
export function aeadDecrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined {
    checkBuffer(k, "aeadDecrypt k", KEY_LEN)
    checkBuffer(ad, "aeadDecrypt ad")
    const nonce = aeadNonce(n)
    const key = hmacSha256(k, ad)
    const out = ccmDecrypt(key, nonce, ciphertext)
    key.fillAt(0, key.length, 0) // best effort on a garbage-collected VM
    return out
}
