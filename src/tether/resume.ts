// The resumption (PROTOCOL.md 6.2): a symmetric-only handshake on the Noise SymmetricState,
// keyed by the resumption secret, with random nonces processed like psk-mode `e` tokens.
// No X25519 at all.
//
//     InitializeSymmetric("Tether_Resume1_AESCCM_SHA256")
//     MixHash(prologue)  with prologue = "tether/1" || version || device_id (from the ticket)
//     -> RESUME_INIT:  MixKeyAndHash(resumption_secret); MixHash(ticket);
//                      nonce_i: MixHash(nonce_i); MixKey(nonce_i);
//                      EncryptAndHash(early_data)
//     <- RESUME_RESP:  nonce_r: MixHash(nonce_r); MixKey(nonce_r);
//                      EncryptAndHash(flags (1))
//     Split()          first CipherState device -> gateway, second gateway -> device
import { AESCCM, CipherFunction } from "../noise/cipher"
import { SymmetricState } from "../noise/symmetric-state"
import { Session } from "./session"
import {
    DEVICE_ID_LEN,
    EARLY_ACCEPTED,
    INNER_TYPE_LEN,
    MAX_EARLY_DATA,
    InnerType,
    FLAGS_LEN,
    RESUME_NONCE_LEN,
    RESUME_PROTOCOL_NAME,
    RESUME_RESP_BODY_LEN,
    RESUMPTION_SECRET_LEN,
    TICKET_DEVICE_ID_OFFSET,
    TICKET_LEN,
    VERSION,
    VERSION_LEN,
    prologue,
} from "./wire"

/** A ticket and its resumption secret (the secret: never log). */
export interface ResumeTicket {
    /** 33 bytes, opaque to the device except for its device_id */
    ticket: Buffer
    /** 32 bytes */
    secret: Buffer
}

/** A resumption waiting for RESUME_RESP. */
export interface ResumePending {
    /** the RESUME_INIT frame body */
    body: Buffer
    /** the SymmetricState after RESUME_INIT */
    sym: SymmetricState
    /** whether early data was sent */
    early: boolean
}

/** The result of a resumption. */
export interface Resumed {
    session: Session
    /** the RESUME_RESP flags byte */
    flags: number
}

/**
 * Builds RESUME_INIT: version || ticket || nonce_i || EncryptAndHash(early_data).
 * @param t the stored ticket and secret
 * @param nonceI 12 fresh random bytes
 * @param early the content of a DATA record to send as 0-RTT data, or undefined for none
 * @param cipher default AESCCM
 * @throws on ill-sized inputs or early data that does not fit the frame
 */
export function writeResumeInit(t: ResumeTicket, nonceI: Buffer, early?: Buffer, cipher?: CipherFunction): ResumePending {
    if (t.ticket.length !== TICKET_LEN || t.secret.length !== RESUMPTION_SECRET_LEN || nonceI.length !== RESUME_NONCE_LEN)
        throw new TypeError("resume: bad ticket, secret or nonce length")
    let earlyPt = Buffer.alloc(0)
    if (early !== undefined) {
        if (INNER_TYPE_LEN + early.length > MAX_EARLY_DATA) throw new RangeError("resume: early data too long")
        // "one record plaintext (inner_type || content) with inner_type = DATA"
        earlyPt = Buffer.alloc(INNER_TYPE_LEN + early.length)
        earlyPt[0] = InnerType.DATA
        earlyPt.blitAt(INNER_TYPE_LEN, early, 0, early.length)
    }
    const sym = new SymmetricState(cipher || AESCCM, RESUME_PROTOCOL_NAME)
    sym.mixHash(prologue(t.ticket.slice(TICKET_DEVICE_ID_OFFSET, TICKET_DEVICE_ID_OFFSET + DEVICE_ID_LEN)))
    // psk: the resumption secret
    sym.mixKeyAndHash(t.secret)
    sym.mixHash(t.ticket)
    // nonce_i, as a psk-mode e token
    sym.mixHash(nonceI)
    sym.mixKey(nonceI)
    const ct = sym.encryptAndHash(earlyPt)
    const body = Buffer.alloc(VERSION_LEN + TICKET_LEN + RESUME_NONCE_LEN + ct.length)
    body[0] = VERSION
    body.blitAt(VERSION_LEN, t.ticket, 0, TICKET_LEN)
    body.blitAt(VERSION_LEN + TICKET_LEN, nonceI, 0, RESUME_NONCE_LEN)
    body.blitAt(VERSION_LEN + TICKET_LEN + RESUME_NONCE_LEN, ct, 0, ct.length)
    return { body, sym, early: early !== undefined }
}

/**
 * Reads RESUME_RESP: nonce_r || EncryptAndHash(flags), then splits.
 * @returns the session and flags, or undefined when the body has the wrong length, fails to
 *     decrypt or sets a reserved flag bit (`pending` is unchanged: the work is on a clone)
 */
export function readResumeResp(pending: ResumePending, body: Buffer): Resumed | undefined {
    if (body.length !== RESUME_RESP_BODY_LEN) return undefined
    const sym = pending.sym.clone()
    const nonceR = body.slice(0, RESUME_NONCE_LEN)
    // nonce_r, as a psk-mode e token
    sym.mixHash(nonceR)
    sym.mixKey(nonceR)
    const flags = sym.decryptAndHash(body.slice(RESUME_NONCE_LEN))
    if (flags === undefined || flags.length !== FLAGS_LEN) return undefined
    // "the other bits are 0": anything else is not version 1
    if ((flags[0] & ~EARLY_ACCEPTED) !== 0) return undefined
    const cs = sym.split()
    return { session: new Session(cs[0], cs[1]), flags: flags[0] }
}
