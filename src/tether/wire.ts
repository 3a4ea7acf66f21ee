// Every Tether version 1 constant of PROTOCOL.md in one place, each size derived from the
// ones it is made of (WireGuard's messages.h style). The framing layer's own sizes live in
// ../net/frame.ts and are reused here; nothing else in the device code spells a size out.
import { NONCE_LIMIT, TAG_LEN } from "../crypto/aead"
import { DH_LEN } from "../crypto/x25519"
import { HEADER_SIZE, LEN_SIZE, MAX_FRAME, TYPE_SIZE } from "../net/frame"
import { PSK_LEN } from "../noise/handshake-state"

/** `version` (PROTOCOL.md 2.2). */
export const VERSION = 0x01
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
/** Static and ephemeral public keys. */
export const PUBLIC_KEY_LEN = DH_LEN
/** An X25519 private key (the device's static key, TT_SK). */
export const PRIVATE_KEY_LEN = DH_LEN
export { PSK_LEN, TAG_LEN }
/** `resumption_secret`. */
export const RESUMPTION_SECRET_LEN = 32
/** `nonce_i`, `nonce_r`. */
export const RESUME_NONCE_LEN = 12
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

// --- tickets (PROTOCOL.md 6.1) ---

/** Ticket field offsets and sizes: key_id 1 || device_id 8 || generation 4 || expires_at 4 || mac 16. */
export const TICKET_KEY_ID_OFFSET = 0
export const TICKET_DEVICE_ID_OFFSET = TICKET_KEY_ID_OFFSET + 1
export const TICKET_GENERATION_OFFSET = TICKET_DEVICE_ID_OFFSET + DEVICE_ID_LEN
export const TICKET_EXPIRES_AT_OFFSET = TICKET_GENERATION_OFFSET + 4
/** The ticket body (everything before mac): 17. */
export const TICKET_BODY_LEN = TICKET_EXPIRES_AT_OFFSET + 4
export const TICKET_MAC_OFFSET = TICKET_BODY_LEN
export const TICKET_MAC_LEN = 16
/** `ticket`: 33. */
export const TICKET_LEN = TICKET_BODY_LEN + TICKET_MAC_LEN
/** TICKET record content (PROTOCOL.md 5): ticket (33) || resumption_secret (32). */
export const TICKET_CONTENT_TICKET_OFFSET = 0
export const TICKET_CONTENT_SECRET_OFFSET = TICKET_CONTENT_TICKET_OFFSET + TICKET_LEN
/** TICKET record content: 65. */
export const TICKET_CONTENT_LEN = TICKET_CONTENT_SECRET_OFFSET + RESUMPTION_SECRET_LEN
/** CLOSE record content: code. */
export const CLOSE_CONTENT_LEN = 1
/** REJECT body: code. */
export const REJECT_BODY_LEN = 1

// --- nonce limit and rekeying (PROTOCOL.md 5.1) ---

export { NONCE_LIMIT }
/** A sender at or past this `n` sends KEY_UPDATE and rekeys first: 2^32 - 2^16. */
export const KEY_UPDATE_AT = 4294967296 - 65536

// --- names and prologue (PROTOCOL.md 3.2) ---

/** Protocol name of the full handshake. */
export const KK_PROTOCOL_NAME = "Noise_KKpsk2_25519_AESCCM_SHA256"
/** Protocol name of the resumption. */
export const RESUME_PROTOCOL_NAME = "Tether_Resume1_AESCCM_SHA256"
/** The prologue's label, "tether/1". */
export const PROLOGUE_LABEL = "tether/1"
/** Prologue: label || version || device_id. */
export const PROLOGUE_LEN = PROLOGUE_LABEL.length + VERSION_LEN + DEVICE_ID_LEN

// --- handshake messages (PROTOCOL.md 4.1, 4.2, 6.2) ---

/** HS_INIT body: version || device_id || e || EncryptAndHash(empty) = 57. */
export const HS_INIT_BODY_LEN = VERSION_LEN + DEVICE_ID_LEN + PUBLIC_KEY_LEN + TAG_LEN
/** HS_RESP body: e || EncryptAndHash(empty) = 48. */
export const HS_RESP_BODY_LEN = PUBLIC_KEY_LEN + TAG_LEN
/** RESUME_INIT body without early data: version || ticket || nonce_i || tag = 62. */
export const RESUME_INIT_MIN_BODY_LEN = VERSION_LEN + TICKET_LEN + RESUME_NONCE_LEN + TAG_LEN
/** RESUME_RESP flags. */
export const FLAGS_LEN = 1
/** RESUME_RESP body: nonce_r || EncryptAndHash(flags) = 29. */
export const RESUME_RESP_BODY_LEN = RESUME_NONCE_LEN + FLAGS_LEN + TAG_LEN
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
 * The prologue of both handshakes: "tether/1" || version || device_id (PROTOCOL.md 3.2, 6.2).
 * @param deviceId 8 bytes
 */
export function prologue(deviceId: Buffer): Buffer {
    if (deviceId.length !== DEVICE_ID_LEN) throw new TypeError("wire: device_id must be 8 bytes")
    const out = Buffer.alloc(PROLOGUE_LEN)
    out.blitAt(0, Buffer.from(PROLOGUE_LABEL), 0, PROLOGUE_LABEL.length)
    out[PROLOGUE_LABEL.length] = VERSION
    out.blitAt(PROLOGUE_LABEL.length + VERSION_LEN, deviceId, 0, DEVICE_ID_LEN)
    return out
}

/** A TICKET record's content, decoded. The secret: never log. */
export interface TicketContent {
    /** 33 bytes, opaque to the device */
    ticket: Buffer
    /** 32 bytes */
    secret: Buffer
}

/**
 * Splits a TICKET record's content into its ticket and resumption secret (copies).
 * @returns undefined when the content is not exactly {@link TICKET_CONTENT_LEN} bytes
 */
export function decodeTicketContent(content: Buffer): TicketContent | undefined {
    if (content.length !== TICKET_CONTENT_LEN) return undefined
    return {
        ticket: content.slice(TICKET_CONTENT_TICKET_OFFSET, TICKET_CONTENT_SECRET_OFFSET),
        secret: content.slice(TICKET_CONTENT_SECRET_OFFSET, TICKET_CONTENT_LEN),
    }
}

/**
 * The code of a REJECT body (PROTOCOL.md 7).
 * @returns the code, or undefined when the body is not exactly {@link REJECT_BODY_LEN} bytes
 */
export function rejectCode(body: Buffer): number | undefined {
    return body.length === REJECT_BODY_LEN ? body[0] : undefined
}
