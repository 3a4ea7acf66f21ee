// The full handshake on the device (PROTOCOL.md 4): Noise KKpsk2, the device as initiator.
//
//     HS_INIT body = version (1) || device_id (8) || e.public (32) || EncryptAndHash("")
//     HS_RESP body = e.public (32) || EncryptAndHash("")
//
// The caller passes the ephemeral key pair it generated while idle and the cached `ss`, so
// the critical path is exactly three X25519: es (writing HS_INIT), ee and se (reading
// HS_RESP) (PROTOCOL.md 4.3).
import { AESCCM, CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { HandshakeState } from "../noise/handshake-state"
import { Session } from "./session"
import { DEVICE_ID_LEN, HS_RESP_BODY_LEN, KK_PROTOCOL_NAME, prologue, VERSION, VERSION_LEN } from "./wire"

const EMPTY = Buffer.alloc(0)

/** What pairing gave the device (PROTOCOL.md 6.7). Secrets: never log. */
export interface Pairing {
    /** `device_id`, 8 bytes */
    deviceId: Buffer
    /** the device's static key pair */
    s: KeyPair
    /** the gateway's static public key */
    gatewayPublic: Buffer
    /** the pairing PSK, 32 bytes */
    psk: Buffer
}

/** Inputs of one full handshake attempt. */
export interface KkAttempt {
    pairing: Pairing
    /** the ephemeral key pair, used for this attempt only */
    e: KeyPair
    /** DH(s_device, s_gateway), cached per pairing; computed (one more X25519) if undefined */
    ss?: Buffer
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
 * Builds HS_INIT (message 1: `-> e, es, ss`, empty payload).
 * @throws if a DH output is all zero (the gateway's static key is a low-order point)
 */
export async function writeHsInit(a: KkAttempt): Promise<KkPending> {
    const p = a.pairing
    if (p.deviceId.length !== DEVICE_ID_LEN) throw new TypeError("handshake: device_id must be 8 bytes")
    const hs = new HandshakeState({
        cipher: a.cipher || AESCCM,
        protocolName: KK_PROTOCOL_NAME,
        prologue: prologue(p.deviceId),
        s: p.s,
        rs: p.gatewayPublic,
        psk: p.psk,
        e: a.e,
        ss: a.ss,
        dh: a.dh,
    })
    // payload1 MUST be empty in version 1 (PROTOCOL.md 4.1)
    const msg = await hs.writeMessage(EMPTY)
    const body = Buffer.alloc(VERSION_LEN + DEVICE_ID_LEN + msg.length)
    body[0] = VERSION
    body.blitAt(VERSION_LEN, p.deviceId, 0, DEVICE_ID_LEN)
    body.blitAt(VERSION_LEN + DEVICE_ID_LEN, msg, 0, msg.length)
    return { body, hs }
}

/**
 * Reads HS_RESP (message 2: `<- e, ee, se, psk`, empty payload) and splits.
 * @returns the session, or undefined if the body has the wrong length, a DH output is zero
 *     or it fails to decrypt (the pending state is then unchanged)
 */
export async function readHsResp(pending: KkPending, body: Buffer): Promise<Session | undefined> {
    // payload2 is empty in version 1: the body has exactly one length
    if (body.length !== HS_RESP_BODY_LEN) return undefined
    const payload = await pending.hs.readMessage(body)
    if (payload === undefined) return undefined
    const cs = pending.hs.split()
    // "the first CipherState encrypts device -> gateway, the second gateway -> device"
    return new Session(cs[0], cs[1])
}
