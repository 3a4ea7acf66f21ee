// Noise's AESGCM cipher function (revision 34 section 12.4), for the reference only: with it the
// gateway's Noise layers reproduce the published cacophony vectors byte for byte. Tether
// itself ships AESCCM (src/noise/cipher.ts), and AESGCM has the same shape.
import { createCipheriv, createDecipheriv } from "node:crypto"
import { KEY_LEN, TAG_LEN } from "../src/crypto/aead.js"
import type { CipherFunction } from "../src/noise/cipher.js"

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

function gcmDecrypt(k: Buffer, nonce: Buffer, ad: Buffer, ciphertext: Buffer): Buffer | undefined {
    checkKey(k)
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
}

const EMPTY = Buffer.alloc(0)

/**
 * Noise's AESGCM cipher function (AES-256-GCM, 16-byte tag, AD passed to GCM), in the shape of
 * src/noise/cipher.ts. GCM has no per-key work for ad = "": prepare(k) is a copy of k, which
 * destroy() zeroes.
 */
export const AESGCM: CipherFunction<Buffer> = {
    name: "AESGCM",
    encrypt: (k, n, ad, plaintext) => gcmEncrypt(k, gcmNonce(n), ad, plaintext),
    decrypt: (k, n, ad, ciphertext) => gcmDecrypt(k, gcmNonce(n), ad, ciphertext),
    prepare(k) {
        checkKey(k)
        return Buffer.from(k)
    },
    encryptPrepared: (pk, n, plaintext) => gcmEncrypt(pk, gcmNonce(n), EMPTY, plaintext),
    decryptPrepared: (pk, n, ciphertext) => gcmDecrypt(pk, gcmNonce(n), EMPTY, ciphertext),
    rekey: pk => gcmEncrypt(pk, gcmNonce("max"), EMPTY, Buffer.alloc(KEY_LEN)).subarray(0, KEY_LEN),
    destroy: pk => {
        pk.fill(0) // best effort on a garbage-collected VM
    },
}
