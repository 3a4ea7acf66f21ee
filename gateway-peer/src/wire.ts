// Every wire size, offset, type byte, code, name and limit of Tether version 1 (PROTOCOL.md),
// in one module, each derived from the ones it is made of (as WireGuard's messages.h does).
// Nothing else in the gateway spells out a size. The device's src/tether/wire.ts uses the same
// names. Decoders in this file check lengths before they read anything.
import { TAG_LEN } from "./crypto/aead.js"
import { HASH_LEN } from "./crypto/hash.js"
import { DH_LEN } from "./crypto/x25519.js"

export { DH_LEN, HASH_LEN, TAG_LEN }

// ---- 2.1 Frames ---------------------------------------------------------------------------

/** Size of the big-endian uint16 length field. */
export const LEN_SIZE = 2
/** Size of the type byte. */
export const TYPE_SIZE = 1
/** Bytes in front of a frame's body: length and type. */
export const HEADER_LEN = LEN_SIZE + TYPE_SIZE
/** "A receiver MUST close the connection when length is 0 or larger than MAX_FRAME_LEN". */
export const MAX_FRAME_LEN = 1024
/** Largest frame body. */
export const MAX_BODY_LEN = MAX_FRAME_LEN - TYPE_SIZE

/** Frame types (PROTOCOL.md 2.1). */
export const FrameType = {
    HS_INIT: 0x01,
    HS_RESP: 0x02,
    RESUME_INIT: 0x03,
    RESUME_RESP: 0x04,
    RECORD: 0x10,
    REJECT: 0x7f,
} as const
/** A frame type byte. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

// ---- 2.2, 2.3 Version, identifiers, sizes -------------------------------------------------

/** The only version this document defines. */
export const VERSION = 0x01
export const VERSION_LEN = 1
/** `device_id`: random, assigned at pairing, not secret. */
export const DEVICE_ID_LEN = 8
/** Pairing pre-shared key. */
export const PSK_LEN = 32
/** Resume nonces `nonce_i`, `nonce_r`. */
export const RESUME_NONCE_LEN = 12
/** `resumption_secret`: an HMAC-SHA-256 output. */
export const RESUMPTION_SECRET_LEN = HASH_LEN

// ---- 3.2 Protocol names and prologue ------------------------------------------------------

/** Protocol name of the full handshake. */
export const KK_PROTOCOL_NAME = "Noise_KKpsk2_25519_AESCCM_SHA256"
/** The Noise pattern of the full handshake. */
export const KK_PATTERN = "KKpsk2"
/** Protocol name of the resumption (not a Noise pattern name). */
export const RESUME_PROTOCOL_NAME = "Tether_Resume1_AESCCM_SHA256"
/** The 8 ASCII bytes that open the prologue. */
export const PROLOGUE_LABEL = Buffer.from("tether/1", "ascii")
export const PROLOGUE_LEN = PROLOGUE_LABEL.length + VERSION_LEN + DEVICE_ID_LEN

/** `prologue = "tether/1" || version || device_id` (PROTOCOL.md 3.2 and 6.2). */
export function prologue(deviceId: Buffer): Buffer {
    if (deviceId.length !== DEVICE_ID_LEN) throw new TypeError(`prologue: device_id must be ${DEVICE_ID_LEN} bytes`)
    return Buffer.concat([PROLOGUE_LABEL, Buffer.from([VERSION]), deviceId])
}

// ---- 4 Full handshake ---------------------------------------------------------------------

/** HS_INIT body: version || device_id || e || EncryptAndHash("") */
export const HS_INIT_DEVICE_ID_OFFSET = VERSION_LEN
export const HS_INIT_MESSAGE_OFFSET = HS_INIT_DEVICE_ID_OFFSET + DEVICE_ID_LEN
export const HS_INIT_MESSAGE_LEN = DH_LEN + TAG_LEN
export const HS_INIT_BODY_LEN = HS_INIT_MESSAGE_OFFSET + HS_INIT_MESSAGE_LEN
/** 60 bytes on the wire. */
export const HS_INIT_FRAME_LEN = HEADER_LEN + HS_INIT_BODY_LEN
/** HS_RESP body: e || EncryptAndHash("") */
export const HS_RESP_BODY_LEN = DH_LEN + TAG_LEN
/** 51 bytes on the wire. */
export const HS_RESP_FRAME_LEN = HEADER_LEN + HS_RESP_BODY_LEN

// ---- 5 Transport records ------------------------------------------------------------------

/** Inner record types (PROTOCOL.md 5), inside the ciphertext. */
export const InnerType = {
    DATA: 0x01,
    TICKET: 0x02,
    CLOSE: 0x03,
    KEY_UPDATE: 0x04,
} as const
/** An inner type byte. */
export type InnerType = (typeof InnerType)[keyof typeof InnerType]
export const INNER_TYPE_LEN = 1
/** Largest record plaintext (inner type + content): 1007. */
export const MAX_RECORD_PLAINTEXT = MAX_BODY_LEN - TAG_LEN
/** Largest record content: 1006. */
export const MAX_RECORD_CONTENT = MAX_RECORD_PLAINTEXT - INNER_TYPE_LEN
/** Smallest RECORD body: an inner type and a tag. */
export const MIN_RECORD_BODY_LEN = INNER_TYPE_LEN + TAG_LEN
/** CLOSE content: one code. */
export const CLOSE_CONTENT_LEN = 1

/** "a CipherState MUST refuse to encrypt or decrypt with n >= NONCE_LIMIT" (5.1). */
export const NONCE_LIMIT = 2 ** 32 - 1
/** A sender whose n has reached this sends KEY_UPDATE and rekeys first (5.1). */
export const KEY_UPDATE_AT = 2 ** 32 - 2 ** 16

// ---- 6 Resumption -------------------------------------------------------------------------

export const KEY_ID_LEN = 1
export const GENERATION_LEN = 4
export const EXPIRES_AT_LEN = 4
export const TICKET_MAC_LEN = 16
/** ticket = key_id || device_id || generation || expires_at || mac */
export const TICKET_KEY_ID_OFFSET = 0
export const TICKET_DEVICE_ID_OFFSET = TICKET_KEY_ID_OFFSET + KEY_ID_LEN
export const TICKET_GENERATION_OFFSET = TICKET_DEVICE_ID_OFFSET + DEVICE_ID_LEN
export const TICKET_EXPIRES_AT_OFFSET = TICKET_GENERATION_OFFSET + GENERATION_LEN
/** The MACed part of a ticket (17 bytes). */
export const TICKET_BODY_LEN = TICKET_EXPIRES_AT_OFFSET + EXPIRES_AT_LEN
export const TICKET_MAC_OFFSET = TICKET_BODY_LEN
/** 33 bytes. */
export const TICKET_LEN = TICKET_BODY_LEN + TICKET_MAC_LEN
/** Largest generation and expires_at (uint32). */
export const UINT32_MAX = 2 ** 32 - 1
/** Ticket key length (a Noise chaining key for HKDF). */
export const TICKET_KEY_LEN = HASH_LEN
export const TICKET_MAC_LABEL = Buffer.from("tether/1 ticket", "ascii")
export const RESUMPTION_LABEL = Buffer.from("tether/1 resumption", "ascii")
/** TICKET record content: ticket || resumption_secret (65 bytes). */
export const TICKET_CONTENT_LEN = TICKET_LEN + RESUMPTION_SECRET_LEN
/** A RECORD frame carrying a TICKET: 85 bytes. */
export const TICKET_RECORD_FRAME_LEN = HEADER_LEN + INNER_TYPE_LEN + TICKET_CONTENT_LEN + TAG_LEN

/** RESUME_INIT body: version || ticket || nonce_i || EncryptAndHash(early_data) */
export const RESUME_INIT_TICKET_OFFSET = VERSION_LEN
export const RESUME_INIT_NONCE_OFFSET = RESUME_INIT_TICKET_OFFSET + TICKET_LEN
export const RESUME_INIT_PAYLOAD_OFFSET = RESUME_INIT_NONCE_OFFSET + RESUME_NONCE_LEN
/** Without early data: 62 bytes of body. */
export const RESUME_INIT_MIN_BODY_LEN = RESUME_INIT_PAYLOAD_OFFSET + TAG_LEN
/** Without early data: 65 bytes on the wire. */
export const RESUME_INIT_MIN_FRAME_LEN = HEADER_LEN + RESUME_INIT_MIN_BODY_LEN
/** Largest early data plaintext (inner type + content) that fits the frame: 961. */
export const MAX_EARLY_DATA = MAX_BODY_LEN - RESUME_INIT_MIN_BODY_LEN
/** Largest early DATA content: 960. */
export const MAX_EARLY_DATA_CONTENT = MAX_EARLY_DATA - INNER_TYPE_LEN
/** RESUME_RESP body: nonce_r || EncryptAndHash(flags) */
export const FLAGS_LEN = 1
export const RESUME_RESP_PAYLOAD_OFFSET = RESUME_NONCE_LEN
export const RESUME_RESP_BODY_LEN = RESUME_NONCE_LEN + FLAGS_LEN + TAG_LEN
/** 32 bytes on the wire. */
export const RESUME_RESP_FRAME_LEN = HEADER_LEN + RESUME_RESP_BODY_LEN
/** flags bit 0: the gateway delivered the early data. */
export const EARLY_ACCEPTED = 0x01

// ---- 6.5 Gateway policy defaults ----------------------------------------------------------

export const DAY = 24 * 60 * 60
/** Ticket lifetime, seconds. */
export const TICKET_LIFETIME = 7 * DAY
/** Lifetime of the out-of-band (pairing) ticket, seconds. */
export const OOB_TICKET_LIFETIME = 365 * DAY
/** Most resumptions between two full handshakes. */
export const CHAIN_LIMIT = 64

// ---- 7 Reject and close codes -------------------------------------------------------------

/** REJECT and CLOSE codes: one code space. */
export const Code = {
    PROTOCOL_ERROR: 0x01,
    UNSUPPORTED_VERSION: 0x02,
    UNKNOWN_DEVICE: 0x03,
    HANDSHAKE_FAILED: 0x04,
    TICKET_REJECTED: 0x05,
    BUSY: 0x06,
    NORMAL: 0x10,
    REVOKED: 0x11,
    SHUTDOWN: 0x12,
    IDLE: 0x13,
} as const
/** A reject or close code. */
export type Code = (typeof Code)[keyof typeof Code]
export const REJECT_BODY_LEN = 1
export const REJECT_FRAME_LEN = HEADER_LEN + REJECT_BODY_LEN

/** The name of a code, for logs. */
export function codeName(code: number): string {
    for (const [name, value] of Object.entries(Code)) if (value === code) return name
    return `0x${code.toString(16).padStart(2, "0")}`
}

// ---- Encoding and decoding frames ---------------------------------------------------------

/** A decoded frame. `body` is a copy, owned by the receiver. */
export interface Frame {
    readonly type: number
    readonly body: Buffer
}

/**
 * Encodes `uint16_be(1 + body.length) || type || body`.
 * @throws RangeError on a type outside 0..255 or a body above MAX_BODY_LEN (caller errors)
 */
export function encodeFrame(type: number, body: Buffer): Buffer {
    if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new RangeError(`encodeFrame: bad type ${type}`)
    if (body.length > MAX_BODY_LEN) throw new RangeError(`encodeFrame: body of ${body.length} bytes > ${MAX_BODY_LEN}`)
    const out = Buffer.alloc(HEADER_LEN + body.length)
    out.writeUInt16BE(TYPE_SIZE + body.length, 0)
    out[LEN_SIZE] = type
    body.copy(out, HEADER_LEN)
    return out
}

/** Thrown by FrameDecoder on a length of 0 or above MAX_FRAME_LEN: close the connection. */
export class FrameError extends Error {
    constructor(readonly length: number) {
        super(`frame: bad length ${length}`)
        this.name = "FrameError"
    }
}

/**
 * A streaming frame decoder: TCP may split or merge frames arbitrarily. It buffers at most one
 * frame (HEADER_LEN - 1 + MAX_FRAME_LEN bytes). After it has thrown it stays failed.
 */
export class FrameDecoder {
    #buf: Buffer = Buffer.alloc(0)
    #failed = false

    /** Bytes received but not yet returned as a frame. */
    get buffered(): number {
        return this.#buf.length
    }

    /**
     * Adds bytes and returns every frame now complete, in order.
     * @throws FrameError as soon as a length field is 0 or above MAX_FRAME_LEN
     */
    push(chunk: Buffer): Frame[] {
        if (this.#failed) throw new FrameError(-1)
        this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
        const frames: Frame[] = []
        for (;;) {
            if (this.#buf.length < LEN_SIZE) break
            const length = this.#buf.readUInt16BE(0)
            if (length === 0 || length > MAX_FRAME_LEN) {
                this.#failed = true
                this.#buf = Buffer.alloc(0)
                throw new FrameError(length)
            }
            if (this.#buf.length < LEN_SIZE + length) break
            const type = this.#buf[LEN_SIZE] as number
            const body = Buffer.from(this.#buf.subarray(HEADER_LEN, LEN_SIZE + length))
            frames.push({ type, body })
            this.#buf = this.#buf.subarray(LEN_SIZE + length)
        }
        if (this.#buf.length > 0) this.#buf = Buffer.from(this.#buf) // do not pin a large chunk
        return frames
    }
}
