// Noise cipher functions (revision 34 section 4.2) as a parameter of the Noise layers.
// AESCCM is Tether's rule (crypto/aead.ts): the one Tether ships. AESGCM is Noise's own
// (section 12.4), plugged in only to reproduce the cacophony vectors: with it, the layers are
// checked byte for byte against an independent implementation; the AESCCM substitution is
// then pinned by Tether's generated vectors.
import { createCipheriv, createDecipheriv } from "node:crypto"
import { AeadEmptyAdKey, aeadDecrypt, aeadEncrypt, aeadRekey, KEY_LEN, TAG_LEN } from "../crypto/aead.js"

/** A Noise cipher function: ENCRYPT, DECRYPT and REKEY of section 4.2. */
export interface CipherFunction {
    /** the name as spelled in the protocol name */
    readonly name: "AESCCM" | "AESGCM"
    /** ENCRYPT(k, n, ad, plaintext) -> ciphertext || tag */
    encrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, ad, ciphertext): the plaintext, or undefined if authentication fails */
    decrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined
    /**
     * REKEY(k): "the first 32 bytes from ENCRYPT(k, maxnonce, zerolen, zeros)". Part of the
     * cipher function because maxnonce = 2^64 - 1 is not a number `n` can hold.
     */
    rekey(k: Buffer): Buffer
    /**
     * Optional: ENCRYPT/DECRYPT with an empty ad under one `k`, the per-key work done once (for
     * AESCCM, HMAC-SHA-256(k, ""), which PROTOCOL.md 3.1 allows caching while k is unchanged).
     * Same bytes as encrypt/decrypt with ad = "". CipherState uses it for transport records.
     */
    emptyAdKey?(k: Buffer): EmptyAdKey
}

/** ENCRYPT/DECRYPT bound to one key and the empty ad (CipherFunction.emptyAdKey). */
export interface EmptyAdKey {
    encrypt(n: number, plaintext: Buffer): Buffer
    decrypt(n: number, ciphertext: Buffer): Buffer | undefined
    /** forgets (zeroes) what was derived from k: called when k changes */
    destroy(): void
}

/** Tether's cipher function: AES-256-CCM under HMAC-SHA-256(k, ad), 13-byte nonce. */
export const AESCCM: CipherFunction = {
    name: "AESCCM",
    encrypt: aeadEncrypt,
    decrypt: aeadDecrypt,
    rekey: aeadRekey,
    emptyAdKey: k => new AeadEmptyAdKey(k),
}

// Section 12.4: "The 96-bit nonce is formed by encoding 32 bits of zeros followed by
// big-endian encoding of n."
const GCM_NONCE_LEN = 12

function gcmNonce(n: number | "max"): Buffer {
    const nonce = Buffer.alloc(GCM_NONCE_LEN)
    if (n === "max") nonce.fill(0xff, 4)
    else {
        if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("AESGCM: n must be an integer in [0, 2^53)")
        nonce.writeBigUInt64BE(BigInt(n), 4)
    }
    return nonce
}

function checkKey(k: Buffer): void {
    if (!Buffer.isBuffer(k) || k.length !== KEY_LEN) throw new TypeError(`AESGCM: key must be ${KEY_LEN} bytes`)
}

function gcmEncrypt(k: Buffer, nonce: Buffer, ad: Buffer, plaintext: Buffer): Buffer {
    checkKey(k)
    const c = createCipheriv("aes-256-gcm", k, nonce, { authTagLength: TAG_LEN })
    c.setAAD(ad)
    const ct = Buffer.concat([c.update(plaintext), c.final()])
    return Buffer.concat([ct, c.getAuthTag()])
}

/** Noise's AESGCM cipher function (AES-256-GCM, 16-byte tag, AD passed to GCM). */
export const AESGCM: CipherFunction = {
    name: "AESGCM",
    encrypt(k, n, ad, plaintext) {
        return gcmEncrypt(k, gcmNonce(n), ad, plaintext)
    },
    decrypt(k, n, ad, ciphertext) {
        checkKey(k)
        const nonce = gcmNonce(n)
        if (ciphertext.length < TAG_LEN) return undefined
        const ctLen = ciphertext.length - TAG_LEN
        try {
            const d = createDecipheriv("aes-256-gcm", k, nonce, { authTagLength: TAG_LEN })
            d.setAuthTag(ciphertext.subarray(ctLen))
            d.setAAD(ad)
            // GCM releases update() output before final() checks the tag: keep it local and
            // return it only once final() has succeeded.
            const pt = d.update(ciphertext.subarray(0, ctLen))
            d.final()
            return pt
        } catch {
            return undefined
        }
    },
    rekey(k) {
        return gcmEncrypt(k, gcmNonce("max"), Buffer.alloc(0), Buffer.alloc(KEY_LEN)).subarray(0, KEY_LEN)
    },
}
