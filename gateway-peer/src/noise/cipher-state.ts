// The Noise CipherState (revision 34 section 5.1): a key k and a nonce counter n.
//
// Tether's nonce limit (PROTOCOL.md 5.1): Noise reserves n = 2^64 - 1; Tether refuses to
// encrypt or decrypt with n >= NONCE_LIMIT = 2^32 - 1, so n never reaches 2^32 (the device
// counts in doubles, and it bounds the data under one key). The session layer reads `n` and
// calls `keyUpdate()` (or re-handshakes) before the limit; reaching it throws, never wraps.
import { KEY_LEN } from "../crypto/aead.js"
import type { CipherFunction, EmptyAdKey } from "./cipher.js"

/** The first nonce value a CipherState refuses to use (PROTOCOL.md 5.1: 2^32 - 1). */
export const NONCE_LIMIT = 2 ** 32 - 1

/** Thrown when a CipherState would use a nonce at or above NONCE_LIMIT. */
export class NonceLimitError extends Error {
    constructor() {
        super("cipher-state: nonce limit reached (key update or re-handshake first)")
        this.name = "NonceLimitError"
    }
}

/** A Noise CipherState over a given cipher function. */
export class CipherState {
    #k: Buffer | undefined
    #n = 0
    /**
     * ENCRYPT/DECRYPT with ad = "" under #k, made on first use (the cipher function's
     * emptyAdKey: HMAC-SHA-256(k, "") once per key, PROTOCOL.md 3.1) and destroyed whenever
     * #k changes. Only the empty ad is cached: a handshake payload's ad is h.
     */
    #emptyAd: EmptyAdKey | undefined

    /**
     * @param cipher the cipher function (AESCCM for Tether, AESGCM for the cacophony vectors)
     * @param k an initial key, or undefined for "empty"
     */
    constructor(
        readonly cipher: CipherFunction,
        k?: Buffer,
    ) {
        if (k !== undefined) this.initializeKey(k)
    }

    /** "Sets k = key. Sets n = 0." (undefined is Noise's `empty`.) */
    initializeKey(key: Buffer | undefined): void {
        if (key !== undefined && key.length !== KEY_LEN) throw new TypeError(`cipher-state: key must be ${KEY_LEN} bytes`)
        this.#forgetEmptyAd()
        this.#k = key === undefined ? undefined : Buffer.from(key)
        this.#n = 0
    }

    /** "Returns true if k is non-empty, false otherwise." */
    hasKey(): boolean {
        return this.#k !== undefined
    }

    /** The next nonce this state will use; the session layer watches it against NONCE_LIMIT. */
    get n(): number {
        return this.#n
    }

    /** "Sets n = nonce." For out-of-order transport (section 11.4) and tests near the limit. */
    setNonce(nonce: number): void {
        if (!Number.isSafeInteger(nonce) || nonce < 0) throw new RangeError("cipher-state: nonce must be a non-negative integer")
        this.#n = nonce
    }

    /** "If k is non-empty returns ENCRYPT(k, n++, ad, plaintext). Otherwise returns plaintext." */
    encryptWithAd(ad: Buffer, plaintext: Buffer): Buffer {
        if (this.#k === undefined) return Buffer.from(plaintext)
        if (this.#n >= NONCE_LIMIT) throw new NonceLimitError()
        const bound = ad.length === 0 ? this.#emptyAdKey(this.#k) : undefined
        const ct = bound !== undefined ? bound.encrypt(this.#n, plaintext) : this.cipher.encrypt(this.#k, this.#n, ad, plaintext)
        this.#n++
        return ct
    }

    /**
     * "If k is non-empty returns DECRYPT(k, n++, ad, ciphertext). Otherwise returns ciphertext.
     * If an authentication failure occurs in DECRYPT() then n is not incremented".
     * @returns the plaintext, or undefined on an authentication failure (n unchanged)
     * @throws NonceLimitError at the nonce limit
     */
    decryptWithAd(ad: Buffer, ciphertext: Buffer): Buffer | undefined {
        if (this.#k === undefined) return Buffer.from(ciphertext)
        if (this.#n >= NONCE_LIMIT) throw new NonceLimitError()
        const bound = ad.length === 0 ? this.#emptyAdKey(this.#k) : undefined
        const pt = bound !== undefined ? bound.decrypt(this.#n, ciphertext) : this.cipher.decrypt(this.#k, this.#n, ad, ciphertext)
        if (pt === undefined) return undefined
        this.#n++
        return pt
    }

    /** Noise's Rekey(): "Sets k = REKEY(k)." n is left as it is, as in Noise. */
    rekey(): void {
        if (this.#k === undefined) throw new Error("cipher-state: rekey without a key")
        const old = this.#k
        this.#forgetEmptyAd()
        this.#k = this.cipher.rekey(old)
        old.fill(0) // best effort on a garbage-collected VM; #k is never shared (see clone)
    }

    /**
     * Tether's key update (PROTOCOL.md 5.1, a deviation from Noise): k = REKEY(k), then n = 0.
     * Safe because the key is new; it lets a session outlive a 32-bit counter. Both peers do
     * it at the same point of the record stream (the KEY_UPDATE record).
     */
    keyUpdate(): void {
        this.rekey()
        this.#n = 0
    }

    /** The cached empty-ad key for `k` (= #k), made now if the cipher function offers one. */
    #emptyAdKey(k: Buffer): EmptyAdKey | undefined {
        if (this.#emptyAd === undefined && this.cipher.emptyAdKey !== undefined) this.#emptyAd = this.cipher.emptyAdKey(k)
        return this.#emptyAd
    }

    #forgetEmptyAd(): void {
        this.#emptyAd?.destroy()
        this.#emptyAd = undefined
    }

    /** Whether HMAC-SHA-256(k, "") is cached for the current key (tests). */
    get emptyAdCached(): boolean {
        return this.#emptyAd !== undefined
    }

    /**
     * An independent copy (for checkpoints): the key bytes are copied, not shared; the copy
     * derives its own empty-ad key when it needs one.
     */
    clone(): CipherState {
        const c = new CipherState(this.cipher, this.#k)
        c.#n = this.#n
        return c
    }
}
