// The resumption (PROTOCOL.md 6.2): a symmetric-only handshake on the Noise SymmetricState,
// keyed by the resumption secret, random nonces processed like psk-mode `e` tokens. No X25519.
//
//     InitializeSymmetric("Tether_Resume2_AESCCM_SHA256")
//     MixHash(prologue)  with prologue = "tether/2" || version || device_id
//     -> RESUME_INIT:  MixKeyAndHash(resumption_secret); MixHash(ticket); MixHash(obfuscated_age);
//                      nonce_i: MixHash(nonce_i); MixKey(nonce_i); EncryptAndHash(early_data)
//     <- RESUME_RESP:  nonce_r: MixHash(nonce_r); MixKey(nonce_r); EncryptAndHash(flags (1))
//     Split()          first CipherState device -> gateway, second gateway -> device
//
// This module is the only one that builds or takes apart these bodies:
//
//     RESUME_INIT body = version (1) || ticket (33) || obfuscated_age (4) || nonce_i (8) || EncryptAndHash(early_data)
//     RESUME_RESP body = nonce_r (12) || EncryptAndHash(flags (1))
//
// The initiator's function names are the device's (src/tether/resume.ts): writeResumeInit,
// readResumeResp. The responder reads the body first (readResumeInit: the ticket is opened and
// checked against the registry before the resumption secret exists), then consumes it
// (consumeResumeInit) and writes RESUME_RESP (writeResumeResp).
import { AESCCM, type CipherFunction } from "../noise/cipher.js"
import { SymmetricState } from "../noise/symmetric-state.js"
import { ageAdd } from "../tickets.js"
import type { RandomSource } from "../crypto/random.js"
import {
    AGE_LEN,
    DEVICE_ID_LEN,
    EARLY_ACCEPTED,
    FLAGS_LEN,
    INNER_TYPE_LEN,
    InnerType,
    MAX_EARLY_DATA,
    prologue,
    NONCE_I_LEN,
    NONCE_R_LEN,
    RESUME_INIT_AGE_OFFSET,
    RESUME_INIT_MIN_BODY_LEN,
    RESUME_INIT_NONCE_OFFSET,
    RESUME_INIT_PAYLOAD_OFFSET,
    RESUME_INIT_TICKET_OFFSET,
    RESUME_PROTOCOL_NAME,
    RESUME_RESP_BODY_LEN,
    RESUMPTION_SECRET_LEN,
    TICKET_LEN,
    VERSION,
    VERSION_LEN,
} from "../wire.js"
import { Session } from "./session.js"

/** A ticket and its resumption secret (the secret: never log). */
export interface ResumeTicket {
    readonly ticket: Buffer
    readonly secret: Buffer
}

/** How many devices' prologue hashes are kept (a bound on memory, not a correctness limit). */
const PROLOGUE_CACHE_MAX = 4096

/**
 * h after InitializeSymmetric(RESUME_PROTOCOL_NAME) and MixHash(prologue) per device id (hex):
 * the prologue of a resumption is constant per device (PROTOCOL.md 3.2), so its SHA-256 is
 * computed once per device, not per resumption. Neither h nor the id is secret. Bounded: the
 * oldest entry goes first.
 */
const prologueHashes = new Map<string, Buffer>()

/** The SymmetricState after InitializeSymmetric and MixHash(prologue(deviceId)). */
function afterPrologue(deviceId: Buffer, cipher: CipherFunction): SymmetricState {
    const id = deviceId.toString("hex")
    const h = prologueHashes.get(id)
    if (h !== undefined) return SymmetricState.afterMixHash(cipher, RESUME_PROTOCOL_NAME, h)
    const sym = new SymmetricState(cipher, RESUME_PROTOCOL_NAME)
    sym.mixHash(prologue(deviceId))
    if (prologueHashes.size >= PROLOGUE_CACHE_MAX) prologueHashes.delete(prologueHashes.keys().next().value as string)
    prologueHashes.set(id, sym.h)
    return sym
}

/** The steps of RESUME_INIT up to (not including) the early data. */
function startResume(
    deviceId: Buffer,
    ticket: Buffer,
    secret: Buffer,
    age: Buffer,
    nonceI: Buffer,
    cipher: CipherFunction
): SymmetricState {
    if (
        deviceId.length !== DEVICE_ID_LEN ||
        ticket.length !== TICKET_LEN ||
        secret.length !== RESUMPTION_SECRET_LEN ||
        age.length !== AGE_LEN ||
        nonceI.length !== NONCE_I_LEN
    )
        throw new TypeError("resume: bad device_id, ticket, secret, age or nonce length")
    const sym = afterPrologue(deviceId, cipher) // MixHash(prologue), cached per device
    sym.mixKeyAndHash(secret) // psk: the resumption secret
    sym.mixHash(ticket)
    sym.mixHash(age) // obfuscated_age
    sym.mixHash(nonceI) // nonce_i, as a psk-mode e token
    sym.mixKey(nonceI)
    return sym
}

/**
 * `obfuscated_age = uint32_be((ticket_age + age_add) mod 2^32)` (PROTOCOL.md 6.2); an unknown
 * age (undefined) is 4 random bytes.
 */
export function obfuscateAge(secret: Buffer, ageMs: number | undefined, rng: RandomSource): Buffer {
    if (ageMs === undefined) return rng(AGE_LEN)
    if (!Number.isSafeInteger(ageMs) || ageMs < 0) throw new RangeError("resume: the ticket age is a non-negative integer (ms)")
    const b = Buffer.alloc(AGE_LEN)
    b.writeUInt32BE((ageMs + ageAdd(secret)) % 2 ** 32)
    return b
}

/** The ticket's age in ms that `obfuscated_age` says, given the secret (the gateway's side of 6.2). */
export function ticketAge(secret: Buffer, obfuscatedAge: Buffer): number {
    return (obfuscatedAge.readUInt32BE(0) - ageAdd(secret) + 2 ** 32) % 2 ** 32
}

/** The fields of a RESUME_INIT body, each a view of it. */
export interface ResumeInit {
    readonly version: number
    readonly ticket: Buffer
    readonly obfuscatedAge: Buffer
    readonly nonceI: Buffer
    /** EncryptAndHash(early_data): a tag alone when there is no early data */
    readonly ciphertext: Buffer
}

/**
 * Why a RESUME_INIT body could not be read, in PROTOCOL.md 6.2 step 1's order: an empty body,
 * a version other than VERSION, fewer bytes than RESUME_INIT_MIN_BODY_LEN.
 */
export type ResumeInitError =
    | { readonly error: "empty" }
    | { readonly error: "version"; readonly version: number }
    | { readonly error: "short"; readonly length: number }

/**
 * Builds a RESUME_INIT body from its fields (writeResumeInit passes a real ciphertext; tests
 * pass garbage).
 * @throws TypeError if the ticket, the age or nonce_i has the wrong length
 */
export function encodeResumeInit(ticket: Buffer, age: Buffer, nonceI: Buffer, ciphertext: Buffer, version: number = VERSION): Buffer {
    if (ticket.length !== TICKET_LEN || age.length !== AGE_LEN || nonceI.length !== NONCE_I_LEN)
        throw new TypeError("resume: bad ticket, age or nonce length")
    const body = Buffer.allocUnsafe(RESUME_INIT_PAYLOAD_OFFSET + ciphertext.length) // every byte is written below
    body[0] = version
    ticket.copy(body, RESUME_INIT_TICKET_OFFSET)
    age.copy(body, RESUME_INIT_AGE_OFFSET)
    nonceI.copy(body, RESUME_INIT_NONCE_OFFSET)
    ciphertext.copy(body, RESUME_INIT_PAYLOAD_OFFSET)
    return body
}

/**
 * Reads a RESUME_INIT body's fields without any cryptography. Lengths are checked before any
 * field is read.
 */
export function readResumeInit(body: Buffer): ResumeInit | ResumeInitError {
    if (body.length < VERSION_LEN) return { error: "empty" }
    const version = body[0] as number
    if (version !== VERSION) return { error: "version", version }
    if (body.length < RESUME_INIT_MIN_BODY_LEN) return { error: "short", length: body.length }
    return {
        version,
        ticket: body.subarray(RESUME_INIT_TICKET_OFFSET, RESUME_INIT_AGE_OFFSET),
        obfuscatedAge: body.subarray(RESUME_INIT_AGE_OFFSET, RESUME_INIT_NONCE_OFFSET),
        nonceI: body.subarray(RESUME_INIT_NONCE_OFFSET, RESUME_INIT_PAYLOAD_OFFSET),
        ciphertext: body.subarray(RESUME_INIT_PAYLOAD_OFFSET),
    }
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
 * Builds RESUME_INIT: version || ticket || obfuscated_age || nonce_i || EncryptAndHash(early_data).
 * @param deviceId the device's own id (the prologue's)
 * @param age obfuscated_age (obfuscateAge)
 * @param early the content of a DATA record sent as 0-RTT data, or undefined for none (a
 *   device that does not know the ticket's age sends none, 6.2)
 * @throws on ill-sized inputs or early data that does not fit one frame
 */
export function writeResumeInit(
    t: ResumeTicket,
    deviceId: Buffer,
    age: Buffer,
    nonceI: Buffer,
    early?: Buffer,
    cipher: CipherFunction = AESCCM
): ResumePending {
    let earlyPt = Buffer.alloc(0)
    if (early !== undefined) {
        if (INNER_TYPE_LEN + early.length > MAX_EARLY_DATA) throw new RangeError("resume: early data too long")
        earlyPt = Buffer.concat([Buffer.from([InnerType.DATA]), early]) // "inner_type = DATA"
    }
    const sym = startResume(deviceId, t.ticket, t.secret, age, nonceI, cipher)
    const ct = sym.encryptAndHash(earlyPt)
    return { body: encodeResumeInit(t.ticket, age, nonceI, ct), sym, early: early !== undefined }
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
    const nonceR = body.subarray(0, NONCE_R_LEN)
    sym.mixHash(nonceR) // nonce_r, as a psk-mode e token
    sym.mixKey(nonceR)
    const flags = sym.decryptAndHash(body.subarray(NONCE_R_LEN))
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
 * The responder's RESUME_INIT steps from the ticket on (the caller opened `init.ticket` and
 * derived its resumption secret).
 * @returns undefined if the early data fails to decrypt
 */
export function consumeResumeInit(
    init: ResumeInit,
    deviceId: Buffer,
    secret: Buffer,
    cipher: CipherFunction = AESCCM
): ResumeRead | undefined {
    const sym = startResume(deviceId, init.ticket, secret, init.obfuscatedAge, init.nonceI, cipher)
    const early = sym.decryptAndHash(init.ciphertext)
    return early === undefined ? undefined : { sym, early }
}

/** Writes RESUME_RESP's body and splits (the responder sends with Split()'s second). */
export function writeResumeResp(read: ResumeRead, nonceR: Buffer, flags: number): Resumed & { body: Buffer } {
    if (nonceR.length !== NONCE_R_LEN) throw new TypeError(`resume: nonce_r must be ${NONCE_R_LEN} bytes`)
    const { sym } = read
    sym.mixHash(nonceR) // nonce_r
    sym.mixKey(nonceR)
    const ct = sym.encryptAndHash(Buffer.from([flags]))
    const handshakeHash = sym.getHandshakeHash()
    const { c1, c2 } = sym.split()
    return { body: Buffer.concat([nonceR, ct]), session: new Session(c2, c1), flags, handshakeHash }
}
