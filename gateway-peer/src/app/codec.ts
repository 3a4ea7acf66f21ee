// Application messages (PROTOCOL.md 12): the content of a DATA record is a sequence of
//
//     app = kind (1) || id (uint32_be) || length (uint16_be) || body (length bytes)
//
// Every size is derived here from wire.ts; the decoder checks each length before it reads and
// throws AppProtocolError on anything malformed, which the session answers with
// CLOSE(PROTOCOL_ERROR) (12: "a receiver closes the session on a truncated message, an unknown
// kind or a kind sent in the wrong direction").
import { MAX_RECORD_CONTENT, UINT32_MAX } from "../wire.js"

/** Application message kinds (PROTOCOL.md 12). */
export const AppKind = {
    PUBLISH: 0x01,
    REQUEST: 0x02,
    RESPONSE: 0x03,
    MESSAGE: 0x04,
    ACK: 0x05,
    STREAM: 0x06,
} as const
/** An application message kind byte. */
export type AppKind = (typeof AppKind)[keyof typeof AppKind]

/** RESPONSE status 0 payload: why the gateway could not make or finish the call (12.2). */
export const AppError = {
    ROUTE_REFUSED: 0x01,
    UPSTREAM_TIMEOUT: 0x02,
    UPSTREAM_TOO_LARGE: 0x03,
    UPSTREAM_FAILED: 0x04,
} as const
/** An application error code. */
export type AppError = (typeof AppError)[keyof typeof AppError]

export const APP_KIND_LEN = 1
export const APP_ID_LEN = 4
export const APP_LENGTH_LEN = 2
/** kind || id || length: 7 bytes. */
export const APP_HEADER_LEN = APP_KIND_LEN + APP_ID_LEN + APP_LENGTH_LEN
/** topic_len / route_len. */
export const NAME_LEN_LEN = 1
/** "a topic or route at most 255 bytes". */
export const MAX_NAME_LEN = 0xff
export const STREAM_ID_LEN = 4
/** STREAM body: stream_id, peer_stream_id, delivered. */
export const STREAM_BODY_LEN = 3 * STREAM_ID_LEN
export const REQUEST_ID_LEN = 4
export const STATUS_LEN = 2
/** RESPONSE body before its payload. */
export const RESPONSE_PREFIX_LEN = REQUEST_ID_LEN + STATUS_LEN
/** "A RESPONSE payload is at most MAX_RECORD_PLAINTEXT - 1 - 7 - 6 = 993 bytes". */
export const MAX_RESPONSE_PAYLOAD = MAX_RECORD_CONTENT - APP_HEADER_LEN - RESPONSE_PREFIX_LEN
/** Largest body of one message that must fit one DATA record. */
export const MAX_APP_BODY = MAX_RECORD_CONTENT - APP_HEADER_LEN
/** Status 0: the gateway could not make or finish the call; payload is one AppError. */
export const STATUS_GATEWAY_ERROR = 0
/** "status is the upstream's HTTP status (100 to 599)" (12.2). */
export const MIN_STATUS = 100
export const MAX_STATUS = 599

/** True for a status a RESPONSE may carry: 0 or an HTTP status of 100 to 599. */
export function isResponseStatus(status: number): boolean {
    return Number.isInteger(status) && (status === STATUS_GATEWAY_ERROR || (status >= MIN_STATUS && status <= MAX_STATUS))
}

/** Which side sent a message: decides which kinds are legal. */
export type Direction = "device" | "gateway"

/** A decoded application message. Sequenced kinds carry `id` >= 1. */
export type AppMessage =
    | { readonly kind: typeof AppKind.PUBLISH; readonly id: number; readonly topic: string; readonly payload: Buffer }
    | { readonly kind: typeof AppKind.REQUEST; readonly id: number; readonly route: string; readonly payload: Buffer }
    | {
          readonly kind: typeof AppKind.RESPONSE
          readonly id: number
          readonly requestId: number
          readonly status: number
          readonly payload: Buffer
      }
    | { readonly kind: typeof AppKind.MESSAGE; readonly id: number; readonly topic: string; readonly payload: Buffer }
    | { readonly kind: typeof AppKind.ACK; readonly id: number }
    | { readonly kind: typeof AppKind.STREAM; readonly streamId: number; readonly peerStreamId: number; readonly delivered: number }

/** A sequenced message (the ones a stream numbers and resends). */
export type SequencedMessage = Extract<AppMessage, { readonly payload: Buffer }>

/** A malformed application message: the session closes with PROTOCOL_ERROR. */
export class AppProtocolError extends Error {
    constructor(message: string) {
        super(`app: ${message}`)
        this.name = "AppProtocolError"
    }
}

const SENT_BY: Record<number, Direction | "both"> = {
    [AppKind.PUBLISH]: "device",
    [AppKind.REQUEST]: "device",
    [AppKind.RESPONSE]: "gateway",
    [AppKind.MESSAGE]: "gateway",
    [AppKind.ACK]: "both",
    [AppKind.STREAM]: "both",
}

/** True for the kinds numbered by a stream. */
export function isSequenced(m: AppMessage): m is SequencedMessage {
    return m.kind !== AppKind.ACK && m.kind !== AppKind.STREAM
}

// ignoreBOM: a leading U+FEFF is part of the name, not a byte-order mark to strip; without it
// "\ufeffweat" would decode as "weat" and name a different route or topic than the bytes do
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

function nameAndPayload(body: Buffer, what: string): { name: string; payload: Buffer } {
    if (body.length < NAME_LEN_LEN) throw new AppProtocolError(`${what} without a length`)
    const n = body[0] as number
    if (n === 0) throw new AppProtocolError(`empty ${what}`)
    if (body.length < NAME_LEN_LEN + n) throw new AppProtocolError(`truncated ${what}`)
    let name: string
    try {
        name = utf8.decode(body.subarray(NAME_LEN_LEN, NAME_LEN_LEN + n))
    } catch {
        throw new AppProtocolError(`${what} is not UTF-8`)
    }
    return { name, payload: Buffer.from(body.subarray(NAME_LEN_LEN + n)) }
}

function decodeOne(kind: number, id: number, body: Buffer): AppMessage {
    switch (kind) {
        case AppKind.PUBLISH:
        case AppKind.MESSAGE: {
            const { name, payload } = nameAndPayload(body, "topic")
            return { kind, id, topic: name, payload }
        }
        case AppKind.REQUEST: {
            const { name, payload } = nameAndPayload(body, "route")
            return { kind, id, route: name, payload }
        }
        case AppKind.RESPONSE: {
            if (body.length < RESPONSE_PREFIX_LEN) throw new AppProtocolError("truncated RESPONSE")
            const status = body.readUInt16BE(REQUEST_ID_LEN)
            if (!isResponseStatus(status)) throw new AppProtocolError(`RESPONSE status ${status}`)
            const payload = Buffer.from(body.subarray(RESPONSE_PREFIX_LEN))
            return { kind, id, requestId: body.readUInt32BE(0), status, payload }
        }
        case AppKind.ACK:
            if (body.length !== 0) throw new AppProtocolError("ACK with a body")
            return { kind, id }
        case AppKind.STREAM:
            if (body.length !== STREAM_BODY_LEN) throw new AppProtocolError("STREAM of the wrong length")
            if (id !== 0) throw new AppProtocolError("STREAM id must be 0")
            return {
                kind,
                streamId: body.readUInt32BE(0),
                peerStreamId: body.readUInt32BE(STREAM_ID_LEN),
                delivered: body.readUInt32BE(2 * STREAM_ID_LEN),
            }
        default:
            throw new AppProtocolError(`unknown kind 0x${kind.toString(16)}`)
    }
}

/**
 * Decodes the content of a DATA record sent by `from`.
 * @throws AppProtocolError on a truncated message, an unknown kind, a kind sent in the wrong
 *   direction, a sequenced id of 0, or a malformed body
 */
export function decodeApp(content: Buffer, from: Direction): AppMessage[] {
    const out: AppMessage[] = []
    let off = 0
    if (content.length === 0) throw new AppProtocolError("empty DATA")
    while (off < content.length) {
        if (content.length - off < APP_HEADER_LEN) throw new AppProtocolError("truncated header")
        const kind = content[off] as number
        const id = content.readUInt32BE(off + APP_KIND_LEN)
        const len = content.readUInt16BE(off + APP_KIND_LEN + APP_ID_LEN)
        const start = off + APP_HEADER_LEN
        if (content.length - start < len) throw new AppProtocolError("truncated body")
        const sender = SENT_BY[kind]
        if (sender === undefined) throw new AppProtocolError(`unknown kind 0x${kind.toString(16)}`)
        if (sender !== "both" && sender !== from) throw new AppProtocolError(`kind 0x${kind.toString(16)} from the ${from}`)
        const m = decodeOne(kind, id, content.subarray(start, start + len))
        if (isSequenced(m) && m.id === 0) throw new AppProtocolError("sequenced message with id 0")
        out.push(m)
        off = start + len
    }
    return out
}

function nameField(name: string, what: string): Buffer {
    const b = Buffer.from(name, "utf8")
    if (b.length === 0 || b.length > MAX_NAME_LEN) throw new RangeError(`app: ${what} must be 1..${MAX_NAME_LEN} bytes`)
    return Buffer.concat([Buffer.from([b.length]), b])
}

function checkUint32(x: number, what: string): void {
    if (!Number.isInteger(x) || x < 0 || x > UINT32_MAX) throw new RangeError(`app: ${what} must be a uint32`)
}

/**
 * Encodes one message.
 * @throws RangeError on out-of-range fields or a body that does not fit one DATA record
 *   (caller errors)
 */
export function encodeApp(m: AppMessage): Buffer {
    let body: Buffer
    let id: number
    switch (m.kind) {
        case AppKind.PUBLISH:
        case AppKind.MESSAGE:
            body = Buffer.concat([nameField(m.topic, "topic"), m.payload])
            id = m.id
            break
        case AppKind.REQUEST:
            body = Buffer.concat([nameField(m.route, "route"), m.payload])
            id = m.id
            break
        case AppKind.RESPONSE:
            checkUint32(m.requestId, "request_id")
            if (!isResponseStatus(m.status)) throw new RangeError("app: bad status")
            body = Buffer.alloc(RESPONSE_PREFIX_LEN + m.payload.length)
            body.writeUInt32BE(m.requestId, 0)
            body.writeUInt16BE(m.status, REQUEST_ID_LEN)
            m.payload.copy(body, RESPONSE_PREFIX_LEN)
            id = m.id
            break
        case AppKind.ACK:
            body = Buffer.alloc(0)
            id = m.id
            break
        case AppKind.STREAM:
            body = Buffer.alloc(STREAM_BODY_LEN)
            for (const [i, v] of [m.streamId, m.peerStreamId, m.delivered].entries()) {
                checkUint32(v, "STREAM field")
                body.writeUInt32BE(v, i * STREAM_ID_LEN)
            }
            id = 0
            break
    }
    checkUint32(id, "id")
    if (body.length > MAX_APP_BODY) throw new RangeError(`app: body of ${body.length} bytes > ${MAX_APP_BODY}`)
    const out = Buffer.alloc(APP_HEADER_LEN + body.length)
    out[0] = m.kind
    out.writeUInt32BE(id, APP_KIND_LEN)
    out.writeUInt16BE(body.length, APP_KIND_LEN + APP_ID_LEN)
    body.copy(out, APP_HEADER_LEN)
    return out
}

/**
 * Packs encoded messages into DATA contents of at most `max` bytes each, in order (a DATA
 * record carries whole messages only).
 */
export function packApp(encoded: readonly Buffer[], max: number = MAX_RECORD_CONTENT): Buffer[] {
    const out: Buffer[] = []
    let cur: Buffer[] = []
    let size = 0
    for (const e of encoded) {
        if (e.length > max) throw new RangeError(`app: message of ${e.length} bytes > ${max}`)
        if (size + e.length > max) {
            out.push(Buffer.concat(cur))
            cur = []
            size = 0
        }
        cur.push(e)
        size += e.length
    }
    if (cur.length > 0) out.push(Buffer.concat(cur))
    return out
}
