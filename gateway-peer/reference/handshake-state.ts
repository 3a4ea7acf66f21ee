// The Noise HandshakeState (revision 34 section 5.3), with the psk token of section 9.
// Every message is computed on a working copy (a clone of the SymmetricState, and locals for
// e, re, rs and the psk index) that replaces the state only when the whole message succeeded:
// a rejected message (a short message, a wrong tag, a low-order point) leaves ck, h, k, n, e,
// re and rs exactly as they were (PROTOCOL.md 3.3; wireguard-go works on locals and commits on
// success in the same way). Tether's DH is X25519 and its hash SHA-256; the cipher function is
// a parameter.
import type { RandomSource } from "../src/crypto/random.js"
import { DH_LEN, generateKeyPair, x25519, type KeyPair } from "../src/crypto/x25519.js"
import { TAG_LEN } from "../src/crypto/aead.js"
import type { CipherFunction } from "../src/noise/cipher.js"
import type { CipherState } from "../src/noise/cipher-state.js"
import { lookupPattern, type HandshakePattern, type Token } from "./patterns.js"
import { SymmetricState } from "../src/noise/symmetric-state.js"
import { PSK_LEN } from "../src/wire.js"

/** Initialize()'s arguments (section 5.3), as an options object. */
export interface HandshakeOptions {
    /** the pattern's name section, e.g. "KKpsk2"; see patterns.ts for what is supported */
    readonly pattern: string
    readonly initiator: boolean
    readonly cipher: CipherFunction
    /** prologue data, hashed before anything else (section 6); default empty */
    readonly prologue?: Buffer
    /** the local static key pair, if the pattern uses one */
    readonly s?: KeyPair
    /** the remote static public key, if known before the handshake (a "s" pre-message) */
    readonly rs?: Buffer
    /** the psks, in the order the pattern's "psk" tokens use them */
    readonly psks?: readonly Buffer[]
    /** a fixed ephemeral key pair for the "e" token: test vectors only */
    readonly e?: KeyPair
    /** randomness for the ephemeral key when `e` is not given; default the CSPRNG */
    readonly rng?: RandomSource
}

/** What a finished handshake yields: transport CipherStates oriented for this side. */
export interface HandshakeResult {
    /** encrypts what this side sends */
    readonly send: CipherState
    /** decrypts what this side receives (unused after a one-way pattern, section 7.4) */
    readonly receive: CipherState
    /** h after the last message, for channel binding (section 11.2) */
    readonly handshakeHash: Buffer
}

/** The state one message changes, worked on as a copy and committed when the message succeeded. */
interface Work {
    readonly sym: SymmetricState
    e: KeyPair | undefined
    re: Buffer | undefined
    rs: Buffer | undefined
    pskIndex: number
}

/** A Noise HandshakeState for one side of one handshake. */
export class HandshakeState {
    readonly pattern: HandshakePattern
    readonly initiator: boolean
    readonly protocolName: string
    #sym: SymmetricState
    readonly #s: KeyPair | undefined
    readonly #psks: readonly Buffer[]
    readonly #pskMode: boolean
    readonly #fixedE: KeyPair | undefined
    readonly #rng: RandomSource | undefined
    #e: KeyPair | undefined
    #re: Buffer | undefined
    #rs: Buffer | undefined
    #index = 0
    #pskIndex = 0

    /**
     * Initialize(): "Calls InitializeSymmetric(protocol_name). Calls MixHash(prologue)."
     * then hashes the pre-message public keys, the initiator's first.
     * @throws on an unsupported pattern or a missing/ill-sized key or psk (caller errors)
     */
    constructor(opts: HandshakeOptions) {
        const pattern = lookupPattern(opts.pattern)
        if (pattern === undefined) throw new Error(`handshake-state: unsupported pattern ${opts.pattern}`)
        this.pattern = pattern
        this.initiator = opts.initiator
        this.protocolName = `Noise_${pattern.name}_25519_${opts.cipher.name}_SHA256`
        this.#s = opts.s
        this.#rs = opts.rs
        this.#psks = opts.psks ?? []
        this.#fixedE = opts.e
        this.#rng = opts.rng
        const tokens = pattern.messages.flat()
        const pskCount = tokens.filter(t => t === "psk").length
        this.#pskMode = pskCount > 0
        this.#validate(opts, tokens, pskCount)

        this.#sym = new SymmetricState(opts.cipher, this.protocolName)
        this.#sym.mixHash(opts.prologue ?? Buffer.alloc(0))
        // "If both initiator and responder have pre-messages, the initiator's public keys are
        // hashed first."
        for (const _ of pattern.preInitiator) this.#sym.mixHash(this.#staticOf(true))
        for (const _ of pattern.preResponder) this.#sym.mixHash(this.#staticOf(false))
    }

    #validate(opts: HandshakeOptions, tokens: Token[], pskCount: number): void {
        const p = this.pattern
        const mine = this.initiator ? p.preInitiator : p.preResponder
        const theirs = this.initiator ? p.preResponder : p.preInitiator
        const sendsS = p.messages.some((m, i) => i % 2 === (this.initiator ? 0 : 1) && m.includes("s"))
        const usesS = mine.length > 0 || sendsS || tokens.includes("ss") || tokens.includes(this.initiator ? "se" : "es")
        if (usesS && (opts.s === undefined || opts.s.privateKey.length !== DH_LEN || opts.s.publicKey.length !== DH_LEN))
            throw new Error("handshake-state: the pattern needs a 32-byte local static key pair")
        if (theirs.length > 0 && opts.rs?.length !== DH_LEN)
            throw new Error("handshake-state: the pattern needs the 32-byte remote static key")
        if (this.#psks.length !== pskCount || this.#psks.some(k => k.length !== PSK_LEN))
            throw new Error(`handshake-state: the pattern needs ${pskCount} psk(s) of ${PSK_LEN} bytes`)
    }

    /** The static public key of the initiator (true) or the responder (false). */
    #staticOf(ofInitiator: boolean): Buffer {
        const key = ofInitiator === this.initiator ? this.#s?.publicKey : this.#rs
        if (key === undefined) throw new Error("handshake-state: missing static key")
        return key
    }

    /** Whether every message pattern has been processed. */
    get isComplete(): boolean {
        return this.#index >= this.pattern.messages.length
    }

    /** Whether the next handshake message is this side's to write. */
    get isMyTurn(): boolean {
        return !this.isComplete && this.#index % 2 === (this.initiator ? 0 : 1)
    }

    /** The remote static public key (known in advance, or learnt from an "s" token). */
    get remoteStatic(): Buffer | undefined {
        return this.#rs
    }

    /**
     * WriteMessage(payload): processes the next message pattern's tokens, then appends
     * EncryptAndHash(payload).
     * @returns the handshake message
     * @throws when it is not this side's turn, or if a DH hits a low-order point (state unchanged)
     */
    writeMessage(payload: Buffer): Buffer {
        const tokens = this.#next(true)
        const w = this.#work()
        const out: Buffer[] = []
        for (const token of tokens) {
            switch (token) {
                case "e": {
                    // "Sets e (which must be empty) to GENERATE_KEYPAIR(). Appends
                    // e.public_key to the buffer. Calls MixHash(e.public_key)."
                    const e = this.#fixedE ?? generateKeyPair(this.#rng)
                    w.e = e
                    out.push(e.publicKey)
                    this.#mixE(w, e.publicKey)
                    break
                }
                case "s":
                    // "Appends EncryptAndHash(s.public_key) to the buffer."
                    out.push(w.sym.encryptAndHash(this.#staticOf(this.initiator)))
                    break
                case "psk":
                    this.#mixPsk(w)
                    break
                default:
                    this.#dh(w, token) // throws on a low-order point: nothing is committed
            }
        }
        out.push(w.sym.encryptAndHash(payload))
        this.#commit(w)
        return Buffer.concat(out)
    }

    /**
     * ReadMessage(message): processes the next message pattern's tokens on the bytes of
     * `message`, then DecryptAndHash() on what remains.
     * @returns the payload, or undefined if the message is rejected; then nothing changed
     * @throws only when it is not this side's turn to read (a caller error)
     */
    readMessage(message: Buffer): Buffer | undefined {
        const tokens = this.#next(false)
        const w = this.#work()
        let off = 0
        const take = (len: number): Buffer | undefined => {
            if (message.length - off < len) return undefined // lengths first: no silent default
            const b = Buffer.from(message.subarray(off, off + len))
            off += len
            return b
        }
        try {
            for (const token of tokens) {
                switch (token) {
                    case "e": {
                        // "Sets re (which must be empty) to the next DHLEN bytes from the
                        // message. Calls MixHash(re.public_key)."
                        const re = take(DH_LEN)
                        if (re === undefined) return undefined
                        w.re = re
                        this.#mixE(w, re)
                        break
                    }
                    case "s": {
                        // "Sets temp to the next DHLEN + 16 bytes of the message if HasKey()
                        // == True, or to the next DHLEN bytes otherwise. Sets rs (which must
                        // be empty) to DecryptAndHash(temp)."
                        const temp = take(w.sym.hasKey() ? DH_LEN + TAG_LEN : DH_LEN)
                        const rs = temp && w.sym.decryptAndHash(temp)
                        if (rs === undefined) return undefined
                        w.rs = rs
                        break
                    }
                    case "psk":
                        this.#mixPsk(w)
                        break
                    default:
                        this.#dh(w, token)
                }
            }
            const payload = w.sym.decryptAndHash(message.subarray(off))
            if (payload === undefined) return undefined
            this.#commit(w)
            return payload
        } catch {
            // x25519 throws on a low-order re/rs; the peer learns nothing more than "rejected"
            return undefined
        }
    }

    /**
     * Split() after the last message: "Returns a pair of CipherState objects", c1 for the
     * initiator's sending and c2 for the responder's, here oriented for this side.
     * @throws if the handshake is not complete
     */
    split(): HandshakeResult {
        if (!this.isComplete) throw new Error("handshake-state: split before the handshake is complete")
        const { c1, c2 } = this.#sym.split()
        return {
            send: this.initiator ? c1 : c2,
            receive: this.initiator ? c2 : c1,
            handshakeHash: this.#sym.getHandshakeHash(),
        }
    }

    /** The current h (section 5.2 GetHandshakeHash()). */
    getHandshakeHash(): Buffer {
        return this.#sym.getHandshakeHash()
    }

    #next(writing: boolean): readonly Token[] {
        if (this.isComplete) throw new Error("handshake-state: the handshake is already complete")
        if (this.isMyTurn !== writing) throw new Error(`handshake-state: not this side's turn to ${writing ? "write" : "read"}`)
        const tokens = this.pattern.messages[this.#index]
        if (tokens === undefined) throw new Error("handshake-state: no such message")
        return tokens
    }

    /** MixHash(e.public_key); section 9.2: "In a PSK handshake, all of these calls are followed by MixKey(e.public_key)." */
    #mixE(w: Work, publicKey: Buffer): void {
        w.sym.mixHash(publicKey)
        if (this.#pskMode) w.sym.mixKey(publicKey)
    }

    /** Section 9.2: "This token is processed by calling MixKeyAndHash(psk)". */
    #mixPsk(w: Work): void {
        const psk = this.#psks[w.pskIndex]
        if (psk === undefined) throw new Error("handshake-state: missing psk")
        w.sym.mixKeyAndHash(psk)
        w.pskIndex++
    }

    /**
     * "ee": MixKey(DH(e, re)). "es": MixKey(DH(e, rs)) if initiator, MixKey(DH(s, re)) if
     * responder. "se": MixKey(DH(s, re)) if initiator, MixKey(DH(e, rs)) if responder.
     * "ss": MixKey(DH(s, rs)).
     */
    #dh(w: Work, token: "ee" | "es" | "se" | "ss"): void {
        // Which of my keys meets which of theirs: the first letter is the initiator's key.
        const [iKey, rKey] = [token[0], token[1]]
        const mine = this.initiator ? iKey : rKey
        const theirs = this.initiator ? rKey : iKey
        const priv = mine === "e" ? w.e?.privateKey : this.#s?.privateKey
        const pub = theirs === "e" ? w.re : w.rs
        if (priv === undefined || pub === undefined) throw new Error(`handshake-state: ${token} without its keys`)
        const dh = x25519(priv, pub)
        w.sym.mixKey(dh)
        dh.fill(0) // best effort on a garbage-collected VM
    }

    /** A working copy for one message: a clone of the SymmetricState and the current keys. */
    #work(): Work {
        return { sym: this.#sym.clone(), e: this.#e, re: this.#re, rs: this.#rs, pskIndex: this.#pskIndex }
    }

    /** The whole message succeeded: the working copy becomes the state, and the turn passes. */
    #commit(w: Work): void {
        this.#sym = w.sym
        this.#e = w.e
        this.#re = w.re
        this.#rs = w.rs
        this.#pskIndex = w.pskIndex
        this.#index++
    }
}
