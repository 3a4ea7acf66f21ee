// decodeApp, both directions: the input's first byte picks the sender (bit 0: gateway), the rest
// is the content of a DATA record. It throws AppProtocolError or returns messages; then every
// message re-encodes (encodeApp) to exactly the bytes it came from, in order.
import { AppKind, AppProtocolError, decodeApp, encodeApp, MAX_APP_BODY, type Direction } from "../../src/app/codec.js"
import { MAX_RECORD_CONTENT } from "../../src/wire.js"
import { check, InvariantError, type Target } from "../engine.js"

const u16 = (n: number) => {
    const b = Buffer.alloc(2)
    b.writeUInt16BE(n)
    return b
}

export async function create(): Promise<Target> {
    return {
        name: "app-codec",
        maxLen: 1 + MAX_RECORD_CONTENT,
        dictionary: [
            ...Object.values(AppKind).map(k => Buffer.from([k])),
            ...[0, 1, 6, 12, 100, 200, 599, 600, MAX_APP_BODY].map(u16),
            Buffer.from([0, 0, 0, 0]),
            Buffer.from([0, 0, 0, 1]),
            Buffer.from([0xff, 0xff, 0xff, 0xff]),
            // UTF-8 edges: a BOM, an overlong form, a surrogate, a lone continuation byte
            Buffer.from([0xef, 0xbb, 0xbf]),
            Buffer.from([0xc0, 0xaf]),
            Buffer.from([0xed, 0xa0, 0x80]),
            Buffer.from([0x80]),
        ],
        run(data) {
            if (data.length === 0) return
            const from: Direction = ((data[0] as number) & 1) === 1 ? "gateway" : "device"
            const content = data.subarray(1)
            let msgs
            try {
                msgs = decodeApp(content, from)
            } catch (err) {
                if (err instanceof AppProtocolError) return
                throw err
            }
            check(Array.isArray(msgs) && msgs.length > 0, "decoded no messages from a non-empty content")
            let again: Buffer
            try {
                again = Buffer.concat(msgs.map(m => encodeApp(m)))
            } catch (err) {
                throw new InvariantError(`a decoded message does not encode: ${(err as Error).message}`)
            }
            check(again.equals(content), `re-encoding differs: ${content.toString("hex")} -> ${again.toString("hex")}`)
        },
    }
}
