// Every wire size, offset, type byte, code, name and limit of Tether version 2 (PROTOCOL.md),
// in one module, each derived from the ones it is made of (as WireGuard's messages.h does).
// Nothing else in the gateway spells out a size. The device's src/tether/wire.ts uses the same
// names. Decoders in this file check lengths before they read anything.
import { NONCE_LIMIT, TAG_LEN } from "./crypto/aead.js"
import { HASH_LEN } from "./crypto/hash.js"
import { DH_LEN } from "./crypto/x25519.js"

export { DH_LEN, HASH_LEN, NONCE_LIMIT, TAG_LEN }

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
export const VERSION = 0x02
export const VERSION_LEN = 1
/** `device_id`: random, assigned at pairing; never sent in clear (4.4, 6.1). */
export const DEVICE_ID_LEN = 8
/** `pseudonym`: what HS_INIT names the device by (4.4). */
export const PSEUDONYM_LEN = 8
/** Pairing pre-shared key. */
export const PSK_LEN = 32
/** `nonce_i` of RESUME_INIT (6.2). */
export const NONCE_I_LEN = 8
/** `nonce_r` of RESUME_RESP (6.2). */
export const NONCE_R_LEN = 12
/** `obfuscated_age` of RESUME_INIT (6.2). */
export const AGE_LEN = 4
/** `resumption_secret`: an HMAC-SHA-256 output. */
export const RESUMPTION_SECRET_LEN = HASH_LEN

// ---- 3.2 Protocol names and prologue ------------------------------------------------------

/** Protocol name of the full handshake. */
export const KK_PROTOCOL_NAME = "Noise_KKpsk2_25519_AESCCM_SHA256"
/** The Noise pattern of the full handshake. */
export const KK_PATTERN = "KKpsk2"
/** Protocol name of the resumption (not a Noise pattern name). */
export const RESUME_PROTOCOL_NAME = "Tether_Resume2_AESCCM_SHA256"
/** The 8 ASCII bytes that open the prologue. */
export const PROLOGUE_LABEL = Buffer.from("tether/2", "ascii")
export const PROLOGUE_LEN = PROLOGUE_LABEL.length + VERSION_LEN + DEVICE_ID_LEN

/**
 * `prologue = "tether/2" || version || X` (PROTOCOL.md 3.2): X is the pseudonym for the full
 * handshake and the device_id for the resumption, both 8 bytes.
 */
export function prologue(name: Buffer): Buffer {
    if (name.length !== DEVICE_ID_LEN) throw new TypeError(`prologue: the pseudonym or device_id must be ${DEVICE_ID_LEN} bytes`)
    return Buffer.concat([PROLOGUE_LABEL, Buffer.from([VERSION]), name])
}

// ---- 4 Full handshake ---------------------------------------------------------------------

/** HS_INIT body: version || pseudonym || e || EncryptAndHash("") */
export const HS_INIT_PSEUDONYM_OFFSET = VERSION_LEN
export const HS_INIT_MESSAGE_OFFSET = HS_INIT_PSEUDONYM_OFFSET + PSEUDONYM_LEN
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

// NONCE_LIMIT (2^32 - 1): "a CipherState MUST refuse to encrypt or decrypt with n >=
// NONCE_LIMIT" (5.1); defined in crypto/aead.ts, below the CipherState, and re-exported above.
/** A sender whose n has reached this sends KEY_UPDATE and rekeys first (5.1). */
export const KEY_UPDATE_AT = 2 ** 32 - 2 ** 16

// ---- 6 Resumption -------------------------------------------------------------------------

export const KEY_ID_LEN = 1
export const GENERATION_LEN = 4
export const ISSUED_AT_LEN = 4
export const TICKET_MAC_LEN = 16
/** fields = device_id || generation || issued_at: one AES block, sealed (6.1) */
export const FIELDS_DEVICE_ID_OFFSET = 0
export const FIELDS_GENERATION_OFFSET = FIELDS_DEVICE_ID_OFFSET + DEVICE_ID_LEN
export const FIELDS_ISSUED_AT_OFFSET = FIELDS_GENERATION_OFFSET + GENERATION_LEN
export const TICKET_FIELDS_LEN = FIELDS_ISSUED_AT_OFFSET + ISSUED_AT_LEN
/** ticket = key_id || sealed || mac */
export const TICKET_KEY_ID_OFFSET = 0
export const TICKET_SEALED_OFFSET = TICKET_KEY_ID_OFFSET + KEY_ID_LEN
/** The MACed part of a ticket, key_id and sealed (17 bytes; chain_origin is appended to the MAC input). */
export const TICKET_BODY_LEN = TICKET_SEALED_OFFSET + TICKET_FIELDS_LEN
export const TICKET_MAC_OFFSET = TICKET_BODY_LEN
/** 33 bytes. */
export const TICKET_LEN = TICKET_BODY_LEN + TICKET_MAC_LEN
/** Largest generation and expires_at (uint32). */
export const UINT32_MAX = 2 ** 32 - 1
/** Ticket key length (a Noise chaining key for HKDF). */
export const TICKET_KEY_LEN = HASH_LEN
export const TICKET_MAC_LABEL = Buffer.from("tether/2 ticket", "ascii")
export const RESUMPTION_LABEL = Buffer.from("tether/2 resumption", "ascii")
/** `age_add = HMAC-SHA-256(resumption_secret, "tether/2 age")[0..4]` (6.2). */
export const AGE_LABEL = Buffer.from("tether/2 age", "ascii")
/** `pseudonym0 = HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8]` (4.4). */
export const PSEUDONYM0_LABEL = Buffer.from("tether/2 pseudonym", "ascii")
/** TICKET record content: ticket || resumption_secret || next_pseudonym (73 bytes). */
export const TICKET_CONTENT_LEN = TICKET_LEN + RESUMPTION_SECRET_LEN + PSEUDONYM_LEN
/** A RECORD frame carrying a TICKET: 93 bytes. */
export const TICKET_RECORD_FRAME_LEN = HEADER_LEN + INNER_TYPE_LEN + TICKET_CONTENT_LEN + TAG_LEN

/** RESUME_INIT body: version || ticket || obfuscated_age || nonce_i || EncryptAndHash(early_data) */
export const RESUME_INIT_TICKET_OFFSET = VERSION_LEN
export const RESUME_INIT_AGE_OFFSET = RESUME_INIT_TICKET_OFFSET + TICKET_LEN
export const RESUME_INIT_NONCE_OFFSET = RESUME_INIT_AGE_OFFSET + AGE_LEN
export const RESUME_INIT_PAYLOAD_OFFSET = RESUME_INIT_NONCE_OFFSET + NONCE_I_LEN
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
export const RESUME_RESP_PAYLOAD_OFFSET = NONCE_R_LEN
export const RESUME_RESP_BODY_LEN = NONCE_R_LEN + FLAGS_LEN + TAG_LEN
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
/** Tickets per chain (6.4): at most CHAIN_LIMIT - 1 resumptions between two full handshakes. */
export const CHAIN_LIMIT = 64
/** The freshness window of early data, milliseconds (6.2). */
export const EARLY_DATA_WINDOW_MS = 2000

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
    SUPERSEDED: 0x14,
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

/**
 * A decoded frame. `body` belongs to the receiver: it is either a view of a chunk passed to
 * FrameDecoder.push (which the decoder never reads or writes again) or a buffer of the
 * decoder's own for a frame that arrived in pieces.
 */
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
    const out = Buffer.allocUnsafe(HEADER_LEN + body.length) // every byte is written below
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
 * A streaming frame decoder: TCP may split or merge frames arbitrarily. Each byte is copied
 * at most once: a frame that lies whole inside a chunk is returned as a view of it (no copy);
 * a frame split across chunks is gathered into a buffer of exactly its size, allocated when
 * its length field is complete. It holds at most one partial frame (LEN_SIZE + MAX_FRAME_LEN
 * bytes). A caller must not modify a chunk after pushing it (socket chunks never are). After
 * it has thrown it stays failed.
 */
export class FrameDecoder {
    /** the partial frame (length field included), sized once its length is known */
    #partial: Buffer | undefined
    /** bytes of #partial filled */
    #have = 0
    /** the first byte of a length field split after it (#have = 1, #partial undefined) */
    #lenHigh = 0
    #failed = false

    /** Bytes received but not yet returned as a frame. */
    get buffered(): number {
        return this.#have
    }

    #fail(length: number): never {
        this.#failed = true
        this.#partial = undefined
        this.#have = 0
        throw new FrameError(length)
    }

    /**
     * Adds bytes and returns every frame now complete, in order.
     * @throws FrameError as soon as a length field is 0 or above MAX_FRAME_LEN
     */
    push(chunk: Buffer): Frame[] {
        if (this.#failed) throw new FrameError(-1)
        const frames: Frame[] = []
        const end = chunk.length
        let off = 0
        // 1. finish the frame left from earlier chunks
        if (this.#have > 0) {
            if (this.#partial === undefined) {
                // one byte of the length field so far
                if (end === 0) return frames
                this.#start((this.#lenHigh << 8) | (chunk[0] as number))
                off = 1
            }
            const partial = this.#partial as Buffer
            const n = Math.min(partial.length - this.#have, end - off)
            chunk.copy(partial, this.#have, off, off + n)
            this.#have += n
            off += n
            if (this.#have < partial.length) return frames
            frames.push({ type: partial[LEN_SIZE] as number, body: partial.subarray(HEADER_LEN) })
            this.#partial = undefined
            this.#have = 0
        }
        // 2. whole frames inside this chunk: views
        while (end - off >= LEN_SIZE) {
            const length = chunk.readUInt16BE(off)
            if (length === 0 || length > MAX_FRAME_LEN) this.#fail(length)
            if (end - off < LEN_SIZE + length) break
            frames.push({ type: chunk[off + LEN_SIZE] as number, body: chunk.subarray(off + HEADER_LEN, off + LEN_SIZE + length) })
            off += LEN_SIZE + length
        }
        // 3. the start of the next frame: into a buffer of its own (never pins the chunk)
        if (off < end) {
            if (end - off === 1) {
                this.#lenHigh = chunk[off] as number
                this.#have = 1
            } else {
                this.#start(chunk.readUInt16BE(off))
                chunk.copy(this.#partial as Buffer, LEN_SIZE, off + LEN_SIZE, end)
                this.#have = end - off
            }
        }
        return frames
    }

    /** Allocates the partial frame for a length field; its LEN_SIZE bytes count as received. */
    #start(length: number): void {
        if (length === 0 || length > MAX_FRAME_LEN) this.#fail(length)
        const partial = Buffer.allocUnsafe(LEN_SIZE + length)
        partial.writeUInt16BE(length, 0)
        this.#partial = partial
        this.#have = LEN_SIZE
    }
}
