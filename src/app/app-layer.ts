// The device's application layer (PROTOCOL.md 12), independent of any connection: the
// outbound stream (PUBLISH, REQUEST), the inbound stream (MESSAGE, RESPONSE), cumulative ACKs
// and RESPONSE matching. The link (../link.ts) feeds it DATA contents and asks it what to
// send; tests drive it directly.
//
// Per session: sessionStart() gives the first DATA content (STREAM and the first queued
// messages, small enough for resumption early data; the client sends it as early data only
// on a resumption whose ticket age is known, else as the session's first DATA record: the
// STREAM always goes first, 12.1); every DATA content from the gateway
// goes to onData(); nextContent() gives the next content to send (a coalesced ACK, then the
// queued messages not yet sent on this session), until it returns undefined.
//
// ACKs are batched: receiving sets `ackDue`; the link sends one ACK (the highest id
// delivered) after it has processed every record that was waiting, so a burst of N messages
// costs one ACK. Duplicates are acknowledged again ("dropped, acknowledged again").
//
// A STREAM can be due again within a session (`streamDue`, sent before anything else): when
// the gateway's STREAM shows that it lost its receiving state for this boot's stream (the
// stream restarts, renumbered, 12.1), and when a gap shows that this side lost its state for
// the gateway's stream (then `peer_stream_id` is 0).
import * as ds from "@devicescript/core"
import { RandomSource } from "../crypto/random"
import {
    ACK_MSG_LEN,
    AppError,
    AppKind,
    AppMessage,
    AppProtocolError,
    decodeData,
    encodeAck,
    encodeStream,
    MAX_APP_MSG_LEN,
    MAX_EARLY_CONTENT,
    STATUS_GATEWAY_ERROR,
    STREAM_MSG_LEN,
} from "./codec"
import { Arrival, InboundStream } from "./inbound"
import { OutboundStream } from "./outbound"

/** A RESPONSE as the application sees it: an upstream HTTP status and body. */
export interface Response {
    /** the upstream's HTTP status, 100..599 */
    status: number
    payload: Buffer
}

/** A request failed: the gateway answered status 0 (12.2), or no answer came in time. */
export class RequestError extends Error {
    /** an {@link AppError} code, or {@link REQUEST_TIMEOUT} */
    code: number
    constructor(code: number, message: string) {
        super(message)
        this.name = "RequestError"
        this.code = code
    }
}

/** {@link RequestError.code} when no RESPONSE arrived before the timeout (local, not on the wire). */
export const REQUEST_TIMEOUT = 0x100

/** Handler of a MESSAGE from the gateway; runs on the link's receiving fiber. */
export type MessageHandler = (topic: string, payload: Buffer) => Promise<void> | void

/** Options of {@link AppLayer}. */
export interface AppLayerOptions {
    /** bound on unacknowledged outbound messages (default 32) */
    maxQueueCount?: number
    /** bound on their encoded bytes (default 4096) */
    maxQueueBytes?: number
    random?: RandomSource
    /** fixed outbound stream id (tests) */
    streamId?: number
}

/** The application state of one device program: lives across connections. */
export class AppLayer {
    readonly outbound: OutboundStream
    readonly inbound: InboundStream = new InboundStream()
    /** an ACK is owed for messages received on this session */
    ackDue = false
    /** a STREAM must go before anything else (the stream restarted, or a gap was seen) */
    streamDue = false
    /** delivered to the MESSAGE handler and matched RESPONSEs, counters for logs and tests */
    messagesDelivered = 0
    duplicates = 0
    /** times the outbound stream restarted because the gateway lost its receiving state */
    streamRestarts = 0
    private handlers: MessageHandler[] = []
    // Pending requests (parallel arrays: no Map on the VM).
    private reqIds: number[] = []
    private reqFibers: ds.Fiber[] = []
    private reqResults: AppMessage[] = []

    constructor(opts?: AppLayerOptions) {
        const o = opts || {}
        this.outbound = new OutboundStream({
            maxCount: o.maxQueueCount,
            maxBytes: o.maxQueueBytes,
            random: o.random,
            streamId: o.streamId,
        })
    }

    /** Adds a MESSAGE handler. */
    onMessage(h: MessageHandler): void {
        this.handlers.push(h)
    }

    /**
     * A session starts: the DATA content to send first (STREAM, then as many queued messages
     * as fit in resumption early data), in order; those messages count as sent on it.
     */
    sessionStart(): Buffer {
        this.outbound.sessionStart()
        this.inbound.sessionStart()
        this.ackDue = false // STREAM's `delivered` says it all
        this.streamDue = false
        const parts: Buffer[] = [encodeStream(this.outbound.streamId, this.inbound.streamId, this.inbound.delivered)]
        const used = this.outbound.take(MAX_EARLY_CONTENT - STREAM_MSG_LEN, parts)
        return concat(parts, STREAM_MSG_LEN + used)
    }

    /** Whether nextContent() has something to send. */
    hasOutput(): boolean {
        return this.streamDue || this.ackDue || this.outbound.hasUnsent()
    }

    /**
     * The next DATA content to send on this session (a due STREAM first, then an owed ACK,
     * then queued messages not yet sent on it, whole), or undefined when there is nothing.
     */
    nextContent(): Buffer | undefined {
        const parts: Buffer[] = []
        let used = 0
        if (this.streamDue) {
            // "its own STREAM, carrying the new stream_id, before any renumbered message"
            parts.push(encodeStream(this.outbound.streamId, this.inbound.streamId, this.inbound.delivered))
            used += STREAM_MSG_LEN
            this.streamDue = false
        }
        if (this.ackDue) {
            parts.push(encodeAck(this.inbound.delivered))
            used += ACK_MSG_LEN
            this.ackDue = false
        }
        used += this.outbound.take(MAX_APP_MSG_LEN - used, parts)
        if (parts.length === 0) return undefined
        return concat(parts, used)
    }

    /**
     * A DATA content from the gateway: STREAM, ACKs, and sequenced messages, delivered in
     * order (MESSAGE to the handlers, RESPONSE to its waiting request) and at most once.
     * The whole content is decoded before anything is delivered.
     * @throws AppProtocolError: the link closes the session (PROTOCOL_ERROR)
     */
    async onData(content: Buffer): Promise<void> {
        const msgs = decodeData(content)
        for (const m of msgs) {
            if (m.kind === AppKind.STREAM) {
                this.inbound.peerStream(m.streamId)
                const first = this.outbound.peerStream(m.peerStreamId, m.delivered)
                if (first > 0) {
                    // the gateway lost its receiving state: a new stream, renumbered
                    this.renumberRequests(first)
                    this.streamDue = true
                    this.streamRestarts++
                }
            } else if (m.kind === AppKind.ACK) {
                this.outbound.ack(m.id)
            } else {
                const a = this.inbound.arrive(m.id)
                if (a === Arrival.IGNORE) continue
                if (a === Arrival.LOST) {
                    // this side lost its state for the gateway's stream: say so (peer 0)
                    this.streamDue = true
                    continue
                }
                this.ackDue = true
                if (a === Arrival.DUPLICATE) {
                    this.duplicates++
                    continue
                }
                if (m.kind === AppKind.RESPONSE) this.resolve(m)
                else await this.deliver(m)
            }
        }
    }

    private async deliver(m: AppMessage): Promise<void> {
        this.messagesDelivered++
        for (const h of this.handlers) {
            try {
                await h(m.topic, m.payload)
            } catch (e) {
                // a failing handler does not undo the delivery (the id is counted)
                console.log("tether: message handler failed: " + (e as Error).message)
            }
        }
    }

    /**
     * The outbound stream restarted, its queue renumbered from 1 where `first` was: a waiting
     * request follows its REQUEST. One whose REQUEST was acknowledged before has no new id
     * (0 matches nothing): it waits until its timeout, its RESPONSE went with the gateway's
     * state.
     */
    private renumberRequests(first: number): void {
        for (let i = 0; i < this.reqIds.length; i++) {
            const id = this.reqIds[i]
            this.reqIds[i] = id >= first ? id - first + 1 : 0
        }
    }

    private resolve(m: AppMessage): void {
        const i = this.reqIds.indexOf(m.requestId)
        if (i < 0) return // timed out already, or from before a restart of this program
        this.reqResults[i] = m
        const f = this.reqFibers[i]
        if (f.suspended) f.resume(undefined)
    }

    /**
     * Queues a REQUEST and waits for its RESPONSE.
     * @throws QueueFullError when the queue is full; RequestError (code REQUEST_TIMEOUT)
     *     after `timeoutMs`, or with the gateway's AppError code on status 0
     */
    async request(route: string, payload: Buffer, timeoutMs: number, kick: () => void): Promise<Response> {
        const id = this.outbound.enqueue(AppKind.REQUEST, route, payload)
        // the entry is found by its fiber (one request per fiber at a time): its id changes
        // when the stream restarts
        const self = ds.Fiber.self()
        this.reqIds.push(id)
        this.reqFibers.push(self)
        this.reqResults.push(undefined)
        kick()
        const deadline = ds.millis() + timeoutMs
        let r: AppMessage = undefined
        try {
            for (;;) {
                r = this.reqResults[this.reqFibers.indexOf(self)]
                if (r !== undefined) break
                const left = deadline - ds.millis()
                if (left <= 0) break
                await ds.suspend(left)
            }
        } finally {
            const i = this.reqFibers.indexOf(self)
            this.reqIds.insert(i, -1)
            this.reqFibers.insert(i, -1)
            this.reqResults.insert(i, -1)
        }
        if (r === undefined) throw new RequestError(REQUEST_TIMEOUT, "tether: request " + id + " timed out")
        if (r.status === STATUS_GATEWAY_ERROR) {
            const code = r.payload.length === 1 ? r.payload[0] : AppError.UPSTREAM_FAILED
            throw new RequestError(code, "tether: request " + id + " failed at the gateway, code " + code)
        }
        return { status: r.status, payload: r.payload }
    }

    /** Queues a PUBLISH. @returns its id @throws QueueFullError, RangeError */
    publish(topic: string, payload: Buffer): number {
        return this.outbound.enqueue(AppKind.PUBLISH, topic, payload)
    }
}

function concat(parts: Buffer[], total: number): Buffer {
    if (parts.length === 1) return parts[0]
    const out = Buffer.alloc(total)
    let off = 0
    for (const p of parts) {
        out.blitAt(off, p, 0, p.length)
        off += p.length
    }
    return out
}

export { AppProtocolError }
