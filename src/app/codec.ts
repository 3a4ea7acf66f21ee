// Application messages (PROTOCOL.md 12), the device's side of the codec. A DATA record's
// content is a sequence of
//
//     app = kind (1) || id (uint32_be) || length (uint16_be) || body (length bytes)
//
// The device encodes PUBLISH, REQUEST, ACK and STREAM and decodes what the gateway may send:
// RESPONSE, MESSAGE, ACK, STREAM. "A DATA record carries whole messages only; a receiver
// closes the session on a truncated message, an unknown kind or a kind sent in the wrong
// direction": the decoder checks every length before it reads and throws AppProtocolError.
import { MAX_EARLY_DATA_CONTENT, MAX_RECORD_CONTENT } from "../tether/wire"

/** Application message kinds (PROTOCOL.md 12). */
export enum AppKind {
    PUBLISH = 0x01,
    REQUEST = 0x02,
    RESPONSE = 0x03,
    MESSAGE = 0x04,
    ACK = 0x05,
    STREAM = 0x06,
}

/** RESPONSE status 0: the payload is one of these codes (PROTOCOL.md 12.2). */
export enum AppError {
    ROUTE_REFUSED = 0x01,
    UPSTREAM_TIMEOUT = 0x02,
    UPSTREAM_TOO_LARGE = 0x03,
    UPSTREAM_FAILED = 0x04,
}

export const APP_KIND_LEN = 1
export const APP_ID_LEN = 4
export const APP_LENGTH_LEN = 2
/** kind || id || length: 7. */
export const APP_HEADER_LEN = APP_KIND_LEN + APP_ID_LEN + APP_LENGTH_LEN
/** `topic_len`, `route_len`. */
export const NAME_LEN_LEN = 1
/** "a topic or route at most 255 bytes". */
export const MAX_NAME_LEN = 255
export const STREAM_ID_LEN = 4
/** STREAM body: stream_id || peer_stream_id || delivered = 12. */
export const STREAM_BODY_LEN = 3 * STREAM_ID_LEN
/** A whole STREAM message: 19. */
export const STREAM_MSG_LEN = APP_HEADER_LEN + STREAM_BODY_LEN
/** A whole ACK message: 7. */
export const ACK_MSG_LEN = APP_HEADER_LEN
export const REQUEST_ID_LEN = 4
export const STATUS_LEN = 2
/** RESPONSE body before its payload: request_id || status. */
export const RESPONSE_PREFIX_LEN = REQUEST_ID_LEN + STATUS_LEN
/** Status 0: the gateway could not make or finish the call (12.2). */
export const STATUS_GATEWAY_ERROR = 0
/** The largest encoded message: one DATA record's content, 1006. */
export const MAX_APP_MSG_LEN = MAX_RECORD_CONTENT
/** The largest DATA content that rides as resumption early data, 960. */
export const MAX_EARLY_CONTENT = MAX_EARLY_DATA_CONTENT
/** The largest id (uint32). */
export const MAX_ID = 4294967295

/** A malformed or out-of-order application message: the session is closed (PROTOCOL_ERROR). */
export class AppProtocolError extends Error {
    constructor(message: string) {
        super("app: " + message)
        this.name = "AppProtocolError"
    }
}

/**
 * A decoded message from the gateway. Fields by kind: RESPONSE `id, requestId, status,
 * payload`; MESSAGE `id, topic, payload`; ACK `id`; STREAM `streamId, peerStreamId, delivered`.
 */
export interface AppMessage {
    kind: AppKind
    id: number
    topic?: string
    payload?: Buffer
    requestId?: number
    status?: number
    streamId?: number
    peerStreamId?: number
    delivered?: number
}

/** uint32_be without the runtime's sign trouble above 2^31; the caller checked the length. */
export function readU32(b: Buffer, off: number): number {
    return b[off] * 16777216 + ((b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3])
}

/** Writes a uint32_be (0..2^32-1, checked by the caller). */
export function writeU32(b: Buffer, off: number, v: number): void {
    const hi = Math.floor(v / 65536)
    const lo = v - hi * 65536
    b[off] = hi >> 8
    b[off + 1] = hi & 0xff
    b[off + 2] = lo >> 8
    b[off + 3] = lo & 0xff
}

function header(kind: AppKind, id: number, bodyLen: number): Buffer {
    if (!(id >= 0 && id <= MAX_ID) || Math.floor(id) !== id) throw new RangeError("app: bad id " + id)
    const out = Buffer.alloc(APP_HEADER_LEN + bodyLen)
    out[0] = kind
    writeU32(out, APP_KIND_LEN, id)
    out[APP_KIND_LEN + APP_ID_LEN] = bodyLen >> 8
    out[APP_KIND_LEN + APP_ID_LEN + 1] = bodyLen & 0xff
    return out
}

/**
 * Encodes a PUBLISH or REQUEST: `name_len (1) || name (UTF-8) || payload`.
 * @throws RangeError when the name is empty or over 255 bytes, or the message does not fit
 *     one DATA record ({@link MAX_APP_MSG_LEN})
 */
export function encodeNamed(kind: AppKind, id: number, name: string, payload: Buffer): Buffer {
    const n = Buffer.from(name)
    if (n.length === 0 || n.length > MAX_NAME_LEN) throw new RangeError("app: a topic or route is 1..255 bytes")
    const bodyLen = NAME_LEN_LEN + n.length + payload.length
    if (APP_HEADER_LEN + bodyLen > MAX_APP_MSG_LEN)
        throw new RangeError("app: message of " + (APP_HEADER_LEN + bodyLen) + " bytes > " + MAX_APP_MSG_LEN)
    const out = header(kind, id, bodyLen)
    out[APP_HEADER_LEN] = n.length
    out.blitAt(APP_HEADER_LEN + NAME_LEN_LEN, n, 0, n.length)
    out.blitAt(APP_HEADER_LEN + NAME_LEN_LEN + n.length, payload, 0, payload.length)
    return out
}

/** Encodes an ACK: `id` = the highest id delivered, empty body. */
export function encodeAck(id: number): Buffer {
    return header(AppKind.ACK, id, 0)
}

/** Encodes a STREAM (id 0): stream_id || peer_stream_id || delivered. */
export function encodeStream(streamId: number, peerStreamId: number, delivered: number): Buffer {
    const out = header(AppKind.STREAM, 0, STREAM_BODY_LEN)
    writeU32(out, APP_HEADER_LEN, streamId)
    writeU32(out, APP_HEADER_LEN + STREAM_ID_LEN, peerStreamId)
    writeU32(out, APP_HEADER_LEN + 2 * STREAM_ID_LEN, delivered)
    return out
}

/** The id of an encoded message (bytes 1..4). */
export function encodedId(msg: Buffer): number {
    return readU32(msg, APP_KIND_LEN)
}

function decodeNamed(m: AppMessage, c: Buffer, start: number, end: number): void {
    if (end - start < NAME_LEN_LEN) throw new AppProtocolError("topic without a length")
    const n = c[start]
    if (n === 0) throw new AppProtocolError("empty topic")
    if (end - start - NAME_LEN_LEN < n) throw new AppProtocolError("truncated topic")
    m.topic = c.slice(start + NAME_LEN_LEN, start + NAME_LEN_LEN + n).toString()
    m.payload = c.slice(start + NAME_LEN_LEN + n, end)
}

/**
 * Decodes the content of a DATA record sent by the gateway.
 * @returns the messages in order (payloads are copies)
 * @throws AppProtocolError on an empty content, a truncated header or body, an unknown kind,
 *     a PUBLISH or REQUEST (device-to-gateway kinds), a sequenced id of 0, a STREAM whose id
 *     is not 0 or whose body is not 12 bytes, an ACK with a body, a RESPONSE shorter than 6
 *     bytes or with a status outside 0 and 100..599
 */
export function decodeData(c: Buffer): AppMessage[] {
    if (c.length === 0) throw new AppProtocolError("empty DATA")
    const out: AppMessage[] = []
    let off = 0
    while (off < c.length) {
        if (c.length - off < APP_HEADER_LEN) throw new AppProtocolError("truncated header")
        const kind = c[off]
        const id = readU32(c, off + APP_KIND_LEN)
        const len = (c[off + APP_KIND_LEN + APP_ID_LEN] << 8) | c[off + APP_KIND_LEN + APP_ID_LEN + 1]
        const start = off + APP_HEADER_LEN
        const end = start + len
        if (end > c.length) throw new AppProtocolError("truncated body")
        const m: AppMessage = { kind, id }
        if (kind === AppKind.MESSAGE) {
            decodeNamed(m, c, start, end)
        } else if (kind === AppKind.RESPONSE) {
            if (len < RESPONSE_PREFIX_LEN) throw new AppProtocolError("truncated RESPONSE")
            const status = (c[start + REQUEST_ID_LEN] << 8) | c[start + REQUEST_ID_LEN + 1]
            if (status !== STATUS_GATEWAY_ERROR && (status < 100 || status > 599)) throw new AppProtocolError("RESPONSE status " + status)
            m.requestId = readU32(c, start)
            m.status = status
            m.payload = c.slice(start + RESPONSE_PREFIX_LEN, end)
        } else if (kind === AppKind.ACK) {
            if (len !== 0) throw new AppProtocolError("ACK with a body")
        } else if (kind === AppKind.STREAM) {
            if (len !== STREAM_BODY_LEN) throw new AppProtocolError("STREAM of the wrong length")
            if (id !== 0) throw new AppProtocolError("STREAM id must be 0")
            m.streamId = readU32(c, start)
            m.peerStreamId = readU32(c, start + STREAM_ID_LEN)
            m.delivered = readU32(c, start + 2 * STREAM_ID_LEN)
        } else if (kind === AppKind.PUBLISH || kind === AppKind.REQUEST) {
            throw new AppProtocolError("kind " + kind + " from the gateway")
        } else {
            throw new AppProtocolError("unknown kind " + kind)
        }
        if ((kind === AppKind.MESSAGE || kind === AppKind.RESPONSE) && id === 0) throw new AppProtocolError("sequenced message with id 0")
        out.push(m)
        off = end
    }
    return out
}
