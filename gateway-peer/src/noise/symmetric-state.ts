// The Noise SymmetricState (revision 34 section 5.2): a CipherState plus the chaining key ck
// and the handshake hash h (HASH = SHA-256, HASHLEN = 32). The twin of the device's
// src/noise/symmetric-state.ts.
//
// Every operation replaces ck and h with new buffers and never writes into them, so clone() is
// cheap. Handshake code processes a message on a clone and keeps the clone only when the whole
// message succeeded (PROTOCOL.md 3.3): a failed message leaves ck, h, k and n exactly as they
// were.
import { HASH_LEN, hkdf2, hkdf2Deferred, hkdf3Deferred, sha256 } from "../crypto/hash.js"
import type { CipherFunction } from "./cipher.js"
import { CipherState } from "./cipher-state.js"

/** The pair of CipherStates returned by Split(): c1 for initiator to responder, c2 back. */
export interface SplitResult {
    readonly c1: CipherState
    readonly c2: CipherState
}

/** A Noise SymmetricState (HASH = SHA-256, HASHLEN = 32). */
export class SymmetricState {
    #ck: Buffer
    #h: Buffer
    #cs: CipherState

    /**
     * InitializeSymmetric(protocol_name): "If protocol_name is less than or equal to HASHLEN
     * bytes in length, sets h equal to protocol_name with zero bytes appended to make HASHLEN
     * bytes. Otherwise sets h = HASH(protocol_name). Sets ck = h. Calls InitializeKey(empty)."
     */
    constructor(cipher: CipherFunction, protocolName: string) {
        const name = Buffer.from(protocolName, "ascii")
        this.#h = name.length <= HASH_LEN ? Buffer.concat([name, Buffer.alloc(HASH_LEN - name.length)]) : sha256(name)
        this.#ck = this.#h
        this.#cs = new CipherState(cipher)
    }

    /** A copy of the chaining key (tests compare states with it). */
    get ck(): Buffer {
        return Buffer.from(this.#ck)
    }

    /** A copy of the handshake hash. */
    get h(): Buffer {
        return Buffer.from(this.#h)
    }

    /** The handshake's CipherState (its k and n). */
    get cs(): CipherState {
        return this.#cs
    }

    /**
     * A SymmetricState as InitializeSymmetric(protocol_name) then MixHash(s) of known data
     * leave it: ck = the initial h (MixHash does not touch ck), h given. For a cache of h after
     * a prologue that is constant per device (the resumption's, PROTOCOL.md 3.2); the key is
     * empty, as after InitializeSymmetric.
     */
    static afterMixHash(cipher: CipherFunction, protocolName: string, h: Buffer): SymmetricState {
        if (h.length !== HASH_LEN) throw new TypeError(`symmetric-state: h must be ${HASH_LEN} bytes`)
        const s = new SymmetricState(cipher, protocolName)
        s.#h = Buffer.from(h)
        return s
    }

    /**
     * "Sets ck, temp_k = HKDF(ck, input_key_material, 2). Calls InitializeKey(temp_k)." temp_k
     * is computed only when the key is used (CipherState.initializeKeyDeferred): byte for byte
     * the same, one HMAC less for each temp_k the next MixKey overwrites unused.
     */
    mixKey(ikm: Buffer): void {
        const [ck, tempK] = hkdf2Deferred(this.#ck, ikm)
        this.#ck = ck
        this.#cs.initializeKeyDeferred(tempK)
    }

    /** "Sets h = HASH(h || data)." */
    mixHash(data: Buffer): void {
        this.#h = sha256(this.#h, data)
    }

    /**
     * "Sets ck, temp_h, temp_k = HKDF(ck, input_key_material, 3). Calls MixHash(temp_h).
     * Calls InitializeKey(temp_k)." Used for the "psk" token (section 9).
     */
    mixKeyAndHash(ikm: Buffer): void {
        const [ck, tempH, tempK] = hkdf3Deferred(this.#ck, ikm) // temp_k deferred as in mixKey
        this.#ck = ck
        this.mixHash(tempH)
        this.#cs.initializeKeyDeferred(tempK)
    }

    /** "Returns h." Meant for after Split(), e.g. channel binding (section 11.2). */
    getHandshakeHash(): Buffer {
        return Buffer.from(this.#h)
    }

    /** Whether the inner CipherState has a key (decides whether "s" carries a tag). */
    hasKey(): boolean {
        return this.#cs.hasKey()
    }

    /** "Sets ciphertext = EncryptWithAd(h, plaintext), calls MixHash(ciphertext)". */
    encryptAndHash(plaintext: Buffer): Buffer {
        const ct = this.#cs.encryptWithAd(this.#h, plaintext)
        this.mixHash(ct)
        return ct
    }

    /**
     * "Sets plaintext = DecryptWithAd(h, ciphertext), calls MixHash(ciphertext)".
     * @returns the plaintext, or undefined on an authentication failure (h and n unchanged)
     */
    decryptAndHash(ciphertext: Buffer): Buffer | undefined {
        const pt = this.#cs.decryptWithAd(this.#h, ciphertext)
        if (pt === undefined) return undefined
        this.mixHash(ciphertext)
        return pt
    }

    /** "Sets temp_k1, temp_k2 = HKDF(ck, zerolen, 2)" and returns two fresh CipherStates. */
    split(): SplitResult {
        const [k1, k2] = hkdf2(this.#ck, Buffer.alloc(0))
        const cipher = this.#cs.cipher
        const result = { c1: new CipherState(cipher, k1), c2: new CipherState(cipher, k2) }
        k1.fill(0) // the CipherStates hold copies; best effort on a garbage-collected VM
        k2.fill(0)
        return result
    }

    /**
     * An independent copy: work on it, then keep it only if the whole message succeeded
     * (PROTOCOL.md 3.3: "the copy replaces the state only when the whole message was
     * processed"). ck and h are shared (never written in place); the CipherState is cloned (its
     * key bytes copied).
     */
    clone(): SymmetricState {
        const c = new SymmetricState(this.#cs.cipher, "") // every field is replaced below
        c.#ck = this.#ck
        c.#h = this.#h
        c.#cs = this.#cs.clone()
        return c
    }
}
