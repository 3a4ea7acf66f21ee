// The resumption (PROTOCOL.md 6.2): a symmetric-only handshake on the Noise SymmetricState,
// keyed by the resumption secret, random nonces processed like psk-mode `e` tokens. No X25519.
//
//     InitializeSymmetric("Tether_Resume1_AESCCM_SHA256")
//     MixHash(prologue)  with prologue = "tether/1" || version || device_id (from the ticket)
//     -> RESUME_INIT:  MixKeyAndHash(resumption_secret); MixHash(ticket);
//                      nonce_i: MixHash(nonce_i); MixKey(nonce_i); EncryptAndHash(early_data)
//     <- RESUME_RESP:  nonce_r: MixHash(nonce_r); MixKey(nonce_r); EncryptAndHash(flags (1))
//     Split()          first CipherState device -> gateway, second gateway -> device
//
// Function names are the device's (src/tether/resume.ts).
import { AESCCM, type CipherFunction } from "../noise/cipher.js"
import { SymmetricState } from "../noise/symmetric-state.js"
import {
    DEVICE_ID_LEN,
    EARLY_ACCEPTED,
    FLAGS_LEN,
    INNER_TYPE_LEN,
    InnerType,
    MAX_EARLY_DATA,
    prologue,
    RESUME_NONCE_LEN,
    RESUME_PROTOCOL_NAME,
    RESUME_RESP_BODY_LEN,
    RESUMPTION_SECRET_LEN,
    TICKET_DEVICE_ID_OFFSET,
    TICKET_LEN,
    VERSION,
} from "../wire.js"
import { Session } from "./session.js"

/** A ticket and its resumption secret (the secret: never log). */
export interface ResumeTicket {
    readonly ticket: Buffer
    readonly secret: Buffer
}

/** The steps of RESUME_INIT up to (not including) the early data. */
function startResume(ticket: Buffer, secret: Buffer, nonceI: Buffer, cipher: CipherFunction): SymmetricState {
    if (ticket.length !== TICKET_LEN || secret.length !== RESUMPTION_SECRET_LEN || nonceI.length !== RESUME_NONCE_LEN)
        throw new TypeError("resume: bad ticket, secret or nonce length")
    const sym = new SymmetricState(cipher, RESUME_PROTOCOL_NAME)
    sym.mixHash(prologue(ticket.subarray(TICKET_DEVICE_ID_OFFSET, TICKET_DEVICE_ID_OFFSET + DEVICE_ID_LEN)))
    sym.mixKeyAndHash(secret) // psk: the resumption secret
    sym.mixHash(ticket)
    sym.mixHash(nonceI) // nonce_i, as a psk-mode e token
    sym.mixKey(nonceI)
    return sym
}

/** The initiator between RESUME_INIT and RESUME_RESP. */
export interface ResumePending {
    /** the RESUME_INIT frame body */
    readonly body: Buffer
    readonly sym: SymmetricState
    /** whether early data was sent */
    readonly early: boolean
}

/**
 * Builds RESUME_INIT: version || ticket || nonce_i || EncryptAndHash(early_data).
 * @param early the content of a DATA record sent as 0-RTT data, or undefined for none
 * @throws on ill-sized inputs or early data that does not fit one frame
 */
export function writeResumeInit(t: ResumeTicket, nonceI: Buffer, early?: Buffer, cipher: CipherFunction = AESCCM): ResumePending {
    let earlyPt = Buffer.alloc(0)
    if (early !== undefined) {
        if (INNER_TYPE_LEN + early.length > MAX_EARLY_DATA) throw new RangeError("resume: early data too long")
        earlyPt = Buffer.concat([Buffer.from([InnerType.DATA]), early]) // "inner_type = DATA"
    }
    const sym = startResume(t.ticket, t.secret, nonceI, cipher)
    const ct = sym.encryptAndHash(earlyPt)
    return { body: Buffer.concat([Buffer.from([VERSION]), t.ticket, nonceI, ct]), sym, early: early !== undefined }
}

/** A finished resumption, either side. */
export interface Resumed {
    readonly session: Session
    readonly flags: number
    readonly handshakeHash: Buffer
}

/**
 * Reads RESUME_RESP: nonce_r || EncryptAndHash(flags), then Split().
 * @returns undefined when the body has the wrong length, fails to decrypt or sets a reserved
 *   flag bit; `pending` is never changed (the work is on a clone)
 */
export function readResumeResp(pending: ResumePending, body: Buffer): Resumed | undefined {
    if (body.length !== RESUME_RESP_BODY_LEN) return undefined
    const sym = pending.sym.clone()
    const nonceR = body.subarray(0, RESUME_NONCE_LEN)
    sym.mixHash(nonceR) // nonce_r, as a psk-mode e token
    sym.mixKey(nonceR)
    const flags = sym.decryptAndHash(body.subarray(RESUME_NONCE_LEN))
    if (flags === undefined || flags.length !== FLAGS_LEN) return undefined
    const f = flags[0] as number
    if ((f & ~EARLY_ACCEPTED) !== 0) return undefined // "the other bits are 0"
    const handshakeHash = sym.getHandshakeHash()
    const { c1, c2 } = sym.split()
    return { session: new Session(c1, c2), flags: f, handshakeHash }
}

/** The responder after RESUME_INIT decrypted. */
export interface ResumeRead {
    readonly sym: SymmetricState
    /** the early data plaintext (inner_type || content), possibly empty */
    readonly early: Buffer
}

/**
 * The responder's RESUME_INIT steps from the ticket on (the ticket was opened by the caller).
 * @returns undefined if the early data fails to decrypt
 */
export function readResumeInit(
    ticket: Buffer,
    secret: Buffer,
    nonceI: Buffer,
    ciphertext: Buffer,
    cipher: CipherFunction = AESCCM,
): ResumeRead | undefined {
    const sym = startResume(ticket, secret, nonceI, cipher)
    const early = sym.decryptAndHash(ciphertext)
    return early === undefined ? undefined : { sym, early }
}

/** Writes RESUME_RESP's body and splits (the responder sends with Split()'s second). */
export function writeResumeResp(read: ResumeRead, nonceR: Buffer, flags: number): Resumed & { body: Buffer } {
    if (nonceR.length !== RESUME_NONCE_LEN) throw new TypeError("resume: nonce_r must be 12 bytes")
    const { sym } = read
    sym.mixHash(nonceR) // nonce_r
    sym.mixKey(nonceR)
    const ct = sym.encryptAndHash(Buffer.from([flags]))
    const handshakeHash = sym.getHandshakeHash()
    const { c1, c2 } = sym.split()
    return { body: Buffer.concat([nonceR, ct]), session: new Session(c2, c1), flags, handshakeHash }
}
