// The gateway's application layer (PROTOCOL.md 12): per device, the receiving half of the
// device's stream (persisted in an AppStateStore) and the sending half of the gateway's
// stream (in memory, resent across reconnects); PUBLISH to the sinks (a log line and the
// `publish` event), REQUEST through the funnel (upstream.ts), MESSAGE from sendMessage().
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
    type SequencedMessage,
} from "./codec.js"
import type { AppStateStore } from "./store.js"
import { LogLimiter } from "./log-limit.js"
import { ReceiveStream, SendStream, type ReceiveSession, type ReceiveState } from "./stream.js"
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
    readonly store: AppStateStore
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
}

/**
 * What the gateway keeps per device: the streams' state, which every session of the device
 * continues (the receiving state of the device's stream, the sending queue of the gateway's).
 * What is per session (whether its STREAM arrived, a gap seen in it, whether the app closed it)
 * is kept per AppLink: one link per session.
 */
interface DeviceState {
    device: AppDevice
    readonly send: SendStream
    /** the receiving state of the device's stream, loaded from the store on first use */
    recv: ReceiveState | undefined
    /** the link of the session that sent the device's latest STREAM: the gateway's stream goes there */
    link: AppLink | undefined
    /** serialises loading and DATA processing for this device */
    chain: Promise<void>
    /** upstream calls in flight for this device */
    inflight: number
    /** rate limits of the log lines this device can cause once per message, by outcome */
    readonly limits: Map<string, LogLimiter>
}

/** The application layer of one gateway process. */
/** Where a STREAM goes in a reply; replaced by the STREAM of the state after the whole record. */
const STREAM_AT_END = Buffer.alloc(0)

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
    /** per session: the ReceiveStream's flags (STREAM seen in this session, a gap seen) */
    readonly #sessions = new WeakMap<AppLink, ReceiveSession>()

    constructor(readonly opts: GatewayAppOptions) {
        this.#config = opts.config
        this.#log = opts.log ?? (() => {})
        this.#maxQueue = opts.maxQueue ?? 256
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
                send: new SendStream(),
                recv: undefined,
                link: undefined,
                chain: Promise.resolve(),
                inflight: 0,
                limits: new Map(),
            }
            this.#devices.set(device.id, d)
        }
        d.device = device
        return d
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
        d.chain = d.chain.then(() => this.#data(d, content, link, early)).catch(err => this.#failed(d, link, err))
    }

    /**
     * A DATA content failed: a malformed message (AppProtocolError, its message is ours), or
     * anything else (the store, a bug: logged by name). Either way the session is closed with
     * PROTOCOL_ERROR. Never throws: the device's chain must stay a resolved promise.
     */
    #failed(d: DeviceState, link: AppLink, err: unknown): void {
        try {
            if (err instanceof AppProtocolError)
                this.#log({ event: "app", outcome: "protocol-error", device: d.device.name, detail: err.message })
            else this.#log({ event: "app", outcome: "internal-error", device: d.device.name, where: "data", detail: errorName(err) })
            this.#closed.add(link)
            // the gateway's stream stops only if it was going to this session; another
            // session of the device is not this one's error
            if (d.link === link) {
                d.link = undefined
                d.send.sessionEnd()
            }
            link.close(Code.PROTOCOL_ERROR)
        } catch (e) {
            this.#internalError(d, "close", e)
        }
    }

    /** The log line of a failure on a path with nobody left to tell. Never throws. */
    #internalError(d: DeviceState, where: string, err: unknown): void {
        try {
            this.#log({ event: "app", outcome: "internal-error", device: d.device.name, where, detail: errorName(err) })
        } catch {
            // the log itself failed: there is nowhere left to say it
        }
    }

    /** `early`: the content came as resumption early data (its REQUESTs go upstream with Early-Data: 1). */
    async #data(d: DeviceState, content: Buffer, link: AppLink, early: boolean): Promise<void> {
        if (this.#closed.has(link)) return
        const msgs = decodeApp(content, "device")
        d.recv ??= (await this.opts.store.get(d.device.id)) ?? { streamId: 0, delivered: 0 }
        if (this.#closed.has(link)) return // closed while the store answered
        // Work on a copy of the receiving state; it replaces the state only when the whole
        // record was processed (a bad message must not count the good ones before it).
        // The device's receiving state with this session's flags: a session that has not sent
        // STREAM starts unsynced, whatever another session of the device did.
        const recv = new ReceiveStream(d.recv, this.#sessions.get(link))
        const out: Buffer[] = []
        let changed = false
        let ack = false
        const deliver: SequencedMessage[] = []
        for (const m of msgs) {
            if (m.kind === AppKind.STREAM) {
                const newPeer = recv.peerStream(m.streamId)
                changed = newPeer || changed
                // every device STREAM opens a session and makes its link the current one; a
                // second one within a session (the device restarted its stream) resends what
                // is unacknowledged, which the device drops as duplicates
                d.link = link
                d.send.sessionStart(false)
                // "Otherwise it starts a new stream": the device restarted (peer_stream_id
                // 0) or lost its receiving state
                let restarted = d.send.peerStream(m.peerStreamId, m.delivered)
                if (newPeer) {
                    // RESPONSEs answer requests of the device's previous stream: nobody waits
                    // for them any more, and their request_ids would name the new stream's
                    const dropped = d.send.drop(q => q.kind === AppKind.RESPONSE)
                    if (dropped > 0) {
                        restarted = true
                        this.#log({ event: "app", outcome: "responses-dropped", device: d.device.name, count: dropped })
                    }
                }
                if (restarted) this.#log({ event: "app", outcome: "stream-restarted", device: d.device.name, renumbered: d.send.unacked })
                // sent before anything of the (possibly new) stream: #flush appends those. Its
                // `delivered` is written after the whole record (below), so it counts the
                // messages that came with this STREAM and the device need not resend them
                out.push(STREAM_AT_END)
            } else if (m.kind === AppKind.ACK) {
                if (d.send.ack(m.id) > 0) this.events.emit("acked", { device: d.device.name, deviceId: d.device.id, id: m.id })
            } else {
                const a = recv.arrive(m.id)
                if (a === "deliver") deliver.push(m)
                if (a === "deliver" || a === "duplicate") ack = true
                if (a === "lost") {
                    // an id further ahead: this gateway lost its state for the device's
                    // stream (a store restored from an older copy, or none): forget it and
                    // say so, and the device starts a new stream (PROTOCOL.md 12.1)
                    changed = true
                    this.#log({ event: "app", outcome: "stream-lost", device: d.device.name, id: m.id })
                    out.push(STREAM_AT_END)
                }
            }
        }
        // stored before anything it counts is delivered or acknowledged
        if (changed || deliver.length > 0) await this.opts.store.put(d.device.id, recv.state)
        d.recv = recv.state
        this.#sessions.set(link, recv.session)
        for (let i = 0; i < out.length; i++) if (out[i] === STREAM_AT_END) out[i] = this.#streamMsg(d, recv)
        // the STREAM and ACK go first: "the gateway sends its own STREAM as its first application
        // message on that session" (PROTOCOL.md 12.1), before any RESPONSE that delivering may
        // send at once (a refused route)
        this.#flush(d, ack, out, link)
        for (const m of deliver) this.#deliver(d, m, link, early)
    }

    #streamMsg(d: DeviceState, recv: ReceiveStream): Buffer {
        const r = recv.state
        return encodeApp({ kind: AppKind.STREAM, streamId: d.send.streamId, peerStreamId: r.streamId, delivered: r.delivered })
    }

    #deliver(d: DeviceState, m: SequencedMessage, link: AppLink, early: boolean): void {
        const name = d.device.name
        // the device stream this REQUEST came from: its RESPONSE is dropped if that stream is
        // gone by the time the upstream answers (a restarted device)
        const stream = d.recv?.streamId ?? 0
        if (m.kind === AppKind.PUBLISH) {
            this.#log({ event: "app", outcome: "publish", device: name, id: m.id, topic: m.topic, bytes: m.payload.length })
            this.events.emit("publish", { device: name, deviceId: d.device.id, id: m.id, topic: m.topic, payload: m.payload })
        } else if (m.kind === AppKind.REQUEST) {
            const route = allowedRoute(this.#config, m.route, name)
            if (route === undefined) {
                this.#logLimited(d, { outcome: "route-refused", id: m.id, route: m.route })
                this.#respond(d, link, stream, m.id, gatewayError(AppError.ROUTE_REFUSED))
                return
            }
            // a device cannot make the gateway hold an unbounded number of upstream calls
            if (d.inflight >= (this.opts.maxInflight ?? 16)) {
                this.#logLimited(d, { outcome: "too-many-requests", id: m.id, route: m.route })
                this.#respond(d, link, stream, m.id, gatewayError(AppError.UPSTREAM_FAILED))
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
        this.#respond(d, link, stream, id, res)
    }

    /**
     * Queues and sends a RESPONSE to a REQUEST that `link`'s session sent. Never throws: it
     * runs outside any caller that could catch.
     */
    #respond(d: DeviceState, link: AppLink, stream: number, requestId: number, res: UpstreamResult): void {
        try {
            if ((d.recv?.streamId ?? 0) !== stream) {
                this.#logLimited(d, { outcome: "response-dropped", id: requestId })
                return
            }
            if (d.send.unacked >= this.#maxQueue) {
                this.#overflow(d, link, requestId)
                return
            }
            // what is queued must encode: a RESPONSE that cannot (a status outside 100..599, a
            // payload too long) would throw at every flush, so it becomes UPSTREAM_FAILED here
            if (!isResponseStatus(res.status) || res.payload.length > MAX_RESPONSE_PAYLOAD) {
                this.#log({
                    event: "app",
                    outcome: "internal-error",
                    device: d.device.name,
                    id: requestId,
                    where: "response",
                    status: res.status,
                })
                res = gatewayError(AppError.UPSTREAM_FAILED)
            }
            d.send.enqueue({ kind: AppKind.RESPONSE, requestId, status: res.status, payload: res.payload })
            this.#flush(d, false)
        } catch (err) {
            this.#internalError(d, "respond", err)
        }
    }

    /**
     * The device's queue is full and it still asks: it keeps sending REQUESTs without
     * acknowledging what the gateway sent. Growing the queue would let one device hold the
     * gateway's memory and CPU, so the session is closed with PROTOCOL_ERROR and the RESPONSE
     * dropped (PROTOCOL.md 12.2). The queue stays as it is: a device that reconnects and
     * acknowledges gets every message in it.
     */
    #overflow(d: DeviceState, link: AppLink, requestId: number): void {
        this.#logLimited(d, { outcome: "queue-overflow", id: requestId, queued: d.send.unacked })
        if (this.#closed.has(link)) return
        this.#closed.add(link)
        if (d.link === link) {
            d.link = undefined
            d.send.sessionEnd()
        }
        link.close(Code.PROTOCOL_ERROR)
    }

    /**
     * Sends what is due: `first` and an ACK answer the session `via` (the one whose DATA this
     * is, if any), the unsent queued messages go to the current link. Usually both are the
     * same session, and it is one batch.
     */
    #flush(d: DeviceState, ack: boolean, first: Buffer[] = [], via?: AppLink): void {
        const reply = first
        if (ack && d.recv !== undefined) reply.push(encodeApp({ kind: AppKind.ACK, id: d.recv.delivered }))
        const current = d.link
        const queued = current === undefined ? [] : d.send.take().map(encodeApp)
        if (via !== undefined && via !== current) {
            if (!this.#closed.has(via)) for (const c of packApp(reply)) via.send(c)
            reply.length = 0
        }
        if (current !== undefined) for (const c of packApp([...reply, ...queued])) current.send(c)
    }

    /**
     * Queues a MESSAGE to a device; it is sent now if the device is connected, otherwise at
     * its next session, and kept until acknowledged (the `acked` event).
     * @returns the message's id in the gateway's current stream to that device (when the
     *     device restarts before acknowledging it, the stream restarts and the message is
     *     renumbered, PROTOCOL.md 12.1)
     * @throws Error for an unknown device, a full queue, or a topic/payload that does not fit
     */
    async sendMessage(deviceName: string, topic: string, payload: Buffer): Promise<number> {
        const topicLen = Buffer.byteLength(topic, "utf8")
        if (topicLen === 0 || topicLen > MAX_NAME_LEN) throw new RangeError(`sendMessage: a topic is 1..${MAX_NAME_LEN} bytes`)
        if (NAME_LEN_LEN + topicLen + payload.length > MAX_APP_BODY)
            throw new RangeError("sendMessage: topic and payload do not fit one record")
        const device = await this.opts.lookup(deviceName)
        if (device === undefined) throw new Error(`sendMessage: no device named ${deviceName}`)
        const d = this.#state(device)
        if (d.send.unacked >= this.#maxQueue) throw new Error(`sendMessage: ${deviceName}'s queue is full`)
        const m = d.send.enqueue({ kind: AppKind.MESSAGE, topic, payload: Buffer.from(payload) })
        this.#flush(d, false)
        return m.id
    }

    /** Unacknowledged gateway messages for a device (0 if none). */
    queued(deviceId: string): number {
        return this.#devices.get(deviceId)?.send.unacked ?? 0
    }

    /** Waits for the upstream calls in flight (graceful shutdown). */
    async idle(): Promise<void> {
        while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
        await Promise.allSettled([...this.#devices.values()].map(d => d.chain))
    }
}
