// The in-memory twins of the receiving-state store and the outbox (tests, one process). Each
// operation runs to completion without an await, so it is atomic like the stores' transactions.
import { nextStreamId } from "./stream-id.js"
import {
    QueueFull,
    type AppStateStore,
    type OutboundMessage,
    type Outbox,
    type OutboxStream,
    type QueuedMessage,
    type ReceiveState,
} from "./types.js"

/** Per-device receiving state, in a Map. */
export class MemoryAppStateStore implements AppStateStore {
    readonly #m = new Map<string, ReceiveState>()

    async get(deviceId: string): Promise<ReceiveState | undefined> {
        const s = this.#m.get(deviceId)
        return s && { ...s }
    }

    async put(deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): Promise<boolean> {
        const cur = this.#m.get(deviceId)
        if (!sameState(cur, prev)) return false
        this.#m.set(deviceId, { streamId: next.streamId, delivered: next.delivered })
        return true
    }

    async close(): Promise<void> {}
}

/** True when both are absent or both hold the same state. */
export function sameState(a: ReceiveState | undefined, b: ReceiveState | undefined): boolean {
    if (a === undefined || b === undefined) return a === b
    return a.streamId === b.streamId && a.delivered === b.delivered
}

interface MemStream {
    streamId: number
    nextId: number
    messages: QueuedMessage[]
}

/** A copy of a message with another id (payloads copied: callers may reuse their buffers). */
export function withId(m: OutboundMessage, id: number): QueuedMessage {
    return m.kind === "message"
        ? { kind: "message", id, topic: m.topic, payload: Buffer.from(m.payload) }
        : { kind: "response", id, requestId: m.requestId, status: m.status, payload: Buffer.from(m.payload) }
}

/** The outbox, in a Map. */
export class MemoryOutbox implements Outbox {
    readonly #m = new Map<string, MemStream>()

    async enqueue(deviceId: string, m: OutboundMessage, max: number): Promise<QueuedMessage & { streamId: number }> {
        let s = this.#m.get(deviceId)
        if (s === undefined) this.#m.set(deviceId, (s = { streamId: nextStreamId(0), nextId: 1, messages: [] }))
        if (s.messages.length >= max) throw new QueueFull(deviceId)
        const q = withId(m, s.nextId++)
        s.messages.push(q)
        return { ...withId(q, q.id), streamId: s.streamId }
    }

    async enqueueAll(deviceId: string, ms: readonly OutboundMessage[], max: number): Promise<number> {
        let n = 0
        for (const m of ms) {
            const s = this.#m.get(deviceId)
            if (s !== undefined && s.messages.length >= max) break
            await this.enqueue(deviceId, m, max)
            n++
        }
        return n
    }

    async total(): Promise<number> {
        let n = 0
        for (const s of this.#m.values()) n += s.messages.length
        return n
    }

    async pending(deviceId: string, after = 0): Promise<OutboxStream> {
        const s = this.#m.get(deviceId)
        if (s === undefined) return { streamId: 0, nextId: 1, messages: [] }
        return { streamId: s.streamId, nextId: s.nextId, messages: s.messages.filter(q => q.id > after).map(q => withId(q, q.id)) }
    }

    async ack(deviceId: string, streamId: number, id: number, strict: boolean): Promise<number> {
        const s = this.#m.get(deviceId)
        if (s === undefined || s.streamId !== streamId) return 0
        if (id >= s.nextId) {
            if (strict) throw new RangeError(`outbox: ACK ${id} of a message never sent`)
            id = s.nextId - 1
        }
        let n = 0
        while (n < s.messages.length && (s.messages[n] as QueuedMessage).id <= id) n++
        s.messages.splice(0, n)
        return n
    }

    async restart(deviceId: string, dropResponses: boolean): Promise<OutboxStream & { dropped: number }> {
        const s = this.#m.get(deviceId) ?? { streamId: 0, nextId: 1, messages: [] }
        const keep = dropResponses ? s.messages.filter(q => q.kind !== "response") : s.messages
        const dropped = s.messages.length - keep.length
        const next: MemStream = {
            streamId: nextStreamId(s.streamId),
            nextId: keep.length + 1,
            messages: keep.map((q, i) => withId(q, i + 1)),
        }
        this.#m.set(deviceId, next)
        return { streamId: next.streamId, nextId: next.nextId, messages: next.messages.map(q => withId(q, q.id)), dropped }
    }

    async count(deviceId: string): Promise<number> {
        return this.#m.get(deviceId)?.messages.length ?? 0
    }

    async clear(deviceId: string): Promise<void> {
        this.#m.delete(deviceId)
    }
}
