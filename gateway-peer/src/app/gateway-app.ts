// The gateway's application layer (PROTOCOL.md 12): per device, the receiving half of the
// device's stream (an AppStateStore, written by compare-and-set) and the sending half of the
// gateway's stream (an Outbox: stored before whoever queued a message is told, resent across
// reconnects by whichever process holds the device's session); PUBLISH to the sinks (the
// durable `sink` first, the MQTT bridge: awaited before the receiving state is stored and the
// device acknowledged; then a log line and the `publish` event), REQUEST through the funnel
// (upstream.ts), MESSAGE from sendMessage(). Nothing of the streams is cached per process
// beyond one session: two processes on one store see one state.
//
// It knows nothing of sockets: the server passes each DATA content with an AppLink back to
// the device (serve.ts wires it to startGateway's onData, send and closeDevice). The device's
// STREAM, its first message after every handshake, marks a new session.
import { EventEmitter } from "node:events"
import { Code } from "../wire.js"
import {
    AppError,
    AppKind,
    AppProtocolError,
    decodeApp,
    encodeApp,
    isResponseStatus,
    packApp,
    MAX_APP_BODY,
    MAX_NAME_LEN,
    MAX_RESPONSE_PAYLOAD,
    NAME_LEN_LEN,
    type AppMessage,
    type SequencedMessage,
} from "./codec.js"
import { QueueFull, StoreUnavailable, type AppStateStore, type Outbox, type QueuedMessage, type ReceiveState } from "../store/types.js"
import { LogLimiter } from "./log-limit.js"
import { ReceiveStream, type ReceiveSession } from "./stream.js"
import { allowedRoute, callUpstream, gatewayError, type Route, type UpstreamConfig, type UpstreamResult } from "./upstream.js"

/** An error's name for a log line: never its message, which may quote what it was given. */
function errorName(err: unknown): string {
    return err instanceof Error ? err.name : typeof err
}

/** One session's way back to its device. */
export interface AppLink {
    /** Sends one DATA record with this content. */
    send(content: Buffer): void
    /** Sends CLOSE(code) and closes the connection. */
    close(code: number): void
}

/** The device a session belongs to. */
export interface AppDevice {
    /** device id, 16 hex characters */
    readonly id: string
    readonly name: string
}

/** A PUBLISH delivered to the gateway's sinks. */
export interface PublishEvent {
    readonly device: string
    readonly deviceId: string
    readonly id: number
    readonly topic: string
    readonly payload: Buffer
}

/**
 * A PUBLISH handed to the gateway's durable sink (GatewayAppOptions.sink): the device's stream
 * id and message id name it, so a consumer can remove a duplicate (PROTOCOL.md 12.3).
 */
export interface SinkMessage {
    readonly device: string
    readonly deviceId: string
    /** the device's stream id (the receiving state's, after the record) */
    readonly stream: number
    readonly id: number
    readonly topic: string
    readonly payload: Buffer
}

/**
 * The sink could not take a batch (its broker is unreachable, it did not answer in time): the
 * device's session is closed with CLOSE(BUSY) and the device resends what was not acknowledged.
 */
export class SinkUnavailable extends Error {
    constructor(message = "sink unavailable") {
        super(message)
        this.name = "SinkUnavailable"
    }
}

/** The device acknowledged the gateway's messages up to `id`. */
export interface AckEvent {
    readonly device: string
    readonly deviceId: string
    readonly id: number
}

/** The events of GatewayApp.events. */
export interface AppEvents {
    publish: [PublishEvent]
    acked: [AckEvent]
}

/** A JSON-lines logger: one object per line. Never keys, tickets or payloads. */
export type LogFn = (line: Record<string, unknown>) => void

/** Options of GatewayApp. */
export interface GatewayAppOptions {
    /** the receiving state of each device's stream (compare-and-set, shared by every node) */
    readonly receiving: AppStateStore
    /** the gateway's stream to each device (durable, shared by every node) */
    readonly outbox: Outbox
    readonly config: UpstreamConfig
    /** name -> device, for sendMessage (the registry) */
    readonly lookup: (name: string) => Promise<AppDevice | undefined>
    readonly log?: LogFn
    readonly fetch?: typeof fetch
    /**
     * most unacknowledged gateway messages kept per device, MESSAGEs and RESPONSEs together
     * (default 256, PROTOCOL.md 12.2): sendMessage past it throws; a RESPONSE past it closes
     * the device's session with CLOSE(PROTOCOL_ERROR) instead of growing the queue
     */
    readonly maxQueue?: number
    /** most upstream calls in flight per device; more are answered UPSTREAM_FAILED (default 16) */
    readonly maxInflight?: number
    /**
     * A message was stored for a device whose session is not in this process (another node may
     * hold it): a cluster node tells the others (the store's `queued` event, then their wake()).
     */
    readonly onQueued?: (deviceId: string) => void
    /**
     * A durable sink (the MQTT bridge): each record's new PUBLISHes, in the device's order, are
     * given to it and the promise awaited before the receiving state that counts them is stored
     * and before the device is acknowledged (PROTOCOL.md 12.3). A rejection (SinkUnavailable, or
     * any error) closes the session with CLOSE(BUSY): nothing was acknowledged, the device
     * resends. The sink must bound its own wait.
     */
    readonly sink?: (batch: readonly SinkMessage[]) => Promise<void>
}

/**
 * What this process keeps per device: nothing of the streams (they are in the store), only
 * which of its sessions the gateway's stream goes to, the order of work, and local limits.
 */
interface DeviceState {
    device: AppDevice
    /** the link of the session that sent the device's latest STREAM here: the gateway's stream goes there */
    link: AppLink | undefined
    /** serialises DATA processing, RESPONSEs and sending for this device in this process */
    chain: Promise<void>
    /** upstream calls in flight for this device */
    inflight: number
    /** RESPONSEs waiting for the chain step that stores them (one transaction per batch) */
    answers: Answer[]
    /** that step, while it has not started */
    answering: Promise<void> | undefined
    /** rate limits of the log lines this device can cause once per message, by outcome */
    readonly limits: Map<string, LogLimiter>
    /** DATA contents received and not yet taken by a chain step, in arrival order */
    incoming: Incoming[]
    /** a chain step that takes `incoming` is queued and has not started */
    taking: boolean
}

/** A DATA content waiting for its device's chain. */
interface Incoming {
    readonly content: Buffer
    readonly link: AppLink
    readonly early: boolean
}

/** A RESPONSE on its way to the outbox. */
interface Answer {
    link: AppLink
    /** the device stream the REQUEST came from; undefined: answered within its record */
    stream: number | undefined
    requestId: number
    res: UpstreamResult
}

/** The default bound of a device's queue of unacknowledged gateway messages (PROTOCOL.md 12.2). */
export const DEFAULT_MAX_QUEUE = 256

/**
 * Checks that a MESSAGE to a device fits: a topic of 1..MAX_NAME_LEN bytes, and topic and
 * payload within one record. @throws RangeError naming `who`
 */
export function checkMessage(who: string, topic: string, payload: Buffer): void {
    const topicLen = Buffer.byteLength(topic, "utf8")
    if (topicLen === 0 || topicLen > MAX_NAME_LEN) throw new RangeError(`${who}: a topic is 1..${MAX_NAME_LEN} bytes`)
    if (NAME_LEN_LEN + topicLen + payload.length > MAX_APP_BODY) throw new RangeError(`${who}: topic and payload do not fit one record`)
}

/** What is kept per session (per AppLink). */
interface LinkState {
    /** the ReceiveStream's flags: STREAM seen in this session, a gap seen */
    flags: ReceiveSession
    /** the receiving state as this session last read or stored it (the CAS's `prev`) */
    stored: ReceiveState | undefined
    /** `stored` was read from the store (at the session's first record) */
    loaded: boolean
    /** the gateway's stream id that this session's latest gateway STREAM named (0: none yet) */
    announced: number
    /** the highest id of that stream already sent in this session */
    sentUpTo: number
}

/** The outcome of one pass over a record's messages. */
interface Pass {
    recv: ReceiveStream
    /** the receiving state changed, or something is delivered: the CAS must store it first */
    write: boolean
    ack: boolean
    deliver: SequencedMessage[]
    out: Buffer[]
    /** the record carried a STREAM: this session becomes the device's current one here */
    stream: boolean
    /** the gateway's stream id for the STREAM sent in answer */
    gatewayStream: number
}

/** Where a STREAM goes in a reply; replaced by the STREAM of the state after the whole record. */
const STREAM_AT_END = Buffer.alloc(0)
/** `after` for Outbox.pending that returns the stream's header only (ids are uint32). */
const HEADER_ONLY = 2 ** 32
/** compare-and-set attempts for one record before the session is closed (store-conflict) */
const CAS_ATTEMPTS = 8

/** A queued message as it goes on the wire. */
function wireMessage(q: QueuedMessage): SequencedMessage {
    return q.kind === "message"
        ? { kind: AppKind.MESSAGE, id: q.id, topic: q.topic, payload: q.payload }
        : { kind: AppKind.RESPONSE, id: q.id, requestId: q.requestId, status: q.status, payload: q.payload }
}

/** The application layer of one gateway process. */
export class GatewayApp {
    /** `publish` and `acked` events: the in-process sink API. */
    readonly events = new EventEmitter<AppEvents>()
    #config: UpstreamConfig
    readonly #devices = new Map<string, DeviceState>()
    readonly #inflight = new Set<Promise<void>>()
    readonly #log: LogFn
    readonly #maxQueue: number
    /** links of sessions the app closed: what they still deliver is dropped */
    readonly #closed = new WeakSet<AppLink>()
    /** per session: its flags, its view of the receiving state, what it was sent */
    readonly #sessions = new WeakMap<AppLink, LinkState>()

    constructor(readonly opts: GatewayAppOptions) {
        this.#config = opts.config
        this.#log = opts.log ?? (() => {})
        this.#maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE
    }

    /**
     * Logs a line a device can cause once per message, at most a burst and then one a second
     * per device and outcome; a line let through says how many were held back before it.
     */
    #logLimited(d: DeviceState, line: Record<string, unknown> & { outcome: string }): void {
        let l = d.limits.get(line.outcome)
        if (l === undefined) d.limits.set(line.outcome, (l = new LogLimiter()))
        const held = l.take()
        if (held !== undefined) this.#log({ event: "app", ...line, device: d.device.name, suppressed: held > 0 ? held : undefined })
    }

    /** Replaces the route configuration (takes effect for the next REQUEST). */
    setConfig(config: UpstreamConfig): void {
        this.#config = config
    }

    #state(device: AppDevice): DeviceState {
        let d = this.#devices.get(device.id)
        if (d === undefined) {
            d = {
                device,
                link: undefined,
                chain: Promise.resolve(),
                inflight: 0,
                answers: [],
                answering: undefined,
                limits: new Map(),
                incoming: [],
                taking: false,
            }
            this.#devices.set(device.id, d)
        }
        d.device = device
        return d
    }

    #linkState(link: AppLink): LinkState {
        let ls = this.#sessions.get(link)
        if (ls === undefined) {
            ls = { flags: { synced: false, lost: false }, stored: undefined, loaded: false, announced: 0, sentUpTo: 0 }
            this.#sessions.set(link, ls)
        }
        return ls
    }

    /** Runs `fn` after everything queued for the device in this process; never rejects. */
    #onChain(d: DeviceState, fn: () => Promise<void>, where: string): Promise<void> {
        const p = d.chain.then(fn).catch(err => this.#internalError(d, where, err))
        d.chain = p
        return p
    }

    /**
     * A DATA content from `device`, in arrival order (resumption early data first). `link` is
     * the session's own way back: one object per session (per connection), never shared
     * between two sessions of a device, because what is per session is keyed by it. The
     * device's STREAM opens each session ("After every handshake each side first sends
     * STREAM"): the gateway answers with its own STREAM, then resends what is unacknowledged,
     * and `link` becomes the device's current link. A sequenced message on a link whose
     * session has not sent STREAM is a protocol error for that session only.
     */
    data(device: AppDevice, content: Buffer, link: AppLink, early = false): void {
        const d = this.#state(device)
        d.incoming.push({ content, link, early })
        if (!d.taking) this.#takeIncoming(d)
    }

    /**
     * Queues a chain step that takes the device's waiting contents: every content that arrived
     * before the step starts (those of one socket read, of one event-loop turn while the chain
     * was busy) is processed as one batch of the same session: one pass, one sink call, one
     * stored receiving state, one cumulative ACK (issue 15: an ACK and a commit per record cost
     * more than the record). What counts for the device is the same as record by record: the
     * state after the batch is the state after its last record, and it is stored before
     * anything it counts is acknowledged or delivered.
     */
    #takeIncoming(d: DeviceState): void {
        d.taking = true
        d.chain = d.chain.then(() => {
            d.taking = false
            const first = d.incoming[0]
            if (first === undefined) return
            // one session and one kind of delivery per batch; the rest goes to the next step
            let n = 1
            while (n < d.incoming.length && d.incoming[n]!.link === first.link && d.incoming[n]!.early === first.early) n++
            const batch = d.incoming.splice(0, n)
            if (d.incoming.length > 0 && !d.taking) this.#takeIncoming(d)
            return this.#batch(d, batch).catch(err => this.#failed(d, first.link, err))
        })
    }

    /**
     * One batch of a session's contents. A content that does not decode fails the session (as
     * it would record by record), after the contents before it were processed.
     */
    async #batch(d: DeviceState, batch: readonly Incoming[]): Promise<void> {
        const { link, early } = batch[0] as Incoming
        if (this.#closed.has(link)) return
        const msgs: AppMessage[] = []
        let bad: unknown
        for (const b of batch) {
            try {
                const m = decodeApp(b.content, "device")
                for (const x of m) msgs.push(x)
            } catch (err) {
                bad = err
                break
            }
        }
        if (msgs.length > 0) await this.#data(d, msgs, link, early)
        if (bad !== undefined) throw bad
    }

    /**
     * Messages were queued to this device by someone else (another node, a CLI process): if
     * this process holds the device's current link, it sends what that session has not had.
     */
    wake(deviceId: string): void {
        const d = this.#devices.get(deviceId)
        if (d?.link !== undefined) void this.#onChain(d, () => this.#flush(d, []), "wake")
    }

    /**
     * A DATA content failed: a malformed message (AppProtocolError, its message is ours), or
     * anything else (the store, a bug: logged by name). Either way the session is closed with
     * PROTOCOL_ERROR. Never throws: the device's chain must stay a resolved promise.
     */
    #failed(d: DeviceState, link: AppLink, err: unknown): void {
        try {
            if (err instanceof StoreUnavailable || err instanceof SinkUnavailable) {
                // not the device's fault: it resends what was not acknowledged, later
                this.#logLimited(d, { outcome: err instanceof SinkUnavailable ? "sink-unavailable" : "store-unavailable", where: "data" })
                this.#close(d, link, Code.BUSY)
                return
            }
            if (err instanceof AppProtocolError)
                this.#log({ event: "app", outcome: "protocol-error", device: d.device.name, detail: err.message })
            else this.#log({ event: "app", outcome: "internal-error", device: d.device.name, where: "data", detail: errorName(err) })
            this.#close(d, link)
        } catch (e) {
            this.#internalError(d, "close", e)
        }
    }

    /**
     * Closes a session with PROTOCOL_ERROR. The gateway's stream stops going there only if it
     * was going to this session; another session of the device is not this one's error.
     */
    #close(d: DeviceState, link: AppLink, code: Code = Code.PROTOCOL_ERROR): void {
        if (this.#closed.has(link)) return
        this.#closed.add(link)
        if (d.link === link) d.link = undefined
        link.close(code)
    }

    /** The log line of a failure on a path with nobody left to tell. Never throws. */
    #internalError(d: DeviceState, where: string, err: unknown): void {
        try {
            // the store went away: what is stored stays stored, and is sent once it is back
            if (err instanceof StoreUnavailable) this.#logLimited(d, { outcome: "store-unavailable", where })
            else this.#log({ event: "app", outcome: "internal-error", device: d.device.name, where, detail: errorName(err) })
        } catch {
            // the log itself failed: there is nowhere left to say it
        }
    }

    /**
     * The messages of one or more records of a session, in order. `early`: they came as
     * resumption early data (their REQUESTs go upstream with Early-Data: 1).
     */
    async #data(d: DeviceState, msgs: readonly AppMessage[], link: AppLink, early: boolean): Promise<void> {
        if (this.#closed.has(link)) return
        const ls = this.#linkState(link)
        const id = d.device.id
        // "every session of a device continues the same receiving state": read once per
        // session, then kept as this session's view; a stale view only makes the CAS fail
        if (!ls.loaded) {
            ls.stored = await this.opts.receiving.get(id)
            ls.loaded = true
            if (this.#closed.has(link)) return // closed while the store answered
        }
        let pass: Pass | undefined
        // the highest PUBLISH id of this record the sink has taken (a CAS retry gives it only
        // what it has not had)
        let sunk: { stream: number; id: number } | undefined
        for (let attempt = 1; ; attempt++) {
            // the gateway's stream (restart, release) moves once, on the first pass; a retry
            // only recounts the receiving side against the state another session stored
            pass = await this.#pass(d, msgs, link, ls, pass?.gatewayStream)
            if (this.#closed.has(link)) return
            if (!pass.write) break
            const next = pass.recv.state
            // the sink first: what the stored state counts has reached it (PROTOCOL.md 12.3)
            if (this.opts.sink !== undefined) {
                const batch: SinkMessage[] = []
                for (const m of pass.deliver)
                    if (m.kind === AppKind.PUBLISH && (sunk === undefined || sunk.stream !== next.streamId || m.id > sunk.id))
                        batch.push({
                            device: d.device.name,
                            deviceId: id,
                            stream: next.streamId,
                            id: m.id,
                            topic: m.topic,
                            payload: m.payload,
                        })
                if (batch.length > 0) {
                    try {
                        await this.opts.sink(batch)
                    } catch (err) {
                        throw err instanceof SinkUnavailable ? err : new SinkUnavailable(errorName(err))
                    }
                    sunk = { stream: next.streamId, id: batch[batch.length - 1]!.id }
                    if (this.#closed.has(link)) return // closed while the sink answered
                }
            }
            // stored before anything it counts is delivered or acknowledged
            if (await this.opts.receiving.put(id, next, ls.stored)) {
                ls.stored = next
                break
            }
            if (attempt >= CAS_ATTEMPTS) {
                this.#log({ event: "app", outcome: "store-conflict", device: d.device.name, attempts: attempt })
                this.#close(d, link)
                return
            }
            // another session of the device (on this node or another) moved the state first
            ls.stored = await this.opts.receiving.get(id)
            if (this.#closed.has(link)) return
        }
        const state = pass.recv.state
        ls.flags = pass.recv.session
        if (pass.stream) {
            // every device STREAM opens a session and makes its link the current one; a
            // second one within a session (the device restarted its stream) resends what is
            // unacknowledged, which the device drops as duplicates
            d.link = link
            ls.announced = pass.gatewayStream
            ls.sentUpTo = 0
        }
        const stream = encodeApp({
            kind: AppKind.STREAM,
            streamId: pass.gatewayStream,
            peerStreamId: state.streamId,
            delivered: state.delivered,
        })
        const out = pass.out.map(b => (b === STREAM_AT_END ? stream : b))
        // the STREAM and ACK go first: "the gateway sends its own STREAM as its first application
        // message on that session" (PROTOCOL.md 12.1), before any RESPONSE that delivering may
        // send at once (a refused route)
        await this.#flush(d, out, pass.ack ? state.delivered : undefined, link)
        for (const m of pass.deliver) await this.#deliver(d, m, link, early, state.streamId)
    }

    /**
     * One pass over a record on a copy of the receiving state (it replaces the stored state
     * only when the whole record was processed: a bad message must not count the good ones
     * before it), with this session's flags: a session that has not sent STREAM starts
     * unsynced, whatever another session of the device did. With `gatewayStream` undefined
     * (the first pass) the device's STREAM and ACKs act on the outbox; a retry reuses the
     * stream id the first pass settled on.
     */
    async #pass(
        d: DeviceState,
        msgs: readonly AppMessage[],
        link: AppLink,
        ls: LinkState,
        gatewayStream: number | undefined
    ): Promise<Pass> {
        const first = gatewayStream === undefined
        const recv = new ReceiveStream(ls.stored ?? { streamId: 0, delivered: 0 }, ls.flags)
        const pass: Pass = {
            recv,
            write: false,
            ack: false,
            deliver: [],
            out: [],
            stream: false,
            gatewayStream: gatewayStream ?? ls.announced,
        }
        for (const m of msgs) {
            if (m.kind === AppKind.STREAM) {
                const newPeer = recv.peerStream(m.streamId)
                pass.write = newPeer || pass.write
                pass.stream = true
                if (first) pass.gatewayStream = await this.#peerStream(d, m.peerStreamId, m.delivered, newPeer)
                // sent before anything of the (possibly new) stream: #flush appends those. Its
                // `delivered` is written after the whole record, so it counts the messages
                // that came with this STREAM and the device need not resend them
                pass.out.push(STREAM_AT_END)
            } else if (m.kind === AppKind.ACK) {
                if (first) await this.#ack(d, m.id, pass.gatewayStream)
            } else {
                const a = recv.arrive(m.id)
                if (a === "deliver") pass.deliver.push(m)
                if (a === "deliver" || a === "duplicate") pass.ack = true
                if (a === "lost") {
                    // an id further ahead: this gateway lost its state for the device's
                    // stream (a store restored from an older copy, or none): forget it and
                    // say so, and the device starts a new stream (PROTOCOL.md 12.1)
                    pass.write = true
                    this.#log({ event: "app", outcome: "stream-lost", device: d.device.name, id: m.id })
                    pass.out.push(STREAM_AT_END)
                }
            }
        }
        pass.write ||= pass.deliver.length > 0
        if (this.#closed.has(link)) pass.write = false
        return pass
    }

    /**
     * The device's STREAM, as the gateway's sender sees it: "if peer_stream_id names its
     * current stream, it releases every message up to delivered and resends the unacknowledged
     * ones above it. Otherwise it starts a new stream" (the device restarted, peer_stream_id 0,
     * or lost its receiving state). When the device's own stream is new (`newPeer`), the
     * RESPONSEs to its previous stream's requests are dropped: nobody waits for them, and their
     * request_ids would name the new stream's; dropping any restarts the gateway's stream too,
     * so that its ids stay consecutive.
     * @returns the gateway's stream id after it
     */
    async #peerStream(d: DeviceState, peerStreamId: number, delivered: number, newPeer: boolean): Promise<number> {
        const outbox = this.opts.outbox
        const id = d.device.id
        const cur = await outbox.pending(id, HEADER_ONLY)
        let restart: Awaited<ReturnType<Outbox["restart"]>> | undefined
        if (cur.streamId !== 0 && peerStreamId === cur.streamId) {
            await outbox.ack(id, cur.streamId, delivered, false)
            if (newPeer && (await outbox.pending(id)).messages.some(q => q.kind === "response")) restart = await outbox.restart(id, true)
        } else restart = await outbox.restart(id, newPeer)
        if (restart === undefined) return cur.streamId
        if (restart.dropped > 0) this.#log({ event: "app", outcome: "responses-dropped", device: d.device.name, count: restart.dropped })
        this.#log({ event: "app", outcome: "stream-restarted", device: d.device.name, renumbered: restart.messages.length })
        return restart.streamId
    }

    /**
     * A cumulative ACK of the gateway's stream `stream` (0: the session has not been told one,
     * the current stream). Acknowledging a message never sent is a protocol error.
     */
    async #ack(d: DeviceState, ackId: number, stream: number): Promise<void> {
        const outbox = this.opts.outbox
        if (stream === 0) stream = (await outbox.pending(d.device.id, HEADER_ONLY)).streamId
        if (stream === 0) {
            if (ackId === 0) return
            throw new AppProtocolError(`ACK ${ackId} of a message never sent`)
        }
        let n: number
        try {
            n = await outbox.ack(d.device.id, stream, ackId, true)
        } catch (err) {
            if (err instanceof RangeError) throw new AppProtocolError(`ACK ${ackId} of a message never sent`)
            throw err
        }
        if (n > 0) this.events.emit("acked", { device: d.device.name, deviceId: d.device.id, id: ackId })
    }

    /** `stream`: the device stream the message came from (a RESPONSE to it is dropped once that stream is gone). */
    async #deliver(d: DeviceState, m: SequencedMessage, link: AppLink, early: boolean, stream: number): Promise<void> {
        const name = d.device.name
        if (m.kind === AppKind.PUBLISH) {
            this.#log({ event: "app", outcome: "publish", device: name, id: m.id, topic: m.topic, bytes: m.payload.length })
            this.events.emit("publish", { device: name, deviceId: d.device.id, id: m.id, topic: m.topic, payload: m.payload })
        } else if (m.kind === AppKind.REQUEST) {
            const route = allowedRoute(this.#config, m.route, name)
            if (route === undefined) {
                this.#logLimited(d, { outcome: "route-refused", id: m.id, route: m.route })
                void this.#respond(d, link, undefined, m.id, gatewayError(AppError.ROUTE_REFUSED))
                return
            }
            // a device cannot make the gateway hold an unbounded number of upstream calls
            if (d.inflight >= (this.opts.maxInflight ?? 16)) {
                this.#logLimited(d, { outcome: "too-many-requests", id: m.id, route: m.route })
                void this.#respond(d, link, undefined, m.id, gatewayError(AppError.UPSTREAM_FAILED))
                return
            }
            // #call answers every failure itself; the catch is for a log function that throws
            const p = this.#call(d, link, stream, m, route, early).catch(err => this.#internalError(d, "call", err))
            this.#inflight.add(p)
            void p.then(() => this.#inflight.delete(p))
        }
    }

    /**
     * One upstream call and its RESPONSE. Resolves, never rejects: whatever fails is logged
     * and answered to the device (UPSTREAM_FAILED), because nothing awaits this promise but
     * idle(), and an unhandled rejection would take the whole gateway down.
     */
    async #call(
        d: DeviceState,
        link: AppLink,
        stream: number,
        m: Extract<SequencedMessage, { kind: typeof AppKind.REQUEST }>,
        route: Route,
        early: boolean
    ): Promise<void> {
        const name = d.device.name
        const id = m.id
        const t0 = Date.now()
        d.inflight++
        let res: UpstreamResult
        try {
            res = await callUpstream(route, m.payload, name, this.opts.fetch, { early })
        } catch (err) {
            // callUpstream catches its own failures; this is a bug or a hostile fetch hook
            this.#log({ event: "app", outcome: "internal-error", device: name, id, where: "upstream", detail: errorName(err) })
            res = gatewayError(AppError.UPSTREAM_FAILED)
        } finally {
            d.inflight--
        }
        this.#log({
            event: "app",
            outcome: "request",
            device: name,
            id,
            route: m.route,
            status: res.status,
            result: res.outcome,
            detail: res.detail,
            ms: Date.now() - t0,
        })
        // in the device's order of work: after the records before it, never inside one
        await this.#respond(d, link, stream, id, res)
    }

    /**
     * Queues (durably) and sends a RESPONSE to a REQUEST that `link`'s session sent: on the
     * device's chain, after the step running now (a caller on the chain must not await it).
     * The answers that gather while the chain is busy are stored in one transaction, so a
     * burst of upstream answers costs the store one commit, not one each. Resolves once the
     * answer is stored (or dropped); never rejects.
     */
    #respond(d: DeviceState, link: AppLink, stream: number | undefined, requestId: number, res: UpstreamResult): Promise<void> {
        d.answers.push({ link, stream, requestId, res })
        if (d.answering === undefined)
            d.answering = this.#onChain(
                d,
                () => {
                    d.answering = undefined
                    return this.#respondAll(d, d.answers.splice(0))
                },
                "respond"
            )
        return d.answering
    }

    /**
     * Stores and sends a batch of RESPONSEs. `stream` is checked against the stored state (a
     * RESPONSE to a device stream that is gone is dropped). Runs on the device's chain.
     */
    async #respondAll(d: DeviceState, batch: Answer[]): Promise<void> {
        try {
            let current: number | undefined
            const keep: Answer[] = []
            for (const a of batch) {
                if (a.stream !== undefined) {
                    current ??= (await this.opts.receiving.get(d.device.id))?.streamId ?? 0
                    if (current !== a.stream) {
                        this.#logLimited(d, { outcome: "response-dropped", id: a.requestId })
                        continue
                    }
                }
                // what is queued must encode: a RESPONSE that cannot (a status outside 100..599, a
                // payload too long) would throw at every flush, so it becomes UPSTREAM_FAILED here
                if (!isResponseStatus(a.res.status) || a.res.payload.length > MAX_RESPONSE_PAYLOAD) {
                    this.#log({
                        event: "app",
                        outcome: "internal-error",
                        device: d.device.name,
                        id: a.requestId,
                        where: "response",
                        status: a.res.status,
                    })
                    a.res = gatewayError(AppError.UPSTREAM_FAILED)
                }
                keep.push(a)
            }
            if (keep.length === 0) return
            const stored = await this.opts.outbox.enqueueAll(
                d.device.id,
                keep.map(a => ({ kind: "response", requestId: a.requestId, status: a.res.status, payload: a.res.payload })),
                this.#maxQueue
            )
            if (stored > 0) {
                if (d.link === undefined) this.opts.onQueued?.(d.device.id)
                await this.#flush(d, [])
            }
            // the queue is full: each session that still asks is closed (after what was stored
            // went out), its RESPONSE dropped
            const overflowed = new Set<AppLink>()
            for (const a of keep.slice(stored))
                if (!overflowed.has(a.link)) {
                    overflowed.add(a.link)
                    await this.#overflow(d, a.link, a.requestId)
                }
        } catch (err) {
            this.#internalError(d, "respond", err)
        }
    }

    /**
     * The device's queue is full and it still asks: it keeps sending REQUESTs without
     * acknowledging what the gateway sent. Growing the queue would let one device hold the
     * gateway's memory and CPU (and the store's), so the session is closed with
     * PROTOCOL_ERROR and the RESPONSE dropped (PROTOCOL.md 12.2). The queue stays as it is: a
     * device that reconnects and acknowledges gets every message in it.
     */
    async #overflow(d: DeviceState, link: AppLink, requestId: number): Promise<void> {
        this.#logLimited(d, { outcome: "queue-overflow", id: requestId, queued: await this.opts.outbox.count(d.device.id) })
        this.#close(d, link)
    }

    /**
     * Sends what is due: `first` and an ACK of `ackId` answer the session `via` (the one whose
     * DATA this is, if any), the queued messages the current link has not had go to it.
     * Usually both are the same session, and it is one batch. Runs on the device's chain.
     */
    async #flush(d: DeviceState, first: Buffer[], ackId?: number, via?: AppLink): Promise<void> {
        const reply = first
        if (ackId !== undefined) reply.push(encodeApp({ kind: AppKind.ACK, id: ackId }))
        const current = d.link
        const queued = current === undefined ? [] : await this.#take(d, current)
        if (via !== undefined && via !== current) {
            if (!this.#closed.has(via)) for (const c of packApp(reply)) via.send(c)
            reply.length = 0
        }
        if (current !== undefined && !this.#closed.has(current)) for (const c of packApp([...reply, ...queued])) current.send(c)
    }

    /**
     * The stored messages `link`'s session has not been sent yet, in order; marks them sent.
     * Only messages of the stream this session's STREAM named: a stream restarted by another
     * session is that session's to send.
     */
    async #take(d: DeviceState, link: AppLink): Promise<Buffer[]> {
        const ls = this.#sessions.get(link)
        if (ls === undefined || ls.announced === 0) return []
        const p = await this.opts.outbox.pending(d.device.id, ls.sentUpTo)
        if (p.streamId !== ls.announced) return []
        const last = p.messages[p.messages.length - 1]
        if (last === undefined) return []
        ls.sentUpTo = last.id
        return p.messages.map(q => encodeApp(wireMessage(q)))
    }

    /**
     * Queues a MESSAGE to a device: it resolves once the message is stored (it survives this
     * process), and is sent now if the device's session is here, otherwise by whichever node
     * holds its next session; kept until acknowledged (the `acked` event).
     * @returns the message's id in the gateway's current stream to that device (when the
     *     device restarts before acknowledging it, the stream restarts and the message is
     *     renumbered, PROTOCOL.md 12.1)
     * @throws Error for an unknown device, a full queue, or a topic/payload that does not fit
     */
    async sendMessage(deviceName: string, topic: string, payload: Buffer): Promise<number> {
        checkMessage("sendMessage", topic, payload)
        const device = await this.opts.lookup(deviceName)
        if (device === undefined) throw new Error(`sendMessage: no device named ${deviceName}`)
        const d = this.#state(device)
        let q: QueuedMessage
        try {
            q = await this.opts.outbox.enqueue(device.id, { kind: "message", topic, payload: Buffer.from(payload) }, this.#maxQueue)
        } catch (err) {
            if (err instanceof QueueFull) throw new Error(`sendMessage: ${deviceName}'s queue is full`)
            throw err
        }
        if (d.link === undefined) this.opts.onQueued?.(device.id)
        // a node's own enqueue wakes itself
        await this.#onChain(d, () => this.#flush(d, []), "send")
        return q.id
    }

    /** Unacknowledged gateway messages for a device (0 if none), as stored. */
    queued(deviceId: string): Promise<number> {
        return this.opts.outbox.count(deviceId)
    }

    /** Waits for the upstream calls in flight and the work queued per device (graceful shutdown). */
    async idle(): Promise<void> {
        for (;;) {
            while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
            const devices = [...this.#devices.values()]
            const chains = devices.map(d => d.chain)
            await Promise.allSettled(chains)
            const same = this.#devices.size === devices.length && devices.every((d, i) => d.chain === chains[i])
            if (this.#inflight.size === 0 && same) return
        }
    }
}
