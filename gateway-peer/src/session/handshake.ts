// The full handshake, Noise KKpsk2 (PROTOCOL.md 4), composed on the Noise SymmetricState so
// that `ss` can be cached per pairing and every X25519 goes through one injected Dh
// (counted in tests: an unknown device must cost none). HandshakeState takes neither a
// precomputed ss nor a DH hook; test/session/handshake.test.ts checks this composition against
// it byte for byte. Token order, Noise section 7 and 9:
//
//     -> s  <- s  ...  -> e, es, ss  <- e, ee, se, psk
//
// psk mode: every `e` is MixHash(e) then MixKey(e) (section 9.2).
//
//     HS_INIT body = version (1) || pseudonym (8) || e (32) || EncryptAndHash(payload1)
//     HS_RESP body = e (32) || EncryptAndHash(payload2)
//
// This module is the only one that builds or takes apart these bodies. The initiator's
// functions have the device's names (src/tether/handshake.ts): writeHsInit, readHsResp. The
// responder reads the body first (readHsInit: the registry lookup needs the pseudonym before any
// X25519), then consumes its Noise message (consumeHsInit, as wireguard-go's
// ConsumeMessageInitiation) and writes HS_RESP (writeHsResp).
import { AESCCM, type CipherFunction } from "../noise/cipher.js"
import { SymmetricState } from "../noise/symmetric-state.js"
import type { KeyPair } from "../crypto/x25519.js"
import { x25519, x25519Base } from "../crypto/x25519.js"
import type { Dh } from "../noise/dh.js"
import {
    DH_LEN,
    HS_INIT_BODY_LEN,
    HS_INIT_PSEUDONYM_OFFSET,
    HS_INIT_MESSAGE_LEN,
    HS_INIT_MESSAGE_OFFSET,
    HS_RESP_BODY_LEN,
    KK_PROTOCOL_NAME,
    prologue,
    PSEUDONYM_LEN,
    PSK_LEN,
    VERSION,
    VERSION_LEN,
} from "../wire.js"
import { Session } from "./session.js"

const EMPTY = Buffer.alloc(0)

export type { Dh }

/** The default DH functions: node:crypto X25519 (crypto/x25519.ts). */
export const X25519: Dh = { x25519, x25519Base }

/** What both sides know of one pairing. Secrets: never log. */
export interface KkKeys {
    /** the pseudonym HS_INIT names the device by (PROTOCOL.md 4.4), bound into the prologue */
    readonly pseudonym: Buffer
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
    if (k.psk.length !== PSK_LEN || k.rs.length !== DH_LEN) throw new TypeError("handshake: bad psk or remote static key")
    const sym = new SymmetricState(k.cipher ?? AESCCM, KK_PROTOCOL_NAME)
    sym.mixHash(prologue(k.pseudonym))
    sym.mixHash(sInitiator)
    sym.mixHash(sResponder)
    return sym
}

function mixE(sym: SymmetricState, e: Buffer): void {
    sym.mixHash(e)
    sym.mixKey(e) // psk mode
}

/** The fields of an HS_INIT body. */
export interface HsInit {
    readonly version: number
    /** a view of the body's `pseudonym` */
    readonly pseudonym: Buffer
    /**
     * a view of the Noise message 1 (`e || EncryptAndHash(payload1)`): longer than
     * HS_INIT_MESSAGE_LEN when the device sent a payload, which version 2 refuses (`hasPayload`)
     */
    readonly message: Buffer
    readonly hasPayload: boolean
}

/**
 * Why an HS_INIT body could not be read, in PROTOCOL.md 4.1 step 1's order: an empty body, a
 * version other than VERSION (whose layout this module does not know), fewer bytes than
 * HS_INIT_BODY_LEN.
 */
export type HsInitError =
    | { readonly error: "empty" }
    | { readonly error: "version"; readonly version: number }
    | { readonly error: "short"; readonly length: number }

/**
 * Builds an HS_INIT body from its fields (the Noise message as given: writeHsInit makes a real
 * one; tests and the load generator pass garbage).
 * @throws TypeError if the pseudonym is not PSEUDONYM_LEN bytes
 */
export function encodeHsInit(pseudonym: Buffer, message: Buffer, version: number = VERSION): Buffer {
    if (pseudonym.length !== PSEUDONYM_LEN) throw new TypeError(`handshake: the pseudonym must be ${PSEUDONYM_LEN} bytes`)
    const body = Buffer.allocUnsafe(HS_INIT_MESSAGE_OFFSET + message.length) // every byte is written below
    body[0] = version
    pseudonym.copy(body, HS_INIT_PSEUDONYM_OFFSET)
    message.copy(body, HS_INIT_MESSAGE_OFFSET)
    return body
}

/**
 * Reads an HS_INIT body's fields without any cryptography. Lengths are checked before any
 * field is read; the fields are views of `body`.
 */
export function readHsInit(body: Buffer): HsInit | HsInitError {
    if (body.length < VERSION_LEN) return { error: "empty" }
    const version = body[0] as number
    if (version !== VERSION) return { error: "version", version }
    if (body.length < HS_INIT_BODY_LEN) return { error: "short", length: body.length }
    return {
        version,
        pseudonym: body.subarray(HS_INIT_PSEUDONYM_OFFSET, HS_INIT_MESSAGE_OFFSET),
        message: body.subarray(HS_INIT_MESSAGE_OFFSET),
        hasPayload: body.length !== HS_INIT_BODY_LEN,
    }
}

/** The initiator between HS_INIT and HS_RESP. */
export interface KkInitiatorPending {
    /** the HS_INIT frame body */
    readonly body: Buffer
    readonly sym: SymmetricState
    readonly keys: KkKeys
    readonly e: KeyPair
}

/**
 * Builds HS_INIT: version, pseudonym, then message 1: `e, es, ss`, empty payload.
 * @param e the ephemeral key pair, for this attempt only
 * @param es DH(e, s_gateway) if computed before (while idle, PROTOCOL.md 4.3); else computed here
 * @throws if a DH output is all zero
 */
export function writeHsInit(keys: KkKeys, e: KeyPair, es?: Buffer): KkInitiatorPending {
    const dh = keys.dh ?? X25519
    const sym = start(keys, keys.s.publicKey, keys.rs)
    mixE(sym, e.publicKey) // e
    sym.mixKey(es ?? dh.x25519(e.privateKey, keys.rs)) // es
    sym.mixKey(keys.ss ?? dh.x25519(keys.s.privateKey, keys.rs)) // ss
    const message = Buffer.concat([e.publicKey, sym.encryptAndHash(EMPTY)])
    return { body: encodeHsInit(keys.pseudonym, message), sym, keys, e }
}

/** A finished handshake. */
export interface KkResult {
    readonly session: Session
    readonly handshakeHash: Buffer
}

/**
 * Reads HS_RESP, message 2: `e, ee, se, psk`, empty payload, then Split().
 * @param message the HS_RESP frame body (it is all Noise message 2)
 * @returns undefined if the message is not 48 bytes, a DH output is zero, it fails to decrypt
 *   or its payload is not empty; `pending` is never changed (the work is on a clone)
 */
export function readHsResp(pending: KkInitiatorPending, message: Buffer): KkResult | undefined {
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
 * Consumes message 1 on the responder: `e, es, ss`, payload.
 * @param message HsInit.message, from readHsInit
 * @returns undefined if the message has the wrong length, a DH output is zero, it fails to
 *   decrypt or its payload is not empty ("payload1 MUST be empty in version 2")
 */
export function consumeHsInit(keys: KkKeys, message: Buffer): KkResponderRead | undefined {
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
 * Writes HS_RESP, message 2: `e, ee, se, psk`, empty payload, then Split(). Consumes `read`.
 * @returns the HS_RESP body (all of message 2) and the responder's session (send = Split()'s
 *   second)
 * @throws if a DH output is all zero (re was checked by consumeHsInit's es already)
 */
export function writeHsResp(read: KkResponderRead, e: KeyPair): KkResult & { body: Buffer } {
    const { sym, keys, re } = read
    const dh = keys.dh ?? X25519
    mixE(sym, e.publicKey) // e
    sym.mixKey(dh.x25519(e.privateKey, re)) // ee
    sym.mixKey(dh.x25519(e.privateKey, keys.rs)) // se (responder: DH(e, rs))
    sym.mixKeyAndHash(keys.psk) // psk
    const body = Buffer.concat([e.publicKey, sym.encryptAndHash(EMPTY)])
    const handshakeHash = sym.getHandshakeHash()
    const { c1, c2 } = sym.split()
    return { body, session: new Session(c2, c1), handshakeHash }
}
