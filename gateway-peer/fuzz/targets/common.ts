// What the targets share: the committed vectors, and the dictionary of frame types and sizes
// from wire.ts.
import { readFileSync } from "node:fs"
import {
    encodeFrame,
    FrameType,
    HS_INIT_BODY_LEN,
    InnerType,
    MAX_FRAME_LEN,
    RESUME_INIT_MIN_BODY_LEN,
    TAG_LEN,
    TICKET_LEN,
    VERSION,
} from "../../src/wire.js"

/** A test of test/vectors/generated/<file> at the repository root (dist/fuzz/targets/ is four levels below). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function vectors(file: string): any[] {
    const url = new URL(`../../../../test/vectors/generated/${file}`, import.meta.url)
    return (JSON.parse(readFileSync(url, "utf8")) as { tests: unknown[] }).tests
}

export const hex = (s: string): Buffer => Buffer.from(s, "hex")

const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2)
    b.writeUInt16BE(n)
    return b
}

/** Frame headers and lengths of every type and size the protocol knows, and the edges around them. */
export const FRAME_DICTIONARY: readonly Buffer[] = [
    ...Object.values(FrameType).map(t => Buffer.from([t])),
    ...Object.values(InnerType).map(t => Buffer.from([t])),
    Buffer.from([VERSION]),
    ...[
        0,
        1,
        2,
        TAG_LEN,
        TICKET_LEN,
        HS_INIT_BODY_LEN + 1,
        RESUME_INIT_MIN_BODY_LEN + 1,
        MAX_FRAME_LEN - 1,
        MAX_FRAME_LEN,
        MAX_FRAME_LEN + 1,
        0xffff,
    ].map(u16),
    encodeFrame(FrameType.HS_INIT, Buffer.alloc(HS_INIT_BODY_LEN)).subarray(0, 3),
    encodeFrame(FrameType.RESUME_INIT, Buffer.alloc(RESUME_INIT_MIN_BODY_LEN)).subarray(0, 3),
    encodeFrame(FrameType.RECORD, Buffer.alloc(TAG_LEN + 1)).subarray(0, 3),
]

/** The body of a whole frame given in hex (drops the length and type). */
export const bodyOf = (frameHex: string): Buffer => hex(frameHex).subarray(3)
