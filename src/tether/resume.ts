// The resumption (PROTOCOL.md 6.2): a symmetric-only handshake on the Noise SymmetricState,
// keyed by the resumption secret, with random nonces processed like psk-mode `e` tokens and
// the ticket's obfuscated age mixed into h. No X25519 at all.
//
//     InitializeSymmetric("Tether_Resume2_AESCCM_SHA256")
//     MixHash(prologue)  with prologue = "tether/2" || version || device_id (the device's own)
//     -> RESUME_INIT:  MixKeyAndHash(resumption_secret); MixHash(ticket);
//                      MixHash(obfuscated_age);
//                      nonce_i: MixHash(nonce_i); MixKey(nonce_i);
//                      EncryptAndHash(early_data)
//     <- RESUME_RESP:  nonce_r: MixHash(nonce_r); MixKey(nonce_r);
//                      EncryptAndHash(flags (1))
//     Split()          first CipherState device -> gateway, second gateway -> device
//
//     RESUME_INIT body = version || ticket (33) || obfuscated_age (4) || nonce_i (8) || EncryptAndHash(early_data)
//     RESUME_RESP body = nonce_r (12) || EncryptAndHash(flags)
//
// The ticket is opaque: the device_id of the prologue comes from the pairing, not from it.
import { hmacSha256 } from "../crypto/hash"
import { AESCCM, CipherFunction } from "../noise/cipher"
import { SymmetricState } from "../noise/symmetric-state"
import { Session } from "./session"
import {
    AGE_LABEL,
    DEVICE_ID_LEN,
    EARLY_ACCEPTED,
    FLAGS_LEN,
    INNER_TYPE_LEN,
    InnerType,
    MAX_EARLY_DATA,
    NONCE_I_LEN,
    NONCE_R_LEN,
    OBFUSCATED_AGE_LEN,
    prologue,
    RESUME_INIT_AGE_OFFSET,
    RESUME_INIT_CT_OFFSET,
    RESUME_INIT_NONCE_OFFSET,
    RESUME_INIT_TICKET_OFFSET,
    RESUME_PROTOCOL_NAME,
    RESUME_RESP_BODY_LEN,
    RESUMPTION_SECRET_LEN,
    TICKET_LEN,
    VERSION,
} from "./wire"

/** 2^32, as a double: the modulus of the ticket age arithmetic. */
const TWO_32 = 4294967296

/** A ticket and its resumption secret (the secret: never log). */
export interface ResumeTicket {
    /** 33 bytes, opaque to the device */
    ticket: Buffer
    /** 32 bytes */
    secret: Buffer
}

/** Inputs of one resumption attempt. */
export interface ResumeAttempt {
    /** the device's own `device_id` (8 bytes), from its pairing: the prologue's id */
    deviceId: Buffer
    /** the stored ticket and its secret */
    t: ResumeTicket
    /** 4 bytes: {@link obfuscateAge} of the ticket's age, or 4 random bytes when the age is unknown */
    obfuscatedAge: Buffer
    /** 8 fresh random bytes */
    nonceI: Buffer
    /** the content of a DATA record to send as 0-RTT data, or undefined for none (MUST be none when the age is unknown) */
    early?: Buffer
    /** default AESCCM */
    cipher?: CipherFunction
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

/** The uint32 of 4 big-endian bytes, as a non-negative double (no 32-bit op: no sign trouble). */
function u32(b: Buffer, off: number): number {
    return (b[off] * 256 + b[off + 1]) * 65536 + b[off + 2] * 256 + b[off + 3]
}

/**
 * `age_add = uint32 of HMAC-SHA-256(resumption_secret, "tether/2 age")[0..4]` (PROTOCOL.md 6.2):
 * per ticket, known only to the device and the gateway.
 * @returns 0 .. 2^32 - 1
 */
export function ageAdd(secret: Buffer): number {
    if (secret.length !== RESUMPTION_SECRET_LEN) throw new TypeError("resume: bad secret length")
    return u32(hmacSha256(secret, Buffer.from(AGE_LABEL)), 0)
}

/**
 * `obfuscated_age = uint32_be((ticket_age + age_add) mod 2^32)` (PROTOCOL.md 6.2), on doubles:
 * both terms are below 2^53, so the sum is exact. The remainder is taken by subtraction:
 * the VM's `%` does not work with 2^32 as divisor (`(x + 380) % 4294967296` gives 0).
 * @param ageMs the ticket's age in milliseconds (since the TICKET record was received), >= 0
 * @param add {@link ageAdd} of the ticket's secret
 * @returns 4 bytes
 */
export function obfuscateAge(ageMs: number, add: number): Buffer {
    const age = ageMs > 0 ? Math.floor(ageMs) : 0
    const sum = age + add
    const x = sum - Math.floor(sum / TWO_32) * TWO_32
    const hi = Math.floor(x / 65536)
    const lo = x - hi * 65536
    const out = Buffer.alloc(OBFUSCATED_AGE_LEN)
    out[0] = hi >> 8
    out[1] = hi & 0xff
    out[2] = lo >> 8
    out[3] = lo & 0xff
    return out
}

/**
 * Builds RESUME_INIT: version || ticket || obfuscated_age || nonce_i || EncryptAndHash(early_data).
 * @throws on ill-sized inputs or early data that does not fit the frame
 */
export function writeResumeInit(a: ResumeAttempt): ResumePending {
    const t = a.t
    if (t.ticket.length !== TICKET_LEN || t.secret.length !== RESUMPTION_SECRET_LEN)
        throw new TypeError("resume: bad ticket or secret length")
    if (a.deviceId.length !== DEVICE_ID_LEN || a.nonceI.length !== NONCE_I_LEN || a.obfuscatedAge.length !== OBFUSCATED_AGE_LEN)
        throw new TypeError("resume: bad device_id, nonce_i or obfuscated_age length")
    let earlyPt = Buffer.alloc(0)
    if (a.early !== undefined) {
        if (INNER_TYPE_LEN + a.early.length > MAX_EARLY_DATA) throw new RangeError("resume: early data too long")
        // "one record plaintext (inner_type || content) with inner_type = DATA"
        earlyPt = Buffer.alloc(INNER_TYPE_LEN + a.early.length)
        earlyPt[0] = InnerType.DATA
        earlyPt.blitAt(INNER_TYPE_LEN, a.early, 0, a.early.length)
    }
    const sym = new SymmetricState(a.cipher || AESCCM, RESUME_PROTOCOL_NAME)
    sym.mixHash(prologue(a.deviceId))
    // psk: the resumption secret
    sym.mixKeyAndHash(t.secret)
    sym.mixHash(t.ticket)
    sym.mixHash(a.obfuscatedAge)
    // nonce_i, as a psk-mode e token
    sym.mixHash(a.nonceI)
    sym.mixKey(a.nonceI)
    const ct = sym.encryptAndHash(earlyPt)
    const body = Buffer.alloc(RESUME_INIT_CT_OFFSET + ct.length)
    body[0] = VERSION
    body.blitAt(RESUME_INIT_TICKET_OFFSET, t.ticket, 0, TICKET_LEN)
    body.blitAt(RESUME_INIT_AGE_OFFSET, a.obfuscatedAge, 0, OBFUSCATED_AGE_LEN)
    body.blitAt(RESUME_INIT_NONCE_OFFSET, a.nonceI, 0, NONCE_I_LEN)
    body.blitAt(RESUME_INIT_CT_OFFSET, ct, 0, ct.length)
    return { body, sym, early: a.early !== undefined }
}

/**
 * Reads RESUME_RESP: nonce_r || EncryptAndHash(flags), then splits.
 * @returns the session and flags, or undefined when the body has the wrong length, fails to
 *     decrypt or sets a reserved flag bit (`pending` is unchanged: the work is on a clone)
 */
export function readResumeResp(pending: ResumePending, body: Buffer): Resumed | undefined {
    if (body.length !== RESUME_RESP_BODY_LEN) return undefined
    const sym = pending.sym.clone()
    const nonceR = body.slice(0, NONCE_R_LEN)
    // nonce_r, as a psk-mode e token
    sym.mixHash(nonceR)
    sym.mixKey(nonceR)
    const flags = sym.decryptAndHash(body.slice(NONCE_R_LEN))
    if (flags === undefined || flags.length !== FLAGS_LEN) return undefined
    // "The other bits are 0 in version 2, and a device MUST treat a RESUME_RESP with any of
    // them set as a failed handshake"
    if ((flags[0] & ~EARLY_ACCEPTED) !== 0) return undefined
    const cs = sym.split()
    return { session: new Session(cs[0], cs[1]), flags: flags[0] }
}
