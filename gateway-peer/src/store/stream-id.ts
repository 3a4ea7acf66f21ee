// Stream ids (PROTOCOL.md 12.1): "a random non-zero 32-bit stream_id chosen when the sender
// starts it". Here, below app/, because the outbox starts the gateway's streams.
import { randomBytes, type RandomSource } from "../crypto/random.js"

/** A random non-zero stream id (0 means "none" in STREAM's peer_stream_id). */
export function newStreamId(rng: RandomSource = randomBytes): number {
    for (;;) {
        const id = rng(4).readUInt32BE(0)
        if (id !== 0) return id
    }
}

/** A random stream id different from `old` (a restart must change the name). */
export function nextStreamId(old: number, rng: RandomSource = randomBytes): number {
    let id = old
    while (id === old) id = newStreamId(rng)
    return id
}
