// Tether's AEAD rule (design brief, "The handshake framework"; PROTOCOL.md): the device's
// native AES-256-CCM (NIST SP 800-38C, RFC 3610) takes no associated data, so the AD is
// bound through the key instead:
//
//     ENCRYPT(k, n, ad, plaintext) = AES-256-CCM(key = HMAC-SHA-256(k, ad),
//                                                nonce = 0x00 * 5 || uint64_be(n),
//                                                plaintext) -> ciphertext || tag16
//
// applied uniformly, also for an empty `ad`. node:crypto's decipher throws on a wrong tag;
// it is wrapped here, once, so callers get `undefined` and never unauthenticated plaintext.
import { createCipheriv, createDecipheriv } from "node:crypto"
import { hmacSha256 } from "./hash.js"

/** AES-256 key length in bytes; also the length of a Noise cipher key `k`. */
export const KEY_LEN = 32
/** CCM nonce length in bytes (L = 2: messages up to 64 KiB). */
export const NONCE_LEN = 13
/** CCM tag length in bytes. */
export const TAG_LEN = 16
/**
 * Tether's cap on the nonce counter (PROTOCOL.md 5.1): "a CipherState MUST refuse to encrypt or
 * decrypt with n >= NONCE_LIMIT = 2^32 - 1". Defined here, next to the nonce encoding, because
 * this is the layer below both the CipherState that enforces it and wire.ts that lists it.
 */
export const NONCE_LIMIT = 2 ** 32 - 1

const NONCE_ZEROS = NONCE_LEN - 8

// node:crypto (v20) hands OpenSSL a NULL pointer for an empty Buffer whose backing store was
// never allocated (any zero-length Buffer once its `.buffer` has been read), and OpenSSL's CCM
// takes update(NULL, 0) for a Final call: the CBC-MAC is then never computed. On encryption
// that fails with "tag not set"; on decryption it ACCEPTS ANY TAG for an empty ciphertext
// (checked by the crypto tests). Every empty input is therefore passed as a zero-length view
// of this one-byte buffer, whose data pointer is never NULL.
const ANCHOR = Buffer.alloc(1)
/** The empty `ad` of transport records; nonNull() still guards what reaches OpenSSL. */
const EMPTY = ANCHOR.subarray(0, 0)

function nonNull(b: Buffer): Buffer {
    return b.length > 0 ? b : ANCHOR.subarray(0, 0)
}

function checkKey(key: Buffer, name: string): void {
    if (!Buffer.isBuffer(key) || key.length !== KEY_LEN) throw new TypeError(`${name}: key must be ${KEY_LEN} bytes`)
}

function checkNonce(nonce: Buffer, name: string): void {
    if (!Buffer.isBuffer(nonce) || nonce.length !== NONCE_LEN) throw new TypeError(`${name}: nonce must be ${NONCE_LEN} bytes`)
}

/**
 * The 13-byte CCM nonce for counter `n`: five zero bytes, then `n` as a big-endian uint64.
 * The one place the nonce encoding is defined on the gateway.
 * @param n a non-negative safe integer (below 2^53)
 * @throws RangeError for anything else
 */
export function aeadNonce(n: number): Buffer {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("aeadNonce: n must be an integer in [0, 2^53)")
    // uint64_be(n) as two uint32 halves: no BigInt per record (n < 2^53, so both are exact)
    const nonce = Buffer.allocUnsafe(NONCE_LEN)
    nonce.fill(0, 0, NONCE_ZEROS)
    nonce.writeUInt32BE(Math.floor(n / 2 ** 32), NONCE_ZEROS)
    nonce.writeUInt32BE(n >>> 0, NONCE_ZEROS + 4)
    return nonce
}

/**
 * Raw AES-256-CCM encryption with a 16-byte tag.
 * @param key 32 bytes
 * @param nonce 13 bytes
 * @param plaintext any length below 64 KiB
 * @param aad associated data; empty (the default) leaves the CCM Adata flag clear, which is
 *   what the device's native CCM computes
 * @returns ciphertext || tag (plaintext.length + 16 bytes)
 */
export function ccmEncrypt(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer = EMPTY): Buffer {
    checkKey(key, "ccmEncrypt")
    checkNonce(nonce, "ccmEncrypt")
    const cipher = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_LEN })
    // CCM needs the message length before any data; node takes it through setAAD, also for
    // an empty AAD.
    cipher.setAAD(nonNull(aad), { plaintextLength: plaintext.length })
    const ct = cipher.update(nonNull(plaintext))
    cipher.final() // CCM: empty; it computes the tag
    // one buffer for ciphertext || tag, one copy of the ciphertext
    const out = Buffer.allocUnsafe(ct.length + TAG_LEN)
    ct.copy(out, 0)
    cipher.getAuthTag().copy(out, ct.length)
    return out
}

/**
 * Raw AES-256-CCM decryption with a 16-byte tag. Never throws on a wrong tag or a short input.
 * @param ciphertext ciphertext || tag
 * @returns the plaintext, or undefined if the input is shorter than a tag or the tag is wrong
 *   (no byte of plaintext is released then)
 */
export function ccmDecrypt(key: Buffer, nonce: Buffer, ciphertext: Buffer, aad: Buffer = EMPTY): Buffer | undefined {
    checkKey(key, "ccmDecrypt")
    checkNonce(nonce, "ccmDecrypt")
    if (ciphertext.length < TAG_LEN) return undefined
    const ctLen = ciphertext.length - TAG_LEN
    try {
        const decipher = createDecipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_LEN })
        decipher.setAuthTag(ciphertext.subarray(ctLen))
        decipher.setAAD(nonNull(aad), { plaintextLength: ctLen })
        const pt = decipher.update(nonNull(ciphertext.subarray(0, ctLen)))
        // For CCM the tag is checked in update(); a failure is reported by final().
        decipher.final()
        return pt
    } catch {
        return undefined
    }
}

/**
 * Tether's ENCRYPT(k, n, ad, plaintext).
 * @param k the 32-byte Noise cipher key
 * @param n the nonce counter, a non-negative safe integer
 * @param ad associated data, bound through the key: HMAC-SHA-256(k, ad)
 * @returns ciphertext || tag16
 */
export function aeadEncrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer {
    checkKey(k, "aeadEncrypt")
    const nonce = aeadNonce(n)
    const key = hmacSha256(k, ad)
    try {
        return ccmEncrypt(key, nonce, plaintext)
    } finally {
        key.fill(0) // best effort on a garbage-collected VM
    }
}

/**
 * Tether's DECRYPT(k, n, ad, ciphertext).
 * @returns the plaintext, or undefined on a wrong tag or an input shorter than a tag
 * @throws only on caller errors (a key that is not 32 bytes, an invalid n)
 */
export function aeadDecrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined {
    checkKey(k, "aeadDecrypt")
    const nonce = aeadNonce(n)
    if (ciphertext.length < TAG_LEN) return undefined
    const key = hmacSha256(k, ad)
    try {
        return ccmDecrypt(key, nonce, ciphertext)
    } finally {
        key.fill(0)
    }
}

/**
 * Noise REKEY(k) for Tether's cipher (section 4.2's default): "the first 32 bytes from
 * ENCRYPT(k, maxnonce, zerolen, zeros)", maxnonce = 2^64 - 1. That n is above 2^53, so it is
 * encoded here directly rather than through aeadNonce.
 */
export function aeadRekey(k: Buffer): Buffer {
    checkKey(k, "aeadRekey")
    const key = hmacSha256(k, EMPTY)
    try {
        return rekeyUnder(key)
    } finally {
        key.fill(0)
    }
}

/** REKEY given HMAC-SHA-256(k, ""): CCM with the 13 bytes of 2^64 - 1, built directly. */
function rekeyUnder(key: Buffer): Buffer {
    const nonce = Buffer.alloc(NONCE_LEN, 0xff)
    nonce.fill(0, 0, NONCE_ZEROS)
    return ccmEncrypt(key, nonce, Buffer.alloc(KEY_LEN)).subarray(0, KEY_LEN)
}

/**
 * ENCRYPT, DECRYPT and REKEY with an empty `ad` under one Noise key `k`, with the per-key work
 * done once: PROTOCOL.md 3.1 allows caching HMAC-SHA-256(k, "") "for as long as k is unchanged".
 * Only the empty `ad` is cached (transport records); a handshake payload (ad = h) always goes
 * through aeadEncrypt/aeadDecrypt. The output is byte for byte that of aeadEncrypt(k, n, "",
 * ...) and aeadRekey(k). It is what AESCCM's prepare(k) returns (noise/cipher.ts); whoever
 * holds one calls destroy() when `k` changes (CipherState does, on initializeKey, rekey and
 * key update); it holds the derived key only, never `k` itself.
 */
export class AeadEmptyAdKey {
    #key: Buffer | undefined

    /** @param k the 32-byte Noise cipher key; HMAC-SHA-256(k, "") is computed here, once */
    constructor(k: Buffer) {
        checkKey(k, "AeadEmptyAdKey")
        this.#key = hmacSha256(k, EMPTY)
    }

    #derived(): Buffer {
        if (this.#key === undefined) throw new Error("AeadEmptyAdKey: destroyed")
        return this.#key
    }

    /** ENCRYPT(k, n, "", plaintext) -> ciphertext || tag16 */
    encrypt(n: number, plaintext: Buffer): Buffer {
        return ccmEncrypt(this.#derived(), aeadNonce(n), plaintext)
    }

    /** DECRYPT(k, n, "", ciphertext): the plaintext, or undefined on a wrong tag or a short input */
    decrypt(n: number, ciphertext: Buffer): Buffer | undefined {
        const key = this.#derived()
        const nonce = aeadNonce(n)
        if (ciphertext.length < TAG_LEN) return undefined
        return ccmDecrypt(key, nonce, ciphertext)
    }

    /** REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64 - 1, "", zeros(32)), the same bytes as aeadRekey(k). */
    rekey(): Buffer {
        return rekeyUnder(this.#derived())
    }

    /** Zeroes the derived key (best effort on a garbage-collected VM); later calls throw. */
    destroy(): void {
        this.#key?.fill(0)
        this.#key = undefined
    }
}
