// The two halves of an application stream (PROTOCOL.md 12.1), shared by the gateway and the
// Node twin of the device: exactly once, in order, across reconnects.
//
// "Each direction is a stream of sequenced messages numbered 1, 2, 3, ... by the sender. A
// stream is named by a random non-zero 32-bit stream_id chosen when the sender starts it." A
// sender starts a new stream when the peer's STREAM shows that the peer's receiving state is
// not its current stream's (the peer restarted or lost that state): its unacknowledged
// messages are renumbered from 1 under a fresh stream_id, and its own STREAM goes first.
import { randomBytes, type RandomSource } from "../crypto/random.js"
import { newStreamId } from "../store/stream-id.js"
import type { ReceiveState } from "../store/types.js"
import { AppProtocolError, type SequencedMessage } from "./codec.js"

export { newStreamId }
export type { ReceiveState }

/** A sequenced message without its id: the stream numbers it. */
export type Unnumbered = SequencedMessage extends infer M ? (M extends SequencedMessage ? Omit<M, "id"> : never) : never

/**
 * The sending half. "The sender keeps every message until it is acknowledged." Each message
 * is sent at most once per session; a new session resends what is unacknowledged once the
 * peer's STREAM says what it has.
 */
export class SendStream {
    #streamId: number
    readonly #rng: RandomSource
    #nextId = 1
    #unacked: SequencedMessage[] = []
    /** highest id handed out for sending in the current session */
    #sentUpTo = 0
    /** the peer's STREAM arrived in this session (or the side sends eagerly) */
    #ready = false
    /** queue entries take() has looked at, all calls together */
    #examined = 0

    constructor(opts: { streamId?: number; rng?: RandomSource } = {}) {
        this.#rng = opts.rng ?? randomBytes
        this.#streamId = opts.streamId ?? newStreamId(this.#rng)
    }

    /** The current stream's id (it changes when the stream is restarted). */
    get streamId(): number {
        return this.#streamId
    }

    /** Messages kept until acknowledged. */
    get unacked(): number {
        return this.#unacked.length
    }

    /** Queue entries take() has looked at, all calls together: its work, for tests and metrics. */
    get examined(): number {
        return this.#examined
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
     * The peer's STREAM. "If peer_stream_id names its current stream, the sender releases
     * every message up to delivered and resends, in order, the unacknowledged ones above it.
     * Otherwise it starts a new stream": see restart().
     * @returns true when the stream was restarted: the caller's STREAM (with the new
     *     streamId) must go before anything take() returns
     */
    peerStream(peerStreamId: number, delivered: number): boolean {
        this.#ready = true
        if (peerStreamId === this.#streamId) {
            this.ack(delivered, false)
            return false
        }
        this.restart()
        return true
    }

    /**
     * Starts a new stream: "a fresh random stream_id, and its unacknowledged messages, in
     * order, renumbered 1, 2, 3, ...". They were never acknowledged under the receiver's
     * current state, so delivering them under new ids is exactly once from that state's view.
     * Nothing of the new stream has been sent yet.
     */
    restart(): void {
        let id = this.#streamId
        while (id === this.#streamId) id = newStreamId(this.#rng)
        this.#streamId = id
        this.#unacked = this.#unacked.map((m, i) => ({ ...m, id: i + 1 }))
        this.#nextId = this.#unacked.length + 1
        this.#sentUpTo = 0
    }

    /**
     * Drops the unacknowledged messages `pred` selects (RESPONSEs to a stream that is gone)
     * and, when it dropped any, restarts the stream so that ids stay consecutive.
     * @returns how many were dropped
     */
    drop(pred: (m: SequencedMessage) => boolean): number {
        const keep = this.#unacked.filter(m => !pred(m))
        const n = this.#unacked.length - keep.length
        if (n > 0) {
            this.#unacked = keep
            this.restart()
        }
        return n
    }

    /** The unacknowledged messages, in order (read-only copies of the queue's entries). */
    pending(): readonly SequencedMessage[] {
        return [...this.#unacked]
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

    /**
     * The messages to send now, in order; marks them sent in this session. O(messages
     * returned), however long the queue: the queue's ids are consecutive (enqueue numbers in
     * order, ack releases a prefix, restart renumbers from 1), so the first unsent entry is at
     * an index computed from the first entry's id, not found by a scan. A scan made every
     * flush cost the whole queue, and a device that never acknowledged made it quadratic.
     */
    take(): SequencedMessage[] {
        if (!this.#ready) return []
        const first = this.#unacked[0]
        if (first === undefined) return []
        const out: SequencedMessage[] = []
        for (let i = Math.max(0, this.#sentUpTo - first.id + 1); i < this.#unacked.length; i++) {
            this.#examined++
            out.push(this.#unacked[i] as SequencedMessage)
        }
        const last = out[out.length - 1]
        if (last !== undefined) this.#sentUpTo = last.id
        return out
    }
}

/**
 * The verdict on a sequenced message: deliver it, drop it as a duplicate (acknowledge
 * again), or "lost": an id further ahead, so the receiver forgot the stream and the caller
 * sends STREAM with peer_stream_id 0 (the sender starts a new stream); "ignore": a message
 * of the stream forgotten so (dropped, not acknowledged).
 */
export type Arrival = "deliver" | "duplicate" | "lost" | "ignore"

/** Per-session flags of a ReceiveStream (copied with it). */
export interface ReceiveSession {
    /** the peer's STREAM arrived in this session */
    synced: boolean
    /** a gap made the receiver forget the stream, and nothing was delivered since */
    lost: boolean
}

/** The receiving half. */
export class ReceiveStream {
    #state: ReceiveState
    #session: ReceiveSession

    /** @param session the per-session flags, when copying a receiver within a session */
    constructor(state: ReceiveState = { streamId: 0, delivered: 0 }, session: ReceiveSession = { synced: false, lost: false }) {
        this.#state = { ...state }
        this.#session = { ...session }
    }

    /** A copy of the state to persist. */
    get state(): ReceiveState {
        return { ...this.#state }
    }

    /** A copy of the per-session flags. */
    get session(): ReceiveSession {
        return { ...this.#session }
    }

    get synced(): boolean {
        return this.#session.synced
    }

    sessionEnd(): void {
        this.#session.synced = false
    }

    /**
     * The peer's STREAM: "if the peer's stream_id differs from the one it was receiving, it
     * starts over at 0 for the new stream". Returns true if the state changed.
     */
    peerStream(streamId: number): boolean {
        this.#session.synced = true
        if (streamId === this.#state.streamId) return false
        this.#state = { streamId, delivered: 0 }
        return true
    }

    /**
     * "The receiver delivers a message only if its id is exactly one more than the last id it
     * delivered from that stream; an id at or below it is a duplicate." An id further ahead
     * means this receiver lost its state for the stream: it forgets the stream ("lost") and
     * ignores that stream's messages until the peer's next STREAM. A gap again before anything
     * was delivered since is a protocol error (the sender did not start a new stream at 1),
     * as is a message before the peer's STREAM.
     */
    arrive(id: number): Arrival {
        if (!this.#session.synced) throw new AppProtocolError("sequenced message before STREAM")
        if (this.#state.streamId === 0 && this.#session.lost) return "ignore"
        if (id <= this.#state.delivered) return "duplicate"
        if (id !== this.#state.delivered + 1) {
            if (this.#session.lost) throw new AppProtocolError(`id ${id} after ${this.#state.delivered}`)
            this.#session.lost = true
            this.#state = { streamId: 0, delivered: 0 }
            return "lost"
        }
        this.#state.delivered = id
        this.#session.lost = false
        return "deliver"
    }
}
