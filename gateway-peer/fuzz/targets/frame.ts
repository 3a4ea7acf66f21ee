// FrameDecoder under arbitrary chunking. The input's first byte seeds the cut points; the rest is
// the byte stream. Invariants: the frames returned are the same however the stream is cut (a
// single push is the reference), each frame's body has the length its header said, `buffered`
// is what is left over, and after a FrameError every push throws FrameError.
import { FrameDecoder, FrameError, HEADER_LEN, LEN_SIZE, MAX_FRAME_LEN, type Frame } from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { Rng } from "../mutate.js"
import { FRAME_DICTIONARY } from "./common.js"

interface Outcome {
    frames: Frame[]
    error: boolean
    buffered: number
}

function decodeAll(stream: Buffer, cuts: number[]): Outcome {
    const d = new FrameDecoder()
    const frames: Frame[] = []
    let off = 0
    try {
        for (const n of [...cuts, stream.length]) {
            const end = Math.min(stream.length, off + n)
            // a copy per chunk, as a socket delivers them
            for (const f of d.push(Buffer.from(stream.subarray(off, end)))) frames.push({ type: f.type, body: Buffer.from(f.body) })
            off = end
            if (off >= stream.length) break
        }
    } catch (err) {
        if (!(err instanceof FrameError)) throw err
        let again: unknown
        try {
            d.push(Buffer.from([0, 1, 1]))
        } catch (e) {
            again = e
        }
        check(again instanceof FrameError, "a failed decoder accepted more bytes")
        return { frames, error: true, buffered: 0 }
    }
    return { frames, error: false, buffered: d.buffered }
}

export async function create(): Promise<Target> {
    return {
        name: "frame",
        maxLen: 4 * (LEN_SIZE + MAX_FRAME_LEN),
        dictionary: FRAME_DICTIONARY,
        run(data) {
            if (data.length === 0) return
            const stream = data.subarray(1)
            const rng = new Rng(data[0] as number)
            const cuts: number[] = []
            for (let left = stream.length; left > 0;) {
                const n = rng.below(4) === 0 ? rng.below(3) : 1 + rng.below(Math.min(left, 2 * HEADER_LEN + 64))
                cuts.push(n)
                left -= n
            }
            const whole = decodeAll(stream, [])
            const cut = decodeAll(stream, cuts)
            check(whole.error === cut.error, `chunking changed the verdict: ${whole.error} vs ${cut.error}`)
            if (whole.error) return // a push that throws returns no frames: the counts differ by design
            check(
                whole.frames.length === cut.frames.length,
                `chunking changed the frame count: ${whole.frames.length} vs ${cut.frames.length}`
            )
            let consumed = 0
            for (const [i, f] of whole.frames.entries()) {
                const g = cut.frames[i] as Frame
                check(f.type === g.type && f.body.equals(g.body), `frame ${i} differs when chunked`)
                const len = stream.readUInt16BE(consumed)
                check(
                    len >= 1 && len <= MAX_FRAME_LEN && f.body.length === len - 1,
                    `frame ${i}: body of ${f.body.length} for length ${len}`
                )
                check(stream[consumed + LEN_SIZE] === f.type, `frame ${i}: type byte`)
                consumed += LEN_SIZE + len
            }
            check(whole.buffered === stream.length - consumed, `buffered ${whole.buffered}, left over ${stream.length - consumed}`)
            check(cut.buffered === whole.buffered, `chunked buffered ${cut.buffered} vs ${whole.buffered}`)
        },
    }
}
