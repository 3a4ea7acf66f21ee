// The Noise CipherState (revision 34 section 5.1) and the cipher function it runs on.
//
// The cipher function is a parameter (PROTOCOL.md 3.3). The device ships one, AESCCM
// (PROTOCOL.md 3.1): AES-256-CCM keyed by HMAC-SHA-256(k, ad). Transport messages all use
// ad = "", so the cipher function exposes that case separately: a CipherState derives
// HMAC-SHA-256(k, "") once per key ("an implementation MAY cache HMAC-SHA-256(k, "") for as
// long as k is unchanged") and reuses it for every record and for REKEY.
//
// Tether's nonce limit (PROTOCOL.md 5.1): "a CipherState MUST refuse to encrypt or decrypt
// with n >= NONCE_LIMIT = 2^32 - 1". Reaching it throws; it never wraps. The session layer
// rekeys long before (KEY_UPDATE_AT).
import { aeadDecrypt, aeadEncrypt, aeadNonce, ccmDecrypt, ccmEncrypt, KEY_LEN, NONCE_LEN } from "../crypto/aead"
import { hmacSha256 } from "../crypto/hash"

/** The first nonce value a CipherState refuses to use: 2^32 - 1 (PROTOCOL.md 5.1). */
export const NONCE_LIMIT = 4294967295

const EMPTY = Buffer.alloc(0)

/**
 * A Noise cipher function (revision 34 section 4.2) split the way Tether uses it.
 * `prepare(k)` is the per-key work for ad = "" (AESCCM: HMAC-SHA-256(k, "")); the
 * `*Prepared` functions and `rekey` take its result.
 */
export interface CipherFunction {
    /** ENCRYPT(k, n, ad, plaintext) -> ciphertext || tag */
    encrypt(k: Buffer, n: number, ad: Buffer, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, ad, ciphertext) -> plaintext, or undefined when not authentic */
    decrypt(k: Buffer, n: number, ad: Buffer, ciphertext: Buffer): Buffer | undefined
    /** The per-key value for ad = "" (cached by the CipherState while k is unchanged). */
    prepare(k: Buffer): Buffer
    /** ENCRYPT(k, n, "", plaintext) given `pk = prepare(k)`. */
    encryptPrepared(pk: Buffer, n: number, plaintext: Buffer): Buffer
    /** DECRYPT(k, n, "", ciphertext) given `pk = prepare(k)`. */
    decryptPrepared(pk: Buffer, n: number, ciphertext: Buffer): Buffer | undefined
    /**
     * REKEY(k) = the first 32 bytes of ENCRYPT(k, 2^64 - 1, "", zeros(32)), given
     * `pk = prepare(k)`. Part of the cipher function because 2^64 - 1 is not a number.
     */
    rekey(pk: Buffer): Buffer
}

/** PROTOCOL.md 5.1: the 13-byte nonce of 2^64 - 1, built directly (not a safe integer). */
function maxNonce(): Buffer {
    const nonce = Buffer.alloc(NONCE_LEN)
    nonce.fillAt(NONCE_LEN - 8, 8, 0xff)
    return nonce
}

/** Tether's cipher function (PROTOCOL.md 3.1): AES-256-CCM under HMAC-SHA-256(k, ad). */
export const AESCCM: CipherFunction = {
    encrypt: aeadEncrypt,
    decrypt: aeadDecrypt,
    prepare: (k: Buffer) => hmacSha256(k, EMPTY),
    encryptPrepared: (pk: Buffer, n: number, plaintext: Buffer) => ccmEncrypt(pk, aeadNonce(n), plaintext),
    decryptPrepared: (pk: Buffer, n: number, ciphertext: Buffer) => ccmDecrypt(pk, aeadNonce(n), ciphertext),
    rekey: (pk: Buffer) => ccmEncrypt(pk, maxNonce(), Buffer.alloc(KEY_LEN)).slice(0, KEY_LEN),
}

/** A Noise CipherState: a key `k` (undefined is Noise's "empty") and a nonce counter `n`. */
export class CipherState {
    /** The key, or undefined (empty). Never written in place: replaced, so copies may share it. */
    k: Buffer
    /** The next nonce. */
    n: number
    /** prepare(k), computed on first use with ad = "" and dropped when k changes. */
    private pk: Buffer

    /**
     * @param cipher the cipher function (AESCCM on the device)
     * @param k an initial key (32 bytes), or undefined for empty
     */
    constructor(public readonly cipher: CipherFunction, k?: Buffer) {
        this.initializeKey(k)
    }

    /** InitializeKey(key): "Sets k = key. Sets n = 0." */
    initializeKey(key: Buffer) {
        if (key !== undefined && key.length !== KEY_LEN) throw new TypeError("cipher-state: key must be 32 bytes")
        this.k = key
        this.n = 0
        this.pk = undefined
    }

    /** HasKey(): "Returns true if k is non-empty, false otherwise." */
    hasKey(): boolean {
        return this.k !== undefined
    }

    /** SetNonce(nonce): for tests that start near the limits. */
    setNonce(nonce: number) {
        if (!(nonce >= 0 && nonce <= NONCE_LIMIT) || Math.floor(nonce) !== nonce)
            throw new RangeError("cipher-state: bad nonce")
        this.n = nonce
    }

    private prepared(): Buffer {
        if (this.pk === undefined) this.pk = this.cipher.prepare(this.k)
        return this.pk
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

    /**
     * Tether's rekey (PROTOCOL.md 5.1): `k = REKEY(k)` and, unlike Noise's Rekey(), `n = 0`.
     * Safe because the key is new; it lets a session outlive the 32-bit counter.
     */
    rekey() {
        if (this.k === undefined) throw new Error("cipher-state: rekey without a key")
        const old = this.prepared()
        const k = this.cipher.rekey(old)
        old.fillAt(0, old.length, 0) // best effort on a garbage-collected VM
        this.initializeKey(k)
    }

    /**
     * An independent copy for transactional processing. `k` is shared (it is never written in
     * place); the cached prepare(k) is not, because rekey() wipes it.
     */
    clone(): CipherState {
        const c = new CipherState(this.cipher, this.k)
        c.n = this.n
        return c
    }
}
