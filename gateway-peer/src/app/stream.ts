// The two halves of an application stream (PROTOCOL.md 12.1), shared by the gateway and the
// Node twin of the device: exactly once, in order, across reconnects.
//
// "Each direction is a stream of sequenced messages numbered 1, 2, 3, ... by the sender. A
// stream is named by a random 32-bit stream_id chosen when the sender's queue is created and
// lives across connections."
import { randomBytes, type RandomSource } from "../crypto/random.js"
import { AppProtocolError, type SequencedMessage } from "./codec.js"

/** A random non-zero stream id (0 means "none" in STREAM's peer_stream_id). */
export function newStreamId(rng: RandomSource = randomBytes): number {
    for (;;) {
        const id = rng(4).readUInt32BE(0)
        if (id !== 0) return id
    }
}

/** A sequenced message without its id: the stream numbers it. */
export type Unnumbered = SequencedMessage extends infer M ? (M extends SequencedMessage ? Omit<M, "id"> : never) : never

/**
 * The sending half. "The sender keeps every message until it is acknowledged." Each message
 * is sent at most once per session; a new session resends what is unacknowledged once the
 * peer's STREAM says what it has.
 */
export class SendStream {
    readonly streamId: number
    #nextId = 1
    #unacked: SequencedMessage[] = []
    /** highest id handed out for sending in the current session */
    #sentUpTo = 0
    /** the peer's STREAM arrived in this session (or the side sends eagerly) */
    #ready = false

    constructor(opts: { streamId?: number; rng?: RandomSource } = {}) {
        this.streamId = opts.streamId ?? newStreamId(opts.rng)
    }

    /** Messages kept until acknowledged. */
    get unacked(): number {
        return this.#unacked.length
    }

    /** The id the next message gets. */
    get nextId(): number {
        return this.#nextId
    }

    /** Numbers a message and keeps it until acknowledged; returns it. */
    enqueue(m: Unnumbered): SequencedMessage {
        const full = { ...m, id: this.#nextId++ } as SequencedMessage
        this.#unacked.push(full)
        return full
    }

    /**
     * A new session starts. With `eager` (the device, whose queued messages ride as early
     * data) messages may go before the peer's STREAM; otherwise they wait for it.
     */
    sessionStart(eager: boolean): void {
        this.#sentUpTo = 0
        this.#ready = eager
    }

    /** The session ended: nothing is in flight any more. */
    sessionEnd(): void {
        this.#sentUpTo = 0
        this.#ready = false
    }

    /**
     * The peer's STREAM: "resends, in order, every unacknowledged message with an id above
     * delivered if peer_stream_id names its current stream, or all of them otherwise".
     */
    peerStream(peerStreamId: number, delivered: number): void {
        if (peerStreamId === this.streamId) this.ack(delivered, false)
        this.#ready = true
    }

    /**
     * A cumulative ACK. Returns how many messages it released.
     * @throws AppProtocolError when it acknowledges an id never sent (`strict`)
     */
    ack(id: number, strict = true): number {
        if (id >= this.#nextId) {
            if (strict) throw new AppProtocolError(`ACK ${id} of a message never sent`)
            id = this.#nextId - 1
        }
        let n = 0
        while (n < this.#unacked.length && (this.#unacked[n] as SequencedMessage).id <= id) n++
        if (n > 0) this.#unacked.splice(0, n)
        return n
    }

    /** The messages to send now, in order; marks them sent in this session. */
    take(): SequencedMessage[] {
        if (!this.#ready) return []
        const out = this.#unacked.filter(m => m.id > this.#sentUpTo)
        const last = out[out.length - 1]
        if (last !== undefined) this.#sentUpTo = last.id
        return out
    }
}

/** What a receiver keeps of the peer's stream: persisted by the gateway (12.1). */
export interface ReceiveState {
    /** the peer's stream_id, 0 if none yet */
    streamId: number
    /** the highest id delivered from it */
    delivered: number
}

/** The verdict on a sequenced message. */
export type Arrival = "deliver" | "duplicate"

/** The receiving half. */
export class ReceiveStream {
    #state: ReceiveState
    /** the peer's STREAM arrived in this session */
    #synced = false

    /** @param synced whether the peer's STREAM already arrived in this session (copies) */
    constructor(state: ReceiveState = { streamId: 0, delivered: 0 }, synced = false) {
        this.#state = { ...state }
        this.#synced = synced
    }

    /** A copy of the state to persist. */
    get state(): ReceiveState {
        return { ...this.#state }
    }

    get synced(): boolean {
        return this.#synced
    }

    sessionEnd(): void {
        this.#synced = false
    }

    /**
     * The peer's STREAM: "if the peer's stream_id differs from the one it was receiving, it
     * starts over at 0 for the new stream". Returns true if the state changed.
     */
    peerStream(streamId: number): boolean {
        this.#synced = true
        if (streamId === this.#state.streamId) return false
        this.#state = { streamId, delivered: 0 }
        return true
    }

    /**
     * "The receiver delivers a message only if its id is exactly one more than the last id it
     * delivered from that stream; an id at or below it is a duplicate; an id further ahead is
     * a protocol error." A message before the peer's STREAM is one too.
     */
    arrive(id: number): Arrival {
        if (!this.#synced) throw new AppProtocolError("sequenced message before STREAM")
        if (id <= this.#state.delivered) return "duplicate"
        if (id !== this.#state.delivered + 1) throw new AppProtocolError(`id ${id} after ${this.#state.delivered}`)
        this.#state.delivered = id
        return "deliver"
    }
}
