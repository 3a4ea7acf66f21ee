// Tether's framing (PROTOCOL.md 2): every frame on
// the TCP stream is
//
//     uint16_be length || type (1 byte) || body
//
// where `length` counts type + body. All wire sizes and offsets of the framing layer live here,
// derived from each other; nothing else in the device code spells them out.

/** Size of the big-endian length field. */
export const LEN_SIZE = 2
/** Offset of the type byte in an encoded frame. */
export const TYPE_OFFSET = LEN_SIZE
/** Size of the type field. */
export const TYPE_SIZE = 1
/** Offset of the body in an encoded frame; also the size of the frame header. */
export const BODY_OFFSET = TYPE_OFFSET + TYPE_SIZE
/** Bytes in front of the body: length field and type. */
export const HEADER_SIZE = BODY_OFFSET
/**
 * Largest value of the length field (type + body). Small and explicit: the device heap is
 * about 64 KB and a frame is buffered whole. A length of 0 (no type byte) or above this is a
 * protocol violation and the connection is closed.
 */
export const MAX_FRAME = 1024
/** The name PROTOCOL.md section 2.1 gives {@link MAX_FRAME}. */
export const MAX_FRAME_LEN = MAX_FRAME
/** Largest body a frame can carry. */
export const MAX_BODY = MAX_FRAME - TYPE_SIZE
/** Largest encoded frame on the wire. */
export const MAX_WIRE_FRAME = LEN_SIZE + MAX_FRAME
/** Largest type byte value. */
export const MAX_TYPE = 0xff

// The type bytes themselves are protocol, not framing: FrameType in ../tether/wire.ts.

/**
 * Encodes one frame: `uint16_be(1 + body.length) || type || body`.
 * @param type frame type, an integer 0..255
 * @param body at most {@link MAX_BODY} bytes
 * @throws RangeError on a bad type or an oversized body
 */
export function encodeFrame(type: number, body: Buffer): Buffer {
    if (typeof type !== "number" || !(type >= 0 && type <= MAX_TYPE) || Math.floor(type) !== type)
        throw new RangeError("encodeFrame: bad type " + type)
    if (!(body instanceof Buffer)) throw new TypeError("encodeFrame: body is not a Buffer")
    if (body.length > MAX_BODY) throw new RangeError("encodeFrame: body of " + body.length + " bytes > " + MAX_BODY)
    const len = TYPE_SIZE + body.length
    const out = Buffer.alloc(LEN_SIZE + len)
    out[0] = len >> 8
    out[1] = len & 0xff
    out[TYPE_OFFSET] = type
    out.blitAt(BODY_OFFSET, body, 0, body.length)
    return out
}
