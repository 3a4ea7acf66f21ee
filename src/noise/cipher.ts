// Noise cipher functions (revision 34 section 4.2) as a parameter of the Noise layers
// (PROTOCOL.md 3.3), the twin of the gateway's gateway-peer/src/noise/cipher.ts: the same
// members with the same meaning. The device ships one, AESCCM (PROTOCOL.md 3.1): AES-256-CCM
// keyed by HMAC-SHA-256(k, ad).
//
// PROTOCOL.md 3.1: "an implementation MAY cache HMAC-SHA-256(k, "") for as long as k is
// unchanged". Transport records all use ad = "", so the cipher function splits that case out:
// prepare(k) does the per-key work once, the CipherState keeps its result while k is unchanged
// and hands it to encryptPrepared, decryptPrepared, rekey and destroy. Here the result is that
// HMAC as a Buffer; on the gateway it is an opaque object holding it.
import { aeadDecrypt, aeadEncrypt, aeadMaxNonce, aeadNonce, ccmDecrypt, ccmEncrypt, KEY_LEN } from "../crypto/aead"
import { hmacSha256 } from "../crypto/hash"

const EMPTY = Buffer.alloc(0)

/**
 * A Noise cipher function: ENCRYPT, DECRYPT and REKEY of section 4.2, with the per-key work for
 * ad = "" split out. `prepare(k)` is that work; the `*Prepared` functions, `rekey` and
 * `destroy` take its result.
 */
export interface CipherFunction {
    /** the name as spelled in the protocol name */
    readonly name: string
    /** ENCRYPT(k, n, ad, plaintext) -> ciphertext || tag */
    encrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, ad, ciphertext): the plaintext, or undefined if authentication fails */
    decrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined
    /** The per-key work for ad = "" (AESCCM: HMAC-SHA-256(k, "")), cached by the CipherState while k is unchanged. */
    prepare(k: Buffer): Buffer
    /** ENCRYPT(k, n, "", plaintext), given `pk = prepare(k)`. */
    encryptPrepared(pk: Buffer, n: number, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, "", ciphertext), given `pk = prepare(k)`: the plaintext, or undefined if authentication fails. */
    decryptPrepared(pk: Buffer, n: number, ciphertext: Buffer): Buffer | undefined
    /**
     * REKEY(k): "the first 32 bytes from ENCRYPT(k, maxnonce, zerolen, zeros)", given
     * `pk = prepare(k)`. Part of the cipher function because maxnonce = 2^64 - 1 is not a
     * number `n` can hold.
     */
    rekey(pk: Buffer): Buffer
    /** Zeroes what prepare(k) derived (best effort on a garbage-collected VM); pk is not used again. */
    destroy(pk: Buffer): void
}

/** Tether's cipher function: AES-256-CCM under HMAC-SHA-256(k, ad), 13-byte nonce. */
export const AESCCM: CipherFunction = {
    name: "AESCCM",
    encrypt: aeadEncrypt,
    decrypt: aeadDecrypt,
    prepare: (k: Buffer) => hmacSha256(k, EMPTY),
    encryptPrepared: (pk: Buffer, n: number, plaintext: Buffer) => ccmEncrypt(pk, aeadNonce(n), plaintext),
    decryptPrepared: (pk: Buffer, n: number, ciphertext: Buffer) => ccmDecrypt(pk, aeadNonce(n), ciphertext),
    rekey: (pk: Buffer) => ccmEncrypt(pk, aeadMaxNonce(), Buffer.alloc(KEY_LEN)).slice(0, KEY_LEN),
    destroy: (pk: Buffer) => pk.fillAt(0, pk.length, 0),
}
