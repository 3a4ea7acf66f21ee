// The Noise SymmetricState (revision 34 section 5.2): a CipherState plus the chaining key ck
// and the handshake hash h (HASH = SHA-256, HASHLEN = 32). The twin of the gateway's
// gateway-peer/src/noise/symmetric-state.ts.
//
// Every operation replaces ck and h with new buffers and never writes into them, so clone()
// is a few pointer copies. Handshake code processes a message on a clone and keeps the clone
// only when the whole message succeeded (PROTOCOL.md 3.3): a failed message leaves ck, h, k
// and n exactly as they were.
import { HASH_LEN, hkdf2, hkdf3, sha256 } from "../crypto/hash"
import { CipherFunction } from "./cipher"
import { CipherState } from "./cipher-state"

const EMPTY = Buffer.alloc(0)

/** A Noise SymmetricState. */
export class SymmetricState {
    /** The chaining key. */
    ck: Buffer
    /** The handshake hash. */
    h: Buffer
    /** The handshake's CipherState. */
    cs: CipherState

    /**
     * InitializeSymmetric(protocol_name): "If protocol_name is less than or equal to HASHLEN
     * bytes in length, sets h equal to protocol_name with zero bytes appended to make HASHLEN
     * bytes. Otherwise sets h = HASH(protocol_name). Sets ck = h. Calls InitializeKey(empty)."
     * @param cipher the cipher function
     * @param protocolName the protocol name (ASCII); undefined only for clone()
     */
    constructor(cipher: CipherFunction, protocolName?: string) {
        this.cs = new CipherState(cipher)
        if (protocolName === undefined) return
        const name = Buffer.from(protocolName)
        if (name.length <= HASH_LEN) {
            this.h = Buffer.alloc(HASH_LEN)
            this.h.blitAt(0, name, 0, name.length)
        } else this.h = sha256(name)
        this.ck = this.h
    }

    /** MixKey(ikm): "Sets ck, temp_k = HKDF(ck, input_key_material, 2). Calls InitializeKey(temp_k)." */
    mixKey(ikm: Buffer) {
        const out = hkdf2(this.ck, ikm)
        this.ck = out[0]
        this.cs.initializeKey(out[1])
    }

    /** MixHash(data): "Sets h = HASH(h || data)." */
    mixHash(data: Buffer) {
        this.h = sha256(this.h, data)
    }

    /**
     * MixKeyAndHash(ikm): "Sets ck, temp_h, temp_k = HKDF(ck, input_key_material, 3). Calls
     * MixHash(temp_h). Calls InitializeKey(temp_k)." (psk tokens, section 9)
     */
    mixKeyAndHash(ikm: Buffer) {
        const out = hkdf3(this.ck, ikm)
        this.ck = out[0]
        this.mixHash(out[1])
        this.cs.initializeKey(out[2])
    }

    /** EncryptAndHash(plaintext): "Sets ciphertext = EncryptWithAd(h, plaintext), calls MixHash(ciphertext)". */
    encryptAndHash(plaintext: Buffer): Buffer {
        const ct = this.cs.encryptWithAd(this.h, plaintext)
        this.mixHash(ct)
        return ct
    }

    /**
     * DecryptAndHash(ciphertext): "Sets plaintext = DecryptWithAd(h, ciphertext), calls
     * MixHash(ciphertext)".
     * @returns the plaintext, or undefined when not authentic (h and n unchanged)
     */
    decryptAndHash(ciphertext: Buffer): Buffer | undefined {
        const pt = this.cs.decryptWithAd(this.h, ciphertext)
        if (pt === undefined) return undefined
        this.mixHash(ciphertext)
        return pt
    }

    /**
     * Split(): "Sets temp_k1, temp_k2 = HKDF(ck, zerolen, 2)" and returns two CipherStates:
     * [c1, c2], c1 for initiator to responder, c2 back.
     */
    split(): CipherState[] {
        const out = hkdf2(this.ck, EMPTY)
        return [new CipherState(this.cs.cipher, out[0]), new CipherState(this.cs.cipher, out[1])]
    }

    /** GetHandshakeHash(): "Returns h." */
    getHandshakeHash(): Buffer {
        return this.h
    }

    /**
     * An independent copy: work on it, then keep it only if the whole message succeeded
     * (PROTOCOL.md 3.3: "the copy replaces the state only when the whole message was
     * processed").
     */
    clone(): SymmetricState {
        const c = new SymmetricState(this.cs.cipher)
        c.ck = this.ck
        c.h = this.h
        c.cs = this.cs.clone()
        return c
    }
}
