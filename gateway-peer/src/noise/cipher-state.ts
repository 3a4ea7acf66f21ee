// The Noise CipherState (revision 34 section 5.1): a key k and a nonce counter n, over a cipher
// function (noise/cipher.ts). The twin of the device's src/noise/cipher-state.ts: the same
// methods with the same meaning.
//
// For ad = "" (every transport record) the CipherState runs the cipher function's prepared path:
// prepare(k) once per key, kept until k changes ("an implementation MAY cache HMAC-SHA-256(k,
// "") for as long as k is unchanged", PROTOCOL.md 3.1) and then destroyed.
//
// Tether's nonce limit (PROTOCOL.md 5.1): Noise reserves n = 2^64 - 1; Tether refuses to
// encrypt or decrypt with n >= NONCE_LIMIT = 2^32 - 1, so n never reaches 2^32 (the device
// counts in doubles, and it bounds the data under one key). The session layer reads `n` and
// calls `keyUpdate()` (or re-handshakes) before the limit; reaching it throws, never wraps.
import { KEY_LEN, NONCE_LIMIT } from "../crypto/aead.js"
import type { CipherFunction } from "./cipher.js"

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
    /**
     * A key set by initializeKeyDeferred and not computed yet: #k is then undefined, and
     * #key() computes it on its first use. Noise's MixKey sets a temp_k that the next MixKey
     * often overwrites unused (five of the seven in KKpsk2): those are never computed.
     */
    #deferred: (() => Buffer) | undefined = undefined
    #n = 0
    /**
     * prepare(#k), made on first use with ad = "" and destroyed whenever #k changes. Only the
     * empty ad is prepared: a handshake payload's ad is h.
     */
    #pk: unknown = undefined

    /**
     * @param cipher the cipher function (AESCCM for Tether, AESGCM for the cacophony vectors)
     * @param k an initial key, or undefined for "empty"
     */
    constructor(
        readonly cipher: CipherFunction,
        k?: Buffer
    ) {
        if (k !== undefined) this.initializeKey(k)
    }

    /** InitializeKey(key): "Sets k = key. Sets n = 0." (undefined is Noise's `empty`.) */
    initializeKey(key: Buffer | undefined): void {
        if (key !== undefined && key.length !== KEY_LEN) throw new TypeError(`cipher-state: key must be ${KEY_LEN} bytes`)
        this.#forgetPrepared()
        this.#k = key === undefined ? undefined : Buffer.from(key)
        this.#deferred = undefined
        this.#n = 0
    }

    /**
     * InitializeKey(derive()), with derive() called only when the key is first used (encrypt,
     * decrypt, rekey, `k`): the same state as initializeKey for everything observable. `derive`
     * must be pure (a clone may call it too) and return KEY_LEN bytes, which are copied.
     */
    initializeKeyDeferred(derive: () => Buffer): void {
        this.#forgetPrepared()
        this.#k = undefined
        this.#deferred = derive
        this.#n = 0
    }

    /** k, computed now if it was deferred; undefined when empty. */
    #key(): Buffer | undefined {
        const d = this.#deferred
        if (d !== undefined) {
            const key = d()
            if (key.length !== KEY_LEN) throw new TypeError(`cipher-state: key must be ${KEY_LEN} bytes`)
            this.#k = Buffer.from(key)
            this.#deferred = undefined
        }
        return this.#k
    }

    /** HasKey(): "Returns true if k is non-empty, false otherwise." */
    hasKey(): boolean {
        return this.#k !== undefined || this.#deferred !== undefined
    }

    /** A copy of k, or undefined when empty (tests compare states with it). */
    get k(): Buffer | undefined {
        const k = this.#key()
        return k === undefined ? undefined : Buffer.from(k)
    }

    /** The next nonce this state will use; the session layer watches it against NONCE_LIMIT. */
    get n(): number {
        return this.#n
    }

    /** SetNonce(nonce): "Sets n = nonce." For out-of-order transport (section 11.4) and tests near the limit. */
    setNonce(nonce: number): void {
        if (!Number.isSafeInteger(nonce) || nonce < 0) throw new RangeError("cipher-state: nonce must be a non-negative integer")
        this.#n = nonce
    }

    /**
     * EncryptWithAd(ad, plaintext): "If k is non-empty returns ENCRYPT(k, n++, ad, plaintext).
     * Otherwise returns plaintext."
     * @throws NonceLimitError at the nonce limit (nothing changes)
     */
    encryptWithAd(ad: Buffer, plaintext: Buffer): Buffer {
        const k = this.#key()
        if (k === undefined) return Buffer.from(plaintext)
        if (this.#n >= NONCE_LIMIT) throw new NonceLimitError()
        const ct =
            ad.length === 0
                ? this.cipher.encryptPrepared(this.#prepared(k), this.#n, plaintext)
                : this.cipher.encrypt(k, this.#n, ad, plaintext)
        this.#n++
        return ct
    }

    /**
     * DecryptWithAd(ad, ciphertext): "If k is non-empty returns DECRYPT(k, n++, ad, ciphertext).
     * Otherwise returns ciphertext. If an authentication failure occurs in DECRYPT() then n is
     * not incremented".
     * @returns the plaintext, or undefined on an authentication failure (n unchanged)
     * @throws NonceLimitError at the nonce limit (nothing changes)
     */
    decryptWithAd(ad: Buffer, ciphertext: Buffer): Buffer | undefined {
        const k = this.#key()
        if (k === undefined) return Buffer.from(ciphertext)
        if (this.#n >= NONCE_LIMIT) throw new NonceLimitError()
        const pt =
            ad.length === 0
                ? this.cipher.decryptPrepared(this.#prepared(k), this.#n, ciphertext)
                : this.cipher.decrypt(k, this.#n, ad, ciphertext)
        if (pt === undefined) return undefined
        this.#n++
        return pt
    }

    /** Rekey(): "Sets k = REKEY(k)." n is left as it is, as in Noise. */
    rekey(): void {
        const old = this.#key()
        if (old === undefined) throw new Error("cipher-state: rekey without a key")
        const k = this.cipher.rekey(this.#prepared(old))
        this.#forgetPrepared()
        this.#k = k
        old.fill(0) // best effort on a garbage-collected VM; #k is never shared (see clone)
    }

    /**
     * Tether's key update (PROTOCOL.md 5.1, deviation 10.2 from Noise): Rekey(), then n = 0,
     * where 5.1 says the sender "sets `k = REKEY(k)` and `n = 0`". Safe because the key is new; it lets a session outlive a 32-bit counter. Both peers do
     * it at the same point of the record stream (the KEY_UPDATE record).
     */
    keyUpdate(): void {
        this.rekey()
        this.#n = 0
    }

    /** prepare(k) for the current k, made now if it is not cached yet. */
    #prepared(k: Buffer): unknown {
        if (this.#pk === undefined) this.#pk = this.cipher.prepare(k)
        return this.#pk
    }

    #forgetPrepared(): void {
        if (this.#pk !== undefined) this.cipher.destroy(this.#pk)
        this.#pk = undefined
    }

    /** Whether prepare(k) (for AESCCM, HMAC-SHA-256(k, "")) is cached for the current key (tests). */
    get emptyAdCached(): boolean {
        return this.#pk !== undefined
    }

    /**
     * An independent copy: the key bytes are copied, not shared; the copy prepares its own key
     * when it needs one (destroying the original's then leaves the copy working).
     */
    clone(): CipherState {
        const c = new CipherState(this.cipher, this.#k)
        c.#deferred = this.#deferred
        c.#n = this.#n
        return c
    }

    /** Whether the key is set but not computed yet (tests of the deferred MixKey). */
    get keyDeferred(): boolean {
        return this.#deferred !== undefined
    }
}
