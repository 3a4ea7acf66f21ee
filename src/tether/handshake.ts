// The full handshake on the device (PROTOCOL.md 4): Noise KKpsk2, the device as initiator.
//
//     HS_INIT body = version (1) || pseudonym (8) || e.public (32) || EncryptAndHash("")
//     HS_RESP body = e.public (32) || EncryptAndHash("")
//
// with the prologue "tether/2" || version || pseudonym (3.2), so the pseudonym sent in clear
// is authenticated. The caller passes the ephemeral key pair and its `es` = DH(e, s_gateway),
// both prepared while idle, and the cached `ss`: writing HS_INIT costs no X25519, and the
// critical path is exactly two X25519, ee and se, both reading HS_RESP (PROTOCOL.md 4.3).
import { hmacSha256 } from "../crypto/hash"
import { AESCCM, CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { HandshakeState } from "../noise/handshake-state"
import { Session } from "./session"
import { HS_RESP_BODY_LEN, KK_PROTOCOL_NAME, prologue, PSEUDONYM_LEN, PSEUDONYM0_LABEL, PSK_LEN, VERSION, VERSION_LEN } from "./wire"

const EMPTY = Buffer.alloc(0)

/** What pairing gave the device (PROTOCOL.md 6.8). Secrets: never log. */
export interface Pairing {
    /** `device_id`, 8 bytes: named in the resumption's prologue, never sent in clear */
    deviceId: Buffer
    /** the device's static key pair */
    s: KeyPair
    /** the gateway's static public key */
    gatewayPublic: Buffer
    /** the pairing PSK, 32 bytes */
    psk: Buffer
}

/**
 * The fallback pseudonym (PROTOCOL.md 4.4): `HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8]`,
 * used by a device with no stored pseudonym, or after REJECT(UNKNOWN_DEVICE) to its stored one.
 */
export function pseudonym0(psk: Buffer): Buffer {
    if (psk.length !== PSK_LEN) throw new TypeError("handshake: psk must be 32 bytes")
    return hmacSha256(psk, Buffer.from(PSEUDONYM0_LABEL)).slice(0, PSEUDONYM_LEN)
}

/** Inputs of one full handshake attempt. */
export interface KkAttempt {
    pairing: Pairing
    /** the pseudonym HS_INIT names the device by (8 bytes): the stored one, or pseudonym0 */
    pseudonym: Buffer
    /** the ephemeral key pair, used for this attempt only */
    e: KeyPair
    /** DH(e_device, s_gateway), prepared with `e` while idle; used for this attempt only */
    es: Buffer
    /** DH(s_device, s_gateway), cached per pairing */
    ss: Buffer
    /** reads HS_RESP (ee, se) */
    dh: Dh
    /** the cipher function; default AESCCM */
    cipher?: CipherFunction
}

/** A full handshake waiting for HS_RESP. */
export interface KkPending {
    /** the HS_INIT frame body */
    body: Buffer
    hs: HandshakeState
}

/**
 * Builds HS_INIT (message 1: `-> e, es, ss`, empty payload) from the prepared keys: no X25519.
 * @throws TypeError on a missing or ill-sized input
 */
export async function writeHsInit(a: KkAttempt): Promise<KkPending> {
    const p = a.pairing
    if (!a.pseudonym || a.pseudonym.length !== PSEUDONYM_LEN) throw new TypeError("handshake: pseudonym must be 8 bytes")
    if (!a.es || !a.ss) throw new TypeError("handshake: es and ss must be prepared")
    const hs = new HandshakeState({
        cipher: a.cipher || AESCCM,
        protocolName: KK_PROTOCOL_NAME,
        prologue: prologue(a.pseudonym),
        s: p.s,
        rs: p.gatewayPublic,
        psk: p.psk,
        e: a.e,
        es: a.es,
        ss: a.ss,
        dh: a.dh,
    })
    // payload1 MUST be empty in version 2 (PROTOCOL.md 4.1)
    const msg = await hs.writeMessage(EMPTY)
    const body = Buffer.alloc(VERSION_LEN + PSEUDONYM_LEN + msg.length)
    body[0] = VERSION
    body.blitAt(VERSION_LEN, a.pseudonym, 0, PSEUDONYM_LEN)
    body.blitAt(VERSION_LEN + PSEUDONYM_LEN, msg, 0, msg.length)
    return { body, hs }
}

/**
 * Reads HS_RESP (message 2: `<- e, ee, se, psk`, empty payload) and splits: two X25519.
 * @returns the session, or undefined if the body has the wrong length, a DH output is zero
 *     or it fails to decrypt (the pending state is then unchanged)
 */
export async function readHsResp(pending: KkPending, body: Buffer): Promise<Session | undefined> {
    // payload2 is empty in version 2: the body has exactly one length
    if (body.length !== HS_RESP_BODY_LEN) return undefined
    const payload = await pending.hs.readMessage(body)
    if (payload === undefined) return undefined
    const cs = pending.hs.split()
    // "the first CipherState encrypts device -> gateway, the second gateway -> device"
    return new Session(cs[0], cs[1])
}
