// The Noise CipherState (revision 34 section 5.1): a key k and a nonce counter n, over a cipher
// function (./cipher.ts). The twin of the gateway's gateway-peer/src/noise/cipher-state.ts: the
// same methods with the same meaning.
//
// For ad = "" (every transport record) the CipherState runs the cipher function's prepared path:
// prepare(k) once per key, kept until k changes ("an implementation MAY cache HMAC-SHA-256(k,
// "") for as long as k is unchanged", PROTOCOL.md 3.1) and then destroyed.
//
// Tether's nonce limit (PROTOCOL.md 5.1): "a CipherState MUST refuse to encrypt or decrypt
// with n >= NONCE_LIMIT = 2^32 - 1". Reaching it throws; it never wraps. The session layer
// calls keyUpdate() long before (KEY_UPDATE_AT).
import { KEY_LEN, NONCE_LIMIT } from "../crypto/aead"
import { CipherFunction } from "./cipher"

/** A Noise CipherState: a key `k` (undefined is Noise's "empty") and a nonce counter `n`. */
export class CipherState {
    /** The key, or undefined (empty). Never written in place: replaced, so copies may share it. */
    k: Buffer
    /** The next nonce. */
    n: number
    /** prepare(k), made on first use with ad = "" and destroyed whenever k changes. */
    private pk: Buffer

    /**
     * @param cipher the cipher function (AESCCM on the device)
     * @param k an initial key (32 bytes), or undefined for empty
     */
    constructor(
        public readonly cipher: CipherFunction,
        k?: Buffer
    ) {
        this.initializeKey(k)
    }

    /** InitializeKey(key): "Sets k = key. Sets n = 0." */
    initializeKey(key: Buffer) {
        if (key !== undefined && key.length !== KEY_LEN) throw new TypeError("cipher-state: key must be 32 bytes")
        this.forgetPrepared()
        this.k = key
        this.n = 0
    }

    /** HasKey(): "Returns true if k is non-empty, false otherwise." */
    hasKey(): boolean {
        return this.k !== undefined
    }

    /** SetNonce(nonce): "Sets n = nonce." For tests that start near the limits. */
    setNonce(nonce: number) {
        if (!(nonce >= 0 && nonce <= NONCE_LIMIT) || Math.floor(nonce) !== nonce) throw new RangeError("cipher-state: bad nonce")
        this.n = nonce
    }

    private prepared(): Buffer {
        if (this.pk === undefined) this.pk = this.cipher.prepare(this.k)
        return this.pk
    }

    private forgetPrepared() {
        if (this.pk !== undefined) this.cipher.destroy(this.pk)
        this.pk = undefined
    }

    private checkNonce() {
        if (this.n >= NONCE_LIMIT) throw new RangeError("cipher-state: nonce limit reached")
    }

    /**
     * EncryptWithAd(ad, plaintext): "If k is non-empty returns ENCRYPT(k, n++, ad,
     * plaintext). Otherwise returns plaintext."
     * @throws RangeError at the nonce limit (nothing changes)
     */
    encryptWithAd(ad: Buffer, plaintext: Buffer): Buffer {
        if (this.k === undefined) return plaintext
        this.checkNonce()
        const ct =
            ad.length === 0
                ? this.cipher.encryptPrepared(this.prepared(), this.n, plaintext)
                : this.cipher.encrypt(this.k, this.n, ad, plaintext)
        this.n++
        return ct
    }

    /**
     * DecryptWithAd(ad, ciphertext): "If an authentication failure occurs in DECRYPT() then
     * n is not incremented".
     * @returns the plaintext, or undefined when not authentic (n unchanged)
     * @throws RangeError at the nonce limit (nothing changes)
     */
    decryptWithAd(ad: Buffer, ciphertext: Buffer): Buffer | undefined {
        if (this.k === undefined) return ciphertext
        this.checkNonce()
        const pt =
            ad.length === 0
                ? this.cipher.decryptPrepared(this.prepared(), this.n, ciphertext)
                : this.cipher.decrypt(this.k, this.n, ad, ciphertext)
        if (pt === undefined) return undefined
        this.n++
        return pt
    }

    /** Rekey(): "Sets k = REKEY(k)." n is left as it is, as in Noise. */
    rekey() {
        if (this.k === undefined) throw new Error("cipher-state: rekey without a key")
        const k = this.cipher.rekey(this.prepared())
        this.forgetPrepared()
        this.k = k
    }

    /**
     * Tether's key update (PROTOCOL.md 5.1, deviation 10.2 from Noise): Rekey(), then n = 0,
     * where 5.1 says the sender "sets `k = REKEY(k)` and `n = 0`". Safe because the key is new; it lets a session outlive the 32-bit counter. Both peers do
     * it at the same point of the record stream (the KEY_UPDATE record).
     */
    keyUpdate() {
        this.rekey()
        this.n = 0
    }

    /**
     * An independent copy for transactional processing. `k` is shared (it is never written in
     * place); the cached prepare(k) is not, because a key change destroys it.
     */
    clone(): CipherState {
        const c = new CipherState(this.cipher, this.k)
        c.n = this.n
        return c
    }
}
