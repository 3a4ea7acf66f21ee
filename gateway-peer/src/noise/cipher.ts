// Noise cipher functions (revision 34 section 4.2) as a parameter of the Noise layers
// (PROTOCOL.md 3.3), the twin of the device's src/noise/cipher.ts: the same members with the
// same meaning. AESCCM is Tether's rule (crypto/aead.ts), the one the gateway ships. The layers
// also run Noise's own AESGCM (reference/aesgcm.ts, not shipped) to reproduce the cacophony
// vectors.
//
// PROTOCOL.md 3.1: "an implementation MAY cache HMAC-SHA-256(k, "") for as long as k is
// unchanged". Transport records all use ad = "", so the cipher function splits that case out:
// prepare(k) does the per-key work once, the CipherState keeps its result while k is unchanged
// and hands it to encryptPrepared, decryptPrepared, rekey and destroy. Here the result is
// opaque (for AESCCM an AeadEmptyAdKey holding HMAC-SHA-256(k, "")); on the device it is that
// HMAC as a Buffer.
import { AeadEmptyAdKey, aeadDecrypt, aeadEncrypt } from "../crypto/aead.js"

/**
 * A Noise cipher function: ENCRYPT, DECRYPT and REKEY of section 4.2, with the per-key work for
 * ad = "" split out. `prepare(k)` is that work; the `*Prepared` functions, `rekey` and
 * `destroy` take its result.
 * @typeParam P what prepare(k) returns: opaque to the CipherState, which only hands it back
 */
export interface CipherFunction<P = unknown> {
    /** the name as spelled in the protocol name */
    readonly name: "AESCCM" | "AESGCM"
    /** ENCRYPT(k, n, ad, plaintext) -> ciphertext || tag */
    encrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, ad, ciphertext): the plaintext, or undefined if authentication fails */
    decrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined
    /** The per-key work for ad = "" (AESCCM: HMAC-SHA-256(k, "")), cached by the CipherState while k is unchanged. */
    prepare(k: Buffer): P
    /** ENCRYPT(k, n, "", plaintext), given `pk = prepare(k)`. */
    encryptPrepared(pk: P, n: number, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, "", ciphertext), given `pk = prepare(k)`: the plaintext, or undefined if authentication fails. */
    decryptPrepared(pk: P, n: number, ciphertext: Buffer): Buffer | undefined
    /**
     * REKEY(k): "the first 32 bytes from ENCRYPT(k, maxnonce, zerolen, zeros)", given
     * `pk = prepare(k)`. Part of the cipher function because maxnonce = 2^64 - 1 is not a
     * number `n` can hold.
     */
    rekey(pk: P): Buffer
    /** Zeroes what prepare(k) derived (best effort on a garbage-collected VM); pk is not used again. */
    destroy(pk: P): void
}

/** Tether's cipher function: AES-256-CCM under HMAC-SHA-256(k, ad), 13-byte nonce. */
export const AESCCM: CipherFunction<AeadEmptyAdKey> = {
    name: "AESCCM",
    encrypt: aeadEncrypt,
    decrypt: aeadDecrypt,
    prepare: k => new AeadEmptyAdKey(k),
    encryptPrepared: (pk, n, plaintext) => pk.encrypt(n, plaintext),
    decryptPrepared: (pk, n, ciphertext) => pk.decrypt(n, ciphertext),
    rekey: pk => pk.rekey(),
    destroy: pk => pk.destroy(),
}
