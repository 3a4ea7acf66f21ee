// The device's sending stream (PROTOCOL.md 12.1): PUBLISH and REQUEST numbered 1, 2, 3, ...
// under a random `stream_id` chosen at boot, each kept (encoded, in RAM) until the gateway
// acknowledges it. On the gateway's STREAM: "If peer_stream_id names its current stream, the
// sender releases every message up to delivered and resends, in order, the unacknowledged
// ones above it. Otherwise it starts a new stream: a fresh random stream_id, and its
// unacknowledged messages, in order, renumbered 1, 2, 3, ..." (the gateway lost its
// receiving state for this stream).
//
// The queue is bounded twice, by count and by encoded bytes (the heap is about 64 KB):
// `enqueue` throws QueueFullError instead of growing. A device restart loses the queue and
// starts a new stream: messages queued in RAM are lost; nothing acknowledged is.
import { randomBytes, RandomSource } from "../crypto/random"
import { AppKind, AppProtocolError, encodedId, encodeNamed, readU32, writeU32 } from "./codec"

/** Default bound on unacknowledged messages. */
export const DEFAULT_QUEUE_COUNT = 32
/** Default bound on the bytes of unacknowledged encoded messages (headers included). */
export const DEFAULT_QUEUE_BYTES = 4096

/** Thrown by enqueue when the message would exceed the queue's count or byte bound. */
export class QueueFullError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "QueueFullError"
    }
}

/** A random non-zero stream id (0 means "none" in STREAM's `peer_stream_id`). */
export function newStreamId(random: RandomSource): number {
    for (;;) {
        const id = readU32(random(4), 0)
        if (id !== 0) return id
    }
}

/** Options of {@link OutboundStream}. */
export interface OutboundOptions {
    /** most unacknowledged messages; default {@link DEFAULT_QUEUE_COUNT} */
    maxCount?: number
    /** most bytes of unacknowledged encoded messages; default {@link DEFAULT_QUEUE_BYTES} */
    maxBytes?: number
    /** randomness for the stream id; default the CSPRNG */
    random?: RandomSource
    /** a fixed stream id (tests) */
    streamId?: number
}

/** The sending half of the device's stream. */
export class OutboundStream {
    /** this stream's id, random per boot and per restart(); read it, do not set it */
    streamId: number
    readonly maxCount: number
    readonly maxBytes: number
    /** unacknowledged encoded messages, ids ascending and consecutive */
    private queue: Buffer[] = []
    private bytes = 0
    private nextId = 1
    /** highest id sent in the current session (0: none yet) */
    private sentUpTo = 0
    private random: RandomSource

    constructor(opts?: OutboundOptions) {
        const o = opts || {}
        this.maxCount = o.maxCount || DEFAULT_QUEUE_COUNT
        this.maxBytes = o.maxBytes || DEFAULT_QUEUE_BYTES
        this.random = o.random || randomBytes
        this.streamId = o.streamId || newStreamId(this.random)
    }

    /** Unacknowledged messages. */
    count(): number {
        return this.queue.length
    }

    /** Bytes of unacknowledged encoded messages. */
    size(): number {
        return this.bytes
    }

    /** The highest id acknowledged so far (0: none). */
    acked(): number {
        return this.nextId - 1 - this.queue.length
    }

    /** The id the next message gets. */
    peekId(): number {
        return this.nextId
    }

    /** Whether messages are queued that were not yet sent in this session. */
    hasUnsent(): boolean {
        const n = this.queue.length
        return n > 0 && encodedId(this.queue[n - 1]) > this.sentUpTo
    }

    /** Whether messages were sent in this session and are not acknowledged yet. */
    inFlight(): boolean {
        return this.queue.length > 0 && encodedId(this.queue[0]) <= this.sentUpTo
    }

    /**
     * Numbers a PUBLISH or REQUEST and keeps it until acknowledged.
     * @returns its id
     * @throws QueueFullError when the queue holds `maxCount` messages or the message would
     *     take it past `maxBytes` (nothing is queued); RangeError on a bad name or size
     */
    enqueue(kind: AppKind, name: string, payload: Buffer): number {
        if (this.queue.length >= this.maxCount)
            throw new QueueFullError("tether: send queue full (" + this.maxCount + " messages unacknowledged)")
        const msg = encodeNamed(kind, this.nextId, name, payload)
        if (this.bytes + msg.length > this.maxBytes)
            throw new QueueFullError("tether: send queue full (" + this.bytes + " of " + this.maxBytes + " bytes)")
        this.queue.push(msg)
        this.bytes += msg.length
        return this.nextId++
    }

    /**
     * A cumulative ACK: releases every message up to `id`.
     * @throws AppProtocolError when `id` names a message never queued
     */
    ack(id: number): void {
        if (id >= this.nextId) throw new AppProtocolError("ACK " + id + " of a message never sent")
        while (this.queue.length > 0 && encodedId(this.queue[0]) <= id) {
            this.bytes -= this.queue[0].length
            this.queue.shift()
        }
    }

    /** A new session: nothing of the queue has been sent on it yet. */
    sessionStart(): void {
        this.sentUpTo = 0
    }

    /**
     * The gateway's STREAM. When it names this stream, `delivered` acknowledges (the gateway
     * may report less than it acknowledged before: nothing is resent that was released).
     * Otherwise the stream restarts ({@link restart}).
     * @returns the first id of the queue before a restart (the caller moves what refers to
     *     the old ids), or 0 when the stream was not restarted
     * @throws AppProtocolError when `delivered` is beyond the last id queued
     */
    peerStream(peerStreamId: number, delivered: number): number {
        if (peerStreamId === this.streamId) {
            this.ack(delivered)
            return 0
        }
        const first = this.nextId - this.queue.length
        this.restart()
        return first
    }

    /**
     * Starts a new stream: a fresh random stream_id, the queued messages renumbered 1, 2,
     * 3, ... in order, none of them sent yet. They were never acknowledged by the gateway's
     * current receiving state, so they are delivered once from its view; a message it
     * delivered before it lost that state, whose ACK never came, is delivered again.
     * The queue's buffers may already have been handed to the link: new ones are made.
     */
    restart(): void {
        let id = this.streamId
        while (id === this.streamId) id = newStreamId(this.random)
        this.streamId = id
        for (let i = 0; i < this.queue.length; i++) {
            const old = this.queue[i]
            const m = Buffer.alloc(old.length)
            m.blitAt(0, old, 0, old.length)
            writeU32(m, 1, i + 1) // the id follows the kind byte
            this.queue[i] = m
        }
        this.nextId = this.queue.length + 1
        this.sentUpTo = 0
    }

    /**
     * Takes the messages not yet sent in this session, in order, as long as they fit in
     * `room` bytes (whole messages only), and marks them sent.
     * @param out the buffers are appended here
     * @returns the bytes taken
     */
    take(room: number, out: Buffer[]): number {
        let used = 0
        for (let i = 0; i < this.queue.length; i++) {
            const m = this.queue[i]
            const id = encodedId(m)
            if (id <= this.sentUpTo) continue
            if (used + m.length > room) break
            out.push(m)
            used += m.length
            this.sentUpTo = id
        }
        return used
    }
}
