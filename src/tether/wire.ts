// Every Tether version 2 constant of PROTOCOL.md in one place, each size derived from the
// ones it is made of (WireGuard's messages.h style). The framing layer's own sizes live in
// ../net/frame.ts and are reused here; nothing else in the device code spells a size out.
import { NONCE_LIMIT, TAG_LEN } from "../crypto/aead"
import { DH_LEN } from "../crypto/x25519"
import { HEADER_SIZE, LEN_SIZE, MAX_FRAME, TYPE_SIZE } from "../net/frame"
import { PSK_LEN } from "../noise/handshake-state"

/** `version` (PROTOCOL.md 2.2). */
export const VERSION = 0x02
/** Size of the `version` field. */
export const VERSION_LEN = 1

/** Frame types (PROTOCOL.md 2.1). */
export enum FrameType {
    HS_INIT = 0x01,
    HS_RESP = 0x02,
    RESUME_INIT = 0x03,
    RESUME_RESP = 0x04,
    RECORD = 0x10,
    REJECT = 0x7f,
}

/** Record inner types (PROTOCOL.md 5), inside the ciphertext. */
export enum InnerType {
    DATA = 0x01,
    TICKET = 0x02,
    CLOSE = 0x03,
    KEY_UPDATE = 0x04,
}

/** REJECT and CLOSE codes, one code space (PROTOCOL.md 7). */
export enum Code {
    PROTOCOL_ERROR = 0x01,
    UNSUPPORTED_VERSION = 0x02,
    UNKNOWN_DEVICE = 0x03,
    HANDSHAKE_FAILED = 0x04,
    TICKET_REJECTED = 0x05,
    BUSY = 0x06,
    NORMAL = 0x10,
    REVOKED = 0x11,
    SHUTDOWN = 0x12,
    IDLE = 0x13,
    SUPERSEDED = 0x14,
}

// --- identifiers and sizes (PROTOCOL.md 2.3) ---

/** `device_id`. */
export const DEVICE_ID_LEN = 8
/** `pseudonym`: what HS_INIT names the device by (PROTOCOL.md 4.4). */
export const PSEUDONYM_LEN = 8
/** Static and ephemeral public keys. */
export const PUBLIC_KEY_LEN = DH_LEN
/** An X25519 private key (the device's static key, TT_SK). */
export const PRIVATE_KEY_LEN = DH_LEN
export { PSK_LEN, TAG_LEN }
/** `resumption_secret`. */
export const RESUMPTION_SECRET_LEN = 32
/** `nonce_i` (8 in version 2: the ticket's age took 4 of its bytes, PROTOCOL.md 6.2). */
export const NONCE_I_LEN = 8
/** `nonce_r`. */
export const NONCE_R_LEN = 12
/** `obfuscated_age`: uint32_be((ticket_age + age_add) mod 2^32) (PROTOCOL.md 6.2). */
export const OBFUSCATED_AGE_LEN = 4
/** `MAX_FRAME_LEN`: the largest `length` (type + body). */
export const MAX_FRAME_LEN = MAX_FRAME
/** Bytes in front of a frame's body: length and type. */
export const HEADER_LEN = HEADER_SIZE
export { LEN_SIZE, TYPE_SIZE }
/** The largest frame body. */
export const MAX_BODY_LEN = MAX_FRAME_LEN - TYPE_SIZE
/** `MAX_RECORD_PLAINTEXT` = 1007: inner type + content. */
export const MAX_RECORD_PLAINTEXT = MAX_BODY_LEN - TAG_LEN
/** Size of the inner type byte. */
export const INNER_TYPE_LEN = 1
/** Smallest RECORD body: an inner type and a tag. */
export const MIN_RECORD_BODY_LEN = INNER_TYPE_LEN + TAG_LEN
/** The largest record content: 1006. */
export const MAX_RECORD_CONTENT = MAX_RECORD_PLAINTEXT - INNER_TYPE_LEN

// --- tickets (PROTOCOL.md 6.1, 6.3) ---

/**
 * `ticket`: key_id (1) || sealed (16) || mac (16) = 33. Opaque to the device: its fields are
 * sealed, and the device never reads anything out of it.
 */
export const TICKET_KEY_ID_LEN = 1
export const TICKET_SEALED_LEN = 16
export const TICKET_MAC_LEN = 16
export const TICKET_LEN = TICKET_KEY_ID_LEN + TICKET_SEALED_LEN + TICKET_MAC_LEN
/** TICKET record content (PROTOCOL.md 6.3): ticket (33) || resumption_secret (32) || next_pseudonym (8). */
export const TICKET_CONTENT_TICKET_OFFSET = 0
export const TICKET_CONTENT_SECRET_OFFSET = TICKET_CONTENT_TICKET_OFFSET + TICKET_LEN
export const TICKET_CONTENT_PSEUDONYM_OFFSET = TICKET_CONTENT_SECRET_OFFSET + RESUMPTION_SECRET_LEN
/** TICKET record content: 73. */
export const TICKET_CONTENT_LEN = TICKET_CONTENT_PSEUDONYM_OFFSET + PSEUDONYM_LEN
/** CLOSE record content: code. */
export const CLOSE_CONTENT_LEN = 1
/** REJECT body: code. */
export const REJECT_BODY_LEN = 1

// --- the device's limits (PROTOCOL.md 6.9) ---

/** After this many consecutive resumed sessions (a slot's `resumed`) the next connection runs the full handshake. */
export const RESUME_CAP = 32
/** The first TICKET_REJECTED answers that fall back to HS_INIT on the same connection. */
export const FALLBACK_FREE = 2
/** After those, every FALLBACK_EVERY-th TICKET_REJECTED falls back. */
export const FALLBACK_EVERY = 8

/**
 * The fallback cap: whether the r-th TICKET_REJECTED since the last successful resumption
 * (r = 1, 2, ...) falls back to the full handshake on the same connection.
 */
export function fallBackOn(r: number): boolean {
    return r <= FALLBACK_FREE || (r & (FALLBACK_EVERY - 1)) === 0
}

// --- nonce limit and rekeying (PROTOCOL.md 5.1) ---

export { NONCE_LIMIT }
/** A sender at or past this `n` sends KEY_UPDATE and rekeys first: 2^32 - 2^16. */
export const KEY_UPDATE_AT = 4294967296 - 65536

// --- names and prologue (PROTOCOL.md 3.2) ---

/** Protocol name of the full handshake. */
export const KK_PROTOCOL_NAME = "Noise_KKpsk2_25519_AESCCM_SHA256"
/** Protocol name of the resumption. */
export const RESUME_PROTOCOL_NAME = "Tether_Resume2_AESCCM_SHA256"
/** The prologue's label, "tether/2". */
export const PROLOGUE_LABEL = "tether/2"
/** The 8 bytes a prologue names the device by: the pseudonym (full handshake) or the device_id (resumption). */
export const PROLOGUE_ID_LEN = 8
/** Prologue: label || version || pseudonym or device_id. */
export const PROLOGUE_LEN = PROLOGUE_LABEL.length + VERSION_LEN + PROLOGUE_ID_LEN

// --- labels (PROTOCOL.md 2.2: every one starts with "tether/2 ") ---

/** pseudonym0 = HMAC-SHA-256(psk, this)[0..8] (PROTOCOL.md 4.4). */
export const PSEUDONYM0_LABEL = "tether/2 pseudonym"
/** age_add = uint32 of HMAC-SHA-256(resumption_secret, this)[0..4] (PROTOCOL.md 6.2). */
export const AGE_LABEL = "tether/2 age"
/** check = SHA-256(this || the slot before check)[0..8] (PROTOCOL.md 6.6). */
export const SLOT_LABEL = "tether/2 slot"

// --- handshake messages (PROTOCOL.md 4.1, 4.2, 6.2) ---

/** HS_INIT body: version || pseudonym || e || EncryptAndHash(empty) = 57. */
export const HS_INIT_BODY_LEN = VERSION_LEN + PSEUDONYM_LEN + PUBLIC_KEY_LEN + TAG_LEN
/** HS_RESP body: e || EncryptAndHash(empty) = 48. */
export const HS_RESP_BODY_LEN = PUBLIC_KEY_LEN + TAG_LEN
/** RESUME_INIT field offsets: version || ticket || obfuscated_age || nonce_i || EncryptAndHash(early_data). */
export const RESUME_INIT_TICKET_OFFSET = VERSION_LEN
export const RESUME_INIT_AGE_OFFSET = RESUME_INIT_TICKET_OFFSET + TICKET_LEN
export const RESUME_INIT_NONCE_OFFSET = RESUME_INIT_AGE_OFFSET + OBFUSCATED_AGE_LEN
export const RESUME_INIT_CT_OFFSET = RESUME_INIT_NONCE_OFFSET + NONCE_I_LEN
/** RESUME_INIT body without early data: version || ticket || obfuscated_age || nonce_i || tag = 62. */
export const RESUME_INIT_MIN_BODY_LEN = RESUME_INIT_CT_OFFSET + TAG_LEN
/** RESUME_RESP flags. */
export const FLAGS_LEN = 1
/** RESUME_RESP body: nonce_r || EncryptAndHash(flags) = 29. */
export const RESUME_RESP_BODY_LEN = NONCE_R_LEN + FLAGS_LEN + TAG_LEN
/** flags bit 0: the gateway delivered the early data. */
export const EARLY_ACCEPTED = 0x01
/** Largest early data plaintext (inner type + content) that fits the frame: 961. */
export const MAX_EARLY_DATA = MAX_BODY_LEN - RESUME_INIT_MIN_BODY_LEN
/** Largest early DATA content: 960. */
export const MAX_EARLY_DATA_CONTENT = MAX_EARLY_DATA - INNER_TYPE_LEN
/** Frames on the wire, framing included: 60, 51, 65 (no early data), 32. */
export const HS_INIT_FRAME_LEN = HEADER_LEN + HS_INIT_BODY_LEN
export const HS_RESP_FRAME_LEN = HEADER_LEN + HS_RESP_BODY_LEN
export const RESUME_INIT_MIN_FRAME_LEN = HEADER_LEN + RESUME_INIT_MIN_BODY_LEN
export const RESUME_RESP_FRAME_LEN = HEADER_LEN + RESUME_RESP_BODY_LEN

/**
 * The prologue (PROTOCOL.md 3.2): "tether/2" || version || id, where id is the pseudonym sent
 * in HS_INIT (full handshake) or the device's own device_id (resumption).
 * @param id 8 bytes
 */
export function prologue(id: Buffer): Buffer {
    if (id.length !== PROLOGUE_ID_LEN) throw new TypeError("wire: a prologue names the device by 8 bytes")
    const out = Buffer.alloc(PROLOGUE_LEN)
    out.blitAt(0, Buffer.from(PROLOGUE_LABEL), 0, PROLOGUE_LABEL.length)
    out[PROLOGUE_LABEL.length] = VERSION
    out.blitAt(PROLOGUE_LABEL.length + VERSION_LEN, id, 0, PROLOGUE_ID_LEN)
    return out
}

/** A TICKET record's content, decoded. The secret: never log. */
export interface TicketContent {
    /** 33 bytes, opaque to the device */
    ticket: Buffer
    /** 32 bytes */
    secret: Buffer
    /** 8 bytes: the pseudonym of the device's next HS_INIT (PROTOCOL.md 4.4) */
    pseudonym: Buffer
}

/**
 * Splits a TICKET record's content into its ticket, resumption secret and next pseudonym (copies).
 * @returns undefined when the content is not exactly {@link TICKET_CONTENT_LEN} bytes
 */
export function decodeTicketContent(content: Buffer): TicketContent | undefined {
    if (content.length !== TICKET_CONTENT_LEN) return undefined
    return {
        ticket: content.slice(TICKET_CONTENT_TICKET_OFFSET, TICKET_CONTENT_SECRET_OFFSET),
        secret: content.slice(TICKET_CONTENT_SECRET_OFFSET, TICKET_CONTENT_PSEUDONYM_OFFSET),
        pseudonym: content.slice(TICKET_CONTENT_PSEUDONYM_OFFSET, TICKET_CONTENT_LEN),
    }
}

/**
 * The code of a REJECT body (PROTOCOL.md 7).
 * @returns the code, or undefined when the body is not exactly {@link REJECT_BODY_LEN} bytes
 */
export function rejectCode(body: Buffer): number | undefined {
    return body.length === REJECT_BODY_LEN ? body[0] : undefined
}
