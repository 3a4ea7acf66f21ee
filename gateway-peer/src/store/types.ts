// The gateway's store: every piece of state a node needs from the other nodes of its cluster
// (PROTOCOL.md 6.4, 12.1), behind interfaces with three implementations: in memory (tests),
// SQLite (one node, the embedded default) and PostgreSQL (a cluster). Every operation is
// asynchronous and atomic in every implementation; none is cached per process, so two nodes
// sharing a store see one state.
//
//   registry     devices, generations, pseudonyms (registry/registry.ts)
//   receiving    per device, the receiving state of the device's stream (compare-and-set)
//   outbox       per device, the gateway's stream: its id and its unacknowledged messages
//   sessions     the live view: which node holds which device's session
//   identity and ticket keys: the cluster's static key pair and its ticket-key ring
//   events       what other nodes (or CLI processes) changed: revocations, key rotations,
//                messages queued, sessions taken over
import type { EventEmitter } from "node:events"
import type { KeyPair } from "../crypto/x25519.js"
import type { Registry } from "../registry/registry.js"
import type { TicketKeySet } from "../tickets.js"

/** What a receiver keeps of the peer's stream (PROTOCOL.md 12.1). */
export interface ReceiveState {
    /** the peer's stream_id, 0 if none yet */
    streamId: number
    /** the highest id delivered from it */
    delivered: number
}

/** Per-device receiving state of the device's stream. */
export interface AppStateStore {
    get(deviceId: string): Promise<ReceiveState | undefined>
    /**
     * Compare-and-set: stores `next` only if the stored state is still `prev` (undefined: none
     * stored). Stored before the messages it counts are delivered or acknowledged.
     * @returns false (nothing changed) when another writer got there first: read again
     */
    put(deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): Promise<boolean>
    close(): Promise<void>
}

/** A gateway message to a device, as the outbox keeps it (PROTOCOL.md 12.2). */
export type OutboundMessage =
    | { readonly kind: "message"; readonly topic: string; readonly payload: Buffer }
    | { readonly kind: "response"; readonly requestId: number; readonly status: number; readonly payload: Buffer }

/** A queued message with its id in the gateway's current stream to the device. */
export type QueuedMessage = OutboundMessage & { readonly id: number }

/** The gateway's stream to one device: its id and what is unacknowledged, in order. */
export interface OutboxStream {
    readonly streamId: number
    /** the id the next message gets */
    readonly nextId: number
    /** unacknowledged messages with id > `after`, in order (ids are consecutive) */
    readonly messages: readonly QueuedMessage[]
}

/** enqueue's refusal: the device has `max` unacknowledged messages already. */
export class QueueFull extends Error {
    constructor(readonly deviceId: string) {
        super("outbox: the device's queue is full")
        this.name = "QueueFull"
    }
}

/**
 * The durable outbound queue (PROTOCOL.md 12.1): a message is stored before enqueue resolves,
 * so whoever queued it (an operator's `send`, an upstream's answer) is told only once it would
 * survive any node's death; whichever node holds the device's session sends it. Ids are
 * consecutive within a stream; enqueue, ack and restart are each one atomic update, serialised
 * per device across every node.
 */
export interface Outbox {
    /**
     * Numbers and stores a message; creates the device's stream (a random id) if it has none.
     * @throws QueueFull when `max` messages are unacknowledged
     */
    enqueue(deviceId: string, m: OutboundMessage, max: number): Promise<QueuedMessage & { streamId: number }>
    /**
     * Numbers and stores, in one atomic update, as many of `ms` (in order) as fit under `max`
     * unacknowledged messages: the batch of RESPONSEs a burst of upstream answers makes.
     * @returns how many were stored (the first `n` of `ms`); the rest were not
     */
    enqueueAll(deviceId: string, ms: readonly OutboundMessage[], max: number): Promise<number>
    /**
     * The stream and its unacknowledged messages with id > `after` (default 0: all); stream id
     * 0 (and nextId 1, no messages) when the device has no stream yet.
     */
    pending(deviceId: string, after?: number): Promise<OutboxStream>
    /**
     * A cumulative ACK in stream `streamId`: releases every message with id <= `id`.
     * @returns how many were released (0 if the stream is no longer current)
     * @throws RangeError if `id` >= nextId (a message never sent) and `strict`
     */
    ack(deviceId: string, streamId: number, id: number, strict: boolean): Promise<number>
    /**
     * Starts a new stream: a fresh random id different from the old one, the unacknowledged
     * messages renumbered 1, 2, ... in order; with `dropResponses`, RESPONSEs are dropped first
     * (they answered a device stream that is gone). A device without a stream gets one.
     * @returns the new stream and how many RESPONSEs were dropped
     */
    restart(deviceId: string, dropResponses: boolean): Promise<OutboxStream & { dropped: number }>
    /** Unacknowledged messages of a device (0 if none). */
    count(deviceId: string): Promise<number>
    /** Unacknowledged messages of every device (the metrics' queue depth). */
    total(): Promise<number>
    /** Everything of a device (an unpaired or re-paired device's queue). */
    clear(deviceId: string): Promise<void>
}

/** A session in the live view (`tether-gateway status`). */
export interface SessionRow {
    readonly deviceId: string
    readonly node: string
    /** the node's own id for the session (unique on that node) */
    readonly sessionId: string
    /** milliseconds since the Unix epoch */
    readonly since: number
    readonly remote: string
    readonly lastActivity: number
    /** the generation of the ticket issued to this session */
    readonly generation: number
    readonly resumed: boolean
}

/** A `sessions` row as either database returns it (bigints as strings, booleans as 0/1). */
export interface SessionDbRow {
    device_id: string
    node: string
    session_id: string
    since: number | string
    remote: string
    last_activity: number | string
    generation: number | string
    resumed: boolean | number
}

/** A `sessions` row as a SessionRow. */
export function sessionFromRow(r: SessionDbRow): SessionRow {
    return {
        deviceId: r.device_id,
        node: r.node,
        sessionId: r.session_id,
        since: Number(r.since),
        remote: r.remote,
        lastActivity: Number(r.last_activity),
        generation: Number(r.generation),
        resumed: r.resumed === true || r.resumed === 1,
    }
}

/** The live view: who holds which device's session. One row per device: one live session. */
export interface SessionDirectory {
    /**
     * Records `row` as the device's live session, replacing any other (on any node).
     * @returns the row it replaced, if it was another session (another node is told)
     */
    claim(row: SessionRow): Promise<SessionRow | undefined>
    /** Removes the device's row if it is still this session's. */
    release(deviceId: string, node: string, sessionId: string): Promise<void>
    /** Updates last_activity of this node's sessions. */
    touch(node: string, activity: ReadonlyMap<string, number>): Promise<void>
    /** Removes every row of a node (at its start and clean stop: its sessions are gone). */
    releaseNode(node: string): Promise<void>
    /** The device's row: the session the store last recorded for it. */
    get(deviceId: string): Promise<SessionRow | undefined>
    list(): Promise<SessionRow[]>
}

/** What the store tells a node about changes made elsewhere. */
export interface StoreEvents {
    /** a device was revoked (or its tickets expired): close its session if held here */
    revoked: [deviceId: string]
    /** the ticket-key ring changed: reload it */
    keys: []
    /** messages were queued to a device: send them if its session is here */
    queued: [deviceId: string]
    /** a device's session moved to `node`/`sessionId`: close any other session of it here */
    claimed: [deviceId: string, node: string, sessionId: string]
    /** the store became unreachable (true) or reachable again (false) */
    unavailable: [down: boolean]
    /** notifications may have been missed (a reconnect): read revocations and keys again */
    resync: []
}

/**
 * Emits an event that came from another process (a NOTIFY payload, a row of the SQLite event
 * log) on `events`: `name` and its arguments as announce() sent them. Anything else (an unknown
 * name, missing arguments) is dropped: it cannot be acted on.
 */
export function emitStoreEvent(events: EventEmitter<StoreEvents>, name: unknown, args: unknown): void {
    const a = Array.isArray(args) ? args.map(String) : []
    if (name === "revoked" && a[0] !== undefined) events.emit("revoked", a[0])
    else if (name === "keys") events.emit("keys")
    else if (name === "queued" && a[0] !== undefined) events.emit("queued", a[0])
    else if (name === "claimed" && a.length === 3) events.emit("claimed", a[0] as string, a[1] as string, a[2] as string)
    else if (name === "resync") events.emit("resync")
}

/** A store failure a node cannot decide around: answer BUSY and try again later. */
export class StoreUnavailable extends Error {
    constructor(readonly reason: string) {
        super(`store: unavailable (${reason})`)
        this.name = "StoreUnavailable"
    }
}

/** The whole store a node runs on. */
export interface GatewayStore {
    readonly kind: "memory" | "sqlite" | "postgres"
    /** where it is, for log lines: a path, or a URL without its password */
    readonly where: string
    readonly registry: Registry
    readonly receiving: AppStateStore
    readonly outbox: Outbox
    readonly sessions: SessionDirectory
    readonly events: EventEmitter<StoreEvents>
    /** The cluster's static key pair. */
    loadIdentity(): Promise<KeyPair>
    /** The ticket-key ring as stored now. */
    loadTicketKeys(): Promise<TicketKeySet>
    /**
     * Changes the ring, serialised across the cluster (ids unique across nodes): `fn` gets the
     * stored ring, changes it and returns; the result is stored and every node is told.
     */
    updateTicketKeys<T>(fn: (keys: TicketKeySet) => T): Promise<T>
    /** Starts delivering `events` (a node that serves; one-shot commands do not). */
    watch(): Promise<void>
    /** Tells every node (this one included) of a change this process made. */
    announce<K extends keyof StoreEvents>(event: K, ...args: StoreEvents[K]): Promise<void>
    close(): Promise<void>
}
