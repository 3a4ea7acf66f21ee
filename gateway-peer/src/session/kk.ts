// The full handshake, Noise KKpsk2 (PROTOCOL.md 4), composed on the Noise SymmetricState so
// that `ss` can be cached per pairing and every X25519 goes through one injected Dh
// (counted in tests: an unknown device must cost none). HandshakeState takes neither a
// precomputed ss nor a DH hook; test/kk.test.ts checks this composition against it byte for
// byte. Token order, Noise section 7 and 9:
//
//     -> s  <- s  ...  -> e, es, ss  <- e, ee, se, psk
//
// psk mode: every `e` is MixHash(e) then MixKey(e) (section 9.2).
import { AESCCM, type CipherFunction } from "../noise/cipher.js"
import { SymmetricState } from "../noise/symmetric-state.js"
import type { KeyPair } from "../crypto/x25519.js"
import { x25519, x25519Base } from "../crypto/x25519.js"
import type { Dh } from "../noise/dh.js"
import { DH_LEN, HS_INIT_MESSAGE_LEN, HS_RESP_BODY_LEN, KK_PROTOCOL_NAME, prologue, PSK_LEN } from "../wire.js"
import { Session } from "./session.js"

const EMPTY = Buffer.alloc(0)

export type { Dh }

/** The default DH functions: node:crypto X25519 (crypto/x25519.ts). */
export const X25519: Dh = { x25519, x25519Base }

/** What both sides know of one pairing. Secrets: never log. */
export interface KkKeys {
    /** `device_id`, bound into the prologue */
    readonly deviceId: Buffer
    /** this side's static key pair */
    readonly s: KeyPair
    /** the peer's static public key */
    readonly rs: Buffer
    readonly psk: Buffer
    /** DH(s, rs), cached per pairing; computed with `dh` if undefined */
    readonly ss?: Buffer
    readonly dh?: Dh
    readonly cipher?: CipherFunction
}

/** `InitializeSymmetric`, the prologue, then the pre-messages: initiator's s, responder's s. */
function start(k: KkKeys, sInitiator: Buffer, sResponder: Buffer): SymmetricState {
    if (k.psk.length !== PSK_LEN || k.rs.length !== DH_LEN) throw new TypeError("kk: bad psk or remote static key")
    const sym = new SymmetricState(k.cipher ?? AESCCM, KK_PROTOCOL_NAME)
    sym.mixHash(prologue(k.deviceId))
    sym.mixHash(sInitiator)
    sym.mixHash(sResponder)
    return sym
}

function mixE(sym: SymmetricState, e: Buffer): void {
    sym.mixHash(e)
    sym.mixKey(e) // psk mode
}

/** The initiator between HS_INIT and HS_RESP. */
export interface KkInitiatorPending {
    /** HS_INIT's Noise message (after version and device_id) */
    readonly message: Buffer
    readonly sym: SymmetricState
    readonly keys: KkKeys
    readonly e: KeyPair
}

/**
 * Writes message 1: `e, es, ss`, empty payload.
 * @param e the ephemeral key pair, for this attempt only
 * @throws if a DH output is all zero
 */
export function writeKk1(keys: KkKeys, e: KeyPair): KkInitiatorPending {
    const dh = keys.dh ?? X25519
    const sym = start(keys, keys.s.publicKey, keys.rs)
    mixE(sym, e.publicKey) // e
    sym.mixKey(dh.x25519(e.privateKey, keys.rs)) // es
    sym.mixKey(keys.ss ?? dh.x25519(keys.s.privateKey, keys.rs)) // ss
    const message = Buffer.concat([e.publicKey, sym.encryptAndHash(EMPTY)])
    return { message, sym, keys, e }
}

/** A finished handshake. */
export interface KkResult {
    readonly session: Session
    readonly handshakeHash: Buffer
}

/**
 * Reads message 2: `e, ee, se, psk`, empty payload, then Split().
 * @returns undefined if the message is not 48 bytes, a DH output is zero, it fails to decrypt
 *   or its payload is not empty; `pending` is never changed (the work is on a clone)
 */
export function readKk2(pending: KkInitiatorPending, message: Buffer): KkResult | undefined {
    if (message.length !== HS_RESP_BODY_LEN) return undefined
    const { keys, e } = pending
    const dh = keys.dh ?? X25519
    const sym = pending.sym.clone()
    try {
        const re = Buffer.from(message.subarray(0, DH_LEN))
        mixE(sym, re) // e
        sym.mixKey(dh.x25519(e.privateKey, re)) // ee
        sym.mixKey(dh.x25519(keys.s.privateKey, re)) // se (initiator: DH(s, re))
        sym.mixKeyAndHash(keys.psk) // psk
        const payload = sym.decryptAndHash(message.subarray(DH_LEN))
        if (payload === undefined || payload.length !== 0) return undefined
        const handshakeHash = sym.getHandshakeHash()
        const { c1, c2 } = sym.split()
        return { session: new Session(c1, c2), handshakeHash }
    } catch {
        return undefined // a low-order point
    }
}

/** The responder after message 1, before it writes message 2. */
export interface KkResponderRead {
    readonly sym: SymmetricState
    readonly keys: KkKeys
    readonly re: Buffer
}

/**
 * Reads message 1 on the responder: `e, es, ss`, payload.
 * @returns undefined if the message has the wrong length, a DH output is zero, it fails to
 *   decrypt or its payload is not empty ("payload1 MUST be empty in version 1")
 */
export function readKk1(keys: KkKeys, message: Buffer): KkResponderRead | undefined {
    if (message.length !== HS_INIT_MESSAGE_LEN) return undefined
    const dh = keys.dh ?? X25519
    const sym = start(keys, keys.rs, keys.s.publicKey)
    try {
        const re = Buffer.from(message.subarray(0, DH_LEN))
        mixE(sym, re) // e
        sym.mixKey(dh.x25519(keys.s.privateKey, re)) // es (responder: DH(s, re))
        sym.mixKey(keys.ss ?? dh.x25519(keys.s.privateKey, keys.rs)) // ss
        const payload = sym.decryptAndHash(message.subarray(DH_LEN))
        if (payload === undefined || payload.length !== 0) return undefined
        return { sym, keys, re }
    } catch {
        return undefined
    }
}

/**
 * Writes message 2: `e, ee, se, psk`, empty payload, then Split(). Consumes `read`.
 * @returns the message and the responder's session (send = Split()'s second)
 * @throws if a DH output is all zero (re was checked by readKk1's es already)
 */
export function writeKk2(read: KkResponderRead, e: KeyPair): KkResult & { message: Buffer } {
    const { sym, keys, re } = read
    const dh = keys.dh ?? X25519
    mixE(sym, e.publicKey) // e
    sym.mixKey(dh.x25519(e.privateKey, re)) // ee
    sym.mixKey(dh.x25519(e.privateKey, keys.rs)) // se (responder: DH(e, rs))
    sym.mixKeyAndHash(keys.psk) // psk
    const message = Buffer.concat([e.publicKey, sym.encryptAndHash(EMPTY)])
    const handshakeHash = sym.getHandshakeHash()
    const { c1, c2 } = sym.split()
    return { message, session: new Session(c2, c1), handshakeHash }
}
