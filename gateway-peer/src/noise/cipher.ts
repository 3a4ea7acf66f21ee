// Noise cipher functions (revision 34 section 4.2) as a parameter of the Noise layers.
// AESCCM is Tether's rule (crypto/aead.ts), the one the gateway ships. The layers also run
// Noise's own AESGCM (reference/aesgcm.ts, not shipped) to reproduce the cacophony vectors.
import { AeadEmptyAdKey, aeadDecrypt, aeadEncrypt, aeadRekey } from "../crypto/aead.js"

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
