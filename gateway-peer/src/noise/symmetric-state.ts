// The Noise SymmetricState (revision 34 section 5.2): a CipherState plus the chaining key ck
// and the handshake hash h. Every operation replaces ck and h with new buffers and never
// writes into them, so a checkpoint is a cheap copy and restore() is exact: a handshake
// message that fails half-way leaves ck, h, k and n as they were.
import { HASH_LEN, hkdf2, hkdf3, sha256 } from "../crypto/hash.js"
import type { CipherFunction } from "./cipher.js"
import { CipherState } from "./cipher-state.js"

/** A saved SymmetricState, for restore() after a failed message. */
export interface SymmetricCheckpoint {
    readonly ck: Buffer
    readonly h: Buffer
    readonly cs: CipherState
}

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

    /** "Sets ck, temp_k = HKDF(ck, input_key_material, 2). Calls InitializeKey(temp_k)." */
    mixKey(ikm: Buffer): void {
        const [ck, tempK] = hkdf2(this.#ck, ikm)
        this.#ck = ck
        this.#cs.initializeKey(tempK)
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
        const [ck, tempH, tempK] = hkdf3(this.#ck, ikm)
        this.#ck = ck
        this.mixHash(tempH)
        this.#cs.initializeKey(tempK)
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

    /** Saves ck, h, k and n. */
    checkpoint(): SymmetricCheckpoint {
        return { ck: this.#ck, h: this.#h, cs: this.#cs.clone() }
    }

    /** Returns to a checkpoint taken on this state (the checkpoint stays reusable). */
    restore(cp: SymmetricCheckpoint): void {
        this.#ck = cp.ck
        this.#h = cp.h
        this.#cs = cp.cs.clone()
    }
}
