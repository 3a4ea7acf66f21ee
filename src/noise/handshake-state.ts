// The Noise HandshakeState (revision 34 section 5.3), only as Tether's device uses it: the
// initiator of KKpsk2 (PROTOCOL.md 4)
//
//     -> s
//     <- s
//     ...
//     -> e, es, ss
//     <- e, ee, se, psk
//
// with the ephemeral key pair and its `es` = DH(e, rs) computed beforehand (while idle), and
// `ss`, which is constant per pairing, computed once and passed in: the critical path is ee
// and se, both reading message 2 (PROTOCOL.md 4.3). The bytes are Noise's; only the time at
// which es is computed differs (PROTOCOL.md 10.5). Either may be left out: it is then
// computed here (one more X25519 each).
// DH goes through an injected object (./dh.ts) so tests count the scalar multiplications.
//
// Each message is processed on a clone of the SymmetricState (and on locals for re); the
// clone replaces the state only when the whole message succeeded (PROTOCOL.md 3.3).
import { TAG_LEN } from "../crypto/aead"
import { DH_LEN } from "../crypto/x25519"
import { CipherFunction } from "./cipher"
import { CipherState } from "./cipher-state"
import { Dh, KeyPair } from "./dh"
import { SymmetricState } from "./symmetric-state"

/** Length of a psk (Noise section 9.2: "a 32-byte secret value"). */
export const PSK_LEN = 32

/** Initialize()'s arguments for the KKpsk2 initiator. */
export interface KkInitiatorOptions {
    cipher: CipherFunction
    /** the full protocol name, e.g. "Noise_KKpsk2_25519_AESCCM_SHA256" */
    protocolName: string
    prologue: Buffer
    /** the local (device) static key pair */
    s: KeyPair
    /** the remote (gateway) static public key */
    rs: Buffer
    /** the psk, mixed by the psk token at the end of message 2 */
    psk: Buffer
    /** the ephemeral key pair for this one attempt (generated off the critical path) */
    e: KeyPair
    /** DH(e, rs), prepared with `e` off the critical path; computed here if undefined */
    es?: Buffer
    /** DH(s, rs), cached per pairing; computed here if undefined */
    ss?: Buffer
    dh: Dh
}

function checkLen(b: Buffer, len: number, what: string) {
    if (!(b instanceof Buffer) || b.length !== len) throw new TypeError("handshake-state: " + what + " must be " + len + " bytes")
}

/** The KKpsk2 initiator's HandshakeState: writeMessage (message 1), readMessage (message 2), split. */
export class HandshakeState {
    private sym: SymmetricState
    private s: KeyPair
    private rs: Buffer
    private psk: Buffer
    private e: KeyPair
    private es: Buffer
    private ss: Buffer
    private re: Buffer
    private dh: Dh
    /** Index of the next message pattern (0, 1, then 2 = complete). */
    private index = 0

    /**
     * Initialize(): "Calls InitializeSymmetric(protocol_name). Calls MixHash(prologue)." then
     * the pre-messages, the initiator's first: MixHash(s_device), MixHash(s_gateway).
     */
    constructor(opts: KkInitiatorOptions) {
        checkLen(opts.s.privateKey, DH_LEN, "s")
        checkLen(opts.s.publicKey, DH_LEN, "s.public")
        checkLen(opts.rs, DH_LEN, "rs")
        checkLen(opts.psk, PSK_LEN, "psk")
        checkLen(opts.e.privateKey, DH_LEN, "e")
        checkLen(opts.e.publicKey, DH_LEN, "e.public")
        if (opts.es !== undefined) checkLen(opts.es, DH_LEN, "es")
        if (opts.ss !== undefined) checkLen(opts.ss, DH_LEN, "ss")
        this.s = opts.s
        this.rs = opts.rs
        this.psk = opts.psk
        this.e = opts.e
        this.es = opts.es
        this.ss = opts.ss
        this.dh = opts.dh
        this.sym = new SymmetricState(opts.cipher, opts.protocolName)
        this.sym.mixHash(opts.prologue)
        // -> s
        this.sym.mixHash(opts.s.publicKey)
        // <- s
        this.sym.mixHash(opts.rs)
    }

    /** Whether both messages have been processed. */
    isComplete(): boolean {
        return this.index === 2
    }

    /**
     * WriteMessage(payload) for message 1: `-> e, es, ss`, then EncryptAndHash(payload). With
     * `es` and `ss` given, no X25519 at all.
     * @returns e.public || ciphertext
     * @throws if called out of turn, or if a DH output is all zero (state unchanged)
     */
    async writeMessage(payload: Buffer): Promise<Buffer> {
        if (this.index !== 0) throw new Error("handshake-state: not this side's turn to write")
        const sym = this.sym.clone()
        // e: "Appends e.public_key to the buffer. Calls MixHash(e.public_key)." In a PSK
        // handshake (section 9.2) it is followed by MixKey(e.public_key).
        sym.mixHash(this.e.publicKey)
        sym.mixKey(this.e.publicKey)
        // es: MixKey(DH(e, rs)) for the initiator, prepared with e while idle
        let es = this.es
        if (es === undefined) es = await this.dh.x25519(this.e.privateKey, this.rs)
        sym.mixKey(es)
        // ss: MixKey(DH(s, rs)), cached per pairing
        let ss = this.ss
        if (ss === undefined) ss = await this.dh.x25519(this.s.privateKey, this.rs)
        sym.mixKey(ss)
        const ct = sym.encryptAndHash(payload)
        const out = Buffer.alloc(DH_LEN + ct.length)
        out.blitAt(0, this.e.publicKey, 0, DH_LEN)
        out.blitAt(DH_LEN, ct, 0, ct.length)
        this.sym = sym
        es.fillAt(0, DH_LEN, 0) // used once; best effort on a garbage-collected VM
        this.es = undefined
        this.ss = ss
        this.index = 1
        return out
    }

    /**
     * ReadMessage(message) for message 2: `<- e, ee, se, psk`, then DecryptAndHash(rest).
     * @returns the payload, or undefined if the message is rejected (short, a low-order re,
     *     a wrong tag): then nothing changed
     * @throws only when called out of turn
     */
    async readMessage(message: Buffer): Promise<Buffer | undefined> {
        if (this.index !== 1) throw new Error("handshake-state: not this side's turn to read")
        if (message.length < DH_LEN + TAG_LEN) return undefined // lengths first
        const sym = this.sym.clone()
        // e: "Sets re to the next DHLEN bytes from the message. Calls MixHash(re.public_key)."
        // and MixKey(re) in a PSK handshake
        const re = message.slice(0, DH_LEN)
        sym.mixHash(re)
        sym.mixKey(re)
        try {
            // ee: MixKey(DH(e, re))
            sym.mixKey(await this.dh.x25519(this.e.privateKey, re))
            // se: MixKey(DH(s, re)) for the initiator
            sym.mixKey(await this.dh.x25519(this.s.privateKey, re))
        } catch (err) {
            return undefined // an all-zero DH output: a low-order or invalid re
        }
        // psk: MixKeyAndHash(psk)
        sym.mixKeyAndHash(this.psk)
        const payload = sym.decryptAndHash(message.slice(DH_LEN))
        if (payload === undefined) return undefined
        this.sym = sym
        this.re = re
        this.index = 2
        return payload
    }

    /**
     * Split() after message 2: [send, receive] oriented for the initiator (c1 encrypts device
     * to gateway, c2 gateway to device). The ephemeral private key is wiped: one attempt only.
     * @throws if the handshake is not complete
     */
    split(): CipherState[] {
        if (this.index !== 2) throw new Error("handshake-state: split before the handshake is complete")
        this.e.privateKey.fillAt(0, DH_LEN, 0) // best effort on a garbage-collected VM
        return this.sym.split()
    }

    /** GetHandshakeHash(): h (after split, for channel binding). */
    getHandshakeHash(): Buffer {
        return this.sym.getHandshakeHash()
    }
}
