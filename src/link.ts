// The device's link to its gateway: the one API a firmware uses.
//
//     const link = await startLink()                     // the TT_* settings from pairing
//     link.onState((state, s) => console.log(state))
//     link.onMessage((topic, payload) => { ... })
//     link.publish("telemetry", Buffer.from("21.5"))
//     const r = await link.request("weather", Buffer.alloc(0), { timeoutMs: 10000 })
//
// Underneath: resumption first (the stored ticket, else the out-of-band one from pairing),
// the full handshake when the gateway rejects the ticket (within the fallback cap) or the
// ticket chain reached the resumption cap (TetherClient, PROTOCOL.md 6.9); reconnection with
// exponential backoff and jitter, bounded, reset once a session made progress, failing over
// between the pairing's gateway endpoints (the nodes of a cluster, 6.8): the next one after
// a failed connection (unreachable, refused, timed out), a REJECT(BUSY) or a CLOSE(SHUTDOWN),
// the same one again after a session that ended otherwise; the backoff grows once per
// pass over all endpoints; the static
// public key, `ss`, the next ephemeral key and its `es` computed while idle after the first
// session is up (TetherClient.prepare), never on the way to the first message; the STREAM
// message and the first queued messages riding as early data of a resumption whose ticket
// age is known (one received in this boot), else as the session's first DATA record: the
// device's STREAM is always its first message on a session (12.1); every other step yields
// (`await`), so the rest of the firmware keeps running.
//
// Delivery (PROTOCOL.md 12.1): every message has an id in a stream; the gateway acknowledges
// and de-duplicates, the link resends what is unacknowledged after every handshake, so across
// any number of dropped connections each message arrives exactly once and in order, both
// ways. Messages queued in RAM are lost on a device restart (the queue is not in flash);
// nothing the gateway acknowledged is lost. The queue is bounded: publish() and request()
// throw QueueFullError when it is full.
//
// Fibers: one runs the connect/receive loop (message handlers run on it: keep them short),
// one per session writes (coalesced ACKs, queued messages), one computes keys while idle.
import * as ds from "@devicescript/core"
import { randomBytes, RandomSource } from "./crypto/random"
import { AppLayer, AppProtocolError, MessageHandler, Response } from "./app/app-layer"
import { Connector } from "./net/transport"
import { Dh } from "./noise/dh"
import { Connection, CountingDh, Received, RecvKind, RejectedError, TetherClient } from "./tether/client"
import { Endpoint, LinkSettings, readPairingSettings } from "./tether/pairing-settings"
import { SettingsStorage, SlotStorage, TicketStore } from "./tether/ticket-store"
import { Code, InnerType } from "./tether/wire"

export { Endpoint, LinkSettings } from "./tether/pairing-settings"
export { QueueFullError } from "./app/outbound"
export { RequestError, REQUEST_TIMEOUT, Response } from "./app/app-layer"
export { AppError } from "./app/codec"

/**
 * The link's state: "connecting" (TCP; also the state from startLink() to the first attempt),
 * "handshaking", "up" (a session), "down" (an attempt or a session ended: waiting to retry).
 */
export type LinkState = "connecting" | "handshaking" | "up" | "down"

/** What the link knows about itself; passed to state handlers. */
export interface LinkStatus {
    state: LinkState
    /** the last handshake was a resumption (false: full handshake) */
    resumed: boolean
    /** the last handshake fell back from a rejected ticket to the full handshake */
    fellBack: boolean
    /** the gateway accepted the last resumption's early data (0-RTT) */
    earlyAccepted: boolean
    /** milliseconds of the last handshake (first frame sent to session keys) */
    handshakeMs: number
    /** sessions established since start */
    sessions: number
    /** failed connection attempts since the last session */
    failures: number
    /**
     * why the last attempt or session ended, when it was not stop(); "" before the first
     * attempt ended and while a session is up
     */
    lastError: string
    /**
     * "REVOKED" (the gateway closed the session so) or "UNKNOWN_DEVICE" (it knows no such
     * pairing): the link retries only every unpairedRetryMs until a session is up again; "" otherwise
     */
    unpaired: string
    /** unacknowledged outbound messages */
    queued: number
    /**
     * X25519 operations made while the last session was being set up: 0 for a resumption,
     * 2 for a full handshake (ee, se; `ss` is cached, the ephemeral and its `es` made while idle)
     */
    x25519: number
    /**
     * the gateway endpoint the link is using or trying next: its index in the settings' order
     * (0 TT_GW_HOST, 1 TT_GW_HOST2, ...), its host and port
     */
    endpoint: number
    host: string
    port: number
}

/** Handler of state changes. */
export type StateHandler = (state: LinkState, status: LinkStatus) => void

/** Options of {@link startLink}. All optional. */
export interface LinkOptions {
    /** pairing and address; default: read from the TT_* settings ({@link readLinkSettings}) */
    settings?: LinkSettings
    /** where tickets are kept; default the flash settings (tt_slot_a/b) */
    storage?: SlotStorage
    /** most unacknowledged outbound messages (default 32) */
    maxQueueCount?: number
    /** most bytes of them, encoded (default 4096) */
    maxQueueBytes?: number
    /**
     * first retry delay (default 250 ms); doubles per failure up to backoffMaxMs (with several
     * endpoints: once per as many failures as there are endpoints, a pass over all of them)
     */
    backoffMinMs?: number
    /** largest retry delay (default 30000 ms); each delay is drawn from [d/2, d] */
    backoffMaxMs?: number
    /**
     * the retry delay once the gateway said the device is revoked or unknown (default 3600000 ms):
     * each try would cost a full handshake, and only a new pairing helps
     */
    unpairedRetryMs?: number
    /** handshake answer timeout (default 10000 ms) */
    handshakeTimeoutMs?: number
    /** a session with messages in flight and nothing from the gateway for this long is dropped (default 20000 ms) */
    silenceTimeoutMs?: number
    /** compute keys for the next full handshake while idle (default true) */
    prepareWhenIdle?: boolean
    /** DH functions (tests count them) */
    dh?: Dh
    /** opens the connection to the gateway; default TCP (tests pass an in-memory one) */
    connect?: Connector
    random?: RandomSource
}

/** Options of {@link Link.request}. */
export interface RequestOptions {
    /** how long to wait for the RESPONSE (default 15000 ms); the REQUEST itself is not withdrawn */
    timeoutMs?: number
}

const DEFAULT_REQUEST_TIMEOUT_MS = 15000
/** How often the receive loop looks at the clock while nothing arrives. */
const POLL_MS = 1000
/** Longest wait for an idle moment before the keys of the next full handshake are computed anyway. */
const IDLE_WAIT_MS = 2000

/**
 * Reads the pairing written by `tether-gateway pair` (PROTOCOL.md 6.8) from the device's
 * settings (`.env.local` deployed with the program).
 * @throws Error naming the first missing or malformed setting
 */
export async function readLinkSettings(): Promise<LinkSettings> {
    return await readPairingSettings()
}

/** One session: its connection and its writer fiber. */
interface Session {
    conn: Connection
    writer: ds.Fiber
    /** when messages started waiting for an ACK, or the last record from the gateway */
    since: number
    /** a DATA record arrived on it (the session made progress: the backoff resets) */
    progressed: boolean
}

/**
 * The link to the gateway. Create it with {@link startLink}. Every method may be called in
 * any state: messages queue while the link is down and go out, exactly once and in order,
 * when it is up. Messages queued in RAM are lost on a device restart; nothing the gateway
 * acknowledged is lost.
 */
export class Link {
    private app: AppLayer
    private client: TetherClient
    private opts: LinkOptions
    private session: Session = undefined
    private stopped = false
    private finished = false
    private runner: ds.Fiber = undefined
    private stateHandlers: StateHandler[] = []
    private preparing = false
    private st: LinkStatus = {
        // not "down": nothing has failed yet, and the first attempt starts at once
        state: "connecting",
        resumed: false,
        fellBack: false,
        earlyAccepted: false,
        handshakeMs: 0,
        sessions: 0,
        failures: 0,
        lastError: "",
        unpaired: "",
        queued: 0,
        x25519: 0,
        endpoint: 0,
        host: "",
        port: 0,
    }
    private dh: CountingDh
    /** the gateway endpoints, in the order they are tried (at least one) */
    private endpoints: Endpoint[]

    /** @internal use {@link startLink} */
    constructor(opts: LinkOptions, client: TetherClient, app: AppLayer, dh: CountingDh, endpoints: Endpoint[]) {
        this.opts = opts
        this.dh = dh
        this.client = client
        this.app = app
        this.endpoints = endpoints
        this.st.host = endpoints[0].host
        this.st.port = endpoints[0].port
    }

    /**
     * Queues a PUBLISH (no answer but the gateway's ACK). Returns at once; the message goes
     * out when the link is up.
     * @returns the message's id in this boot's stream
     * @throws QueueFullError when the queue is full (count or bytes); RangeError when the
     *     topic is not 1..255 bytes or the message does not fit one record (1006 bytes)
     */
    publish(topic: string, payload: Buffer): number {
        const id = this.app.publish(topic, payload)
        this.kick()
        return id
    }

    /**
     * Sends a REQUEST on `route` through the gateway's funnel (PROTOCOL.md 12.2) and waits for
     * its RESPONSE, across reconnects.
     * @returns the upstream's HTTP status (100..599) and body
     * @throws RequestError with an AppError code when the gateway could not make the call
     *     (status 0), or REQUEST_TIMEOUT; QueueFullError; RangeError as publish()
     */
    async request(route: string, payload: Buffer, options?: RequestOptions): Promise<Response> {
        const t = options && options.timeoutMs !== undefined ? options.timeoutMs : DEFAULT_REQUEST_TIMEOUT_MS
        const self = this
        return await this.app.request(route, payload, t, () => self.kick())
    }

    /**
     * Adds a handler of MESSAGEs from the gateway, delivered once and in order. Handlers run
     * on the link's receiving fiber and the ACK follows them: keep them short, and start a
     * fiber for a request() (awaiting it inside the handler waits for its own RESPONSE,
     * which this fiber would deliver, until the timeout).
     */
    onMessage(handler: MessageHandler): void {
        this.app.onMessage(handler)
    }

    /** Adds a handler of state changes; it is called at once with the current state. */
    onState(handler: StateHandler): void {
        this.stateHandlers.push(handler)
        handler(this.st.state, this.status())
    }

    /** The current state and counters (a copy). */
    status(): LinkStatus {
        const s = this.st
        return {
            state: s.state,
            resumed: s.resumed,
            fellBack: s.fellBack,
            earlyAccepted: s.earlyAccepted,
            handshakeMs: s.handshakeMs,
            sessions: s.sessions,
            failures: s.failures,
            lastError: s.lastError,
            unpaired: s.unpaired,
            queued: this.app.outbound.count(),
            x25519: s.x25519,
            endpoint: s.endpoint,
            host: s.host,
            port: s.port,
        }
    }

    /** The application layer (counters for tests and logs). @internal */
    appLayer(): AppLayer {
        return this.app
    }

    /**
     * Closes the session (CLOSE(NORMAL)), stops reconnecting and returns once the link is
     * "down". Queued messages stay unsent. The link cannot be restarted; start a new one.
     */
    async stop(): Promise<void> {
        this.stopped = true
        const s = this.session
        if (s) await s.conn.close()
        this.wake(this.runner)
        // the loop ends at once unless a handshake is under way (then within its timeout)
        const end = ds.millis() + (this.opts.handshakeTimeoutMs || 10000) + 1000
        while (!this.finished && ds.millis() < end) await ds.sleep(10)
        this.setState("down")
    }

    /**
     * Drops the current connection without a CLOSE, as when the radio goes away (tests and
     * demos); the link reconnects by itself.
     */
    dropConnection(): void {
        const s = this.session
        if (s) s.conn.drop()
    }

    /** @internal */
    async run(): Promise<void> {
        this.runner = ds.Fiber.self()
        const o = this.opts
        const min = o.backoffMinMs || 250
        const max = o.backoffMaxMs || 30000
        const n = this.endpoints.length
        let backoff = min
        // attempts that ended (failed, or a session that ended) since the backoff last grew or
        // was reset: it grows once per n of them, a pass over every endpoint
        let misses = 0
        while (!this.stopped) {
            this.setState("connecting")
            let conn: Connection = undefined
            const dhBefore = this.dh.x + this.dh.base
            // whether this endpoint is out of reach or asked the device to go elsewhere: the
            // next attempt goes to the next endpoint
            let next = false
            try {
                conn = await this.client.connect(this.app.sessionStart(), this.st.host, this.st.port)
            } catch (e) {
                this.st.failures++
                this.st.lastError = (e as Error).message
                // unreachable, refused, timed out, closed or a bad answer: this node's trouble;
                // a REJECT is the cluster's answer (every node shares the registry and keys),
                // except BUSY: this node's load
                next = !(e instanceof RejectedError) || (e as RejectedError).code === Code.BUSY
                // a failed full handshake spent its ephemeral and es (one attempt each,
                // PROTOCOL.md 4.3): the next ones are computed during the backoff, off the
                // critical path of the next attempt
                if (this.client.lastAttemptFull && o.prepareWhenIdle !== false) this.startPrepare()
                if (this.client.unpaired) {
                    this.st.unpaired = "UNKNOWN_DEVICE"
                    this.st.lastError =
                        "UNKNOWN_DEVICE: the gateway knows no such pairing (revoked, removed or re-keyed): pair the device again"
                }
            }
            if (conn !== undefined) {
                this.st.resumed = conn.resumed
                this.st.fellBack = conn.fellBack
                this.st.earlyAccepted = conn.earlyAccepted
                this.st.handshakeMs = conn.handshakeMs
                this.st.x25519 = this.dh.x + this.dh.base - dhBefore
                this.st.sessions++
                this.st.failures = 0
                this.st.unpaired = ""
                // the link is up: an older attempt's error no longer describes it
                this.st.lastError = ""
                const s: Session = { conn, writer: undefined, since: ds.millis(), progressed: false }
                this.session = s
                this.startWriter(s)
                this.setState("up")
                if (!this.stopped && o.prepareWhenIdle !== false) this.startPrepare()
                await this.receive(s)
                this.session = undefined
                conn.drop()
                this.wake(s.writer)
                if (s.progressed) {
                    backoff = min
                    misses = 0
                }
                if (conn.closeCode !== 0) this.st.lastError = "gateway closed with code " + conn.closeCode
                // no CLOSE and no error of the session's own: the connection went away under it
                else if (this.st.lastError === "" && !this.stopped) this.st.lastError = "connection lost"
                if (conn.closeCode === Code.REVOKED) {
                    this.st.unpaired = "REVOKED"
                    this.st.lastError = "REVOKED: the gateway revoked this device: pair it again"
                }
                // a node that shuts down sends its sessions elsewhere; any other end of a
                // session retries the same endpoint first
                next = conn.closeCode === Code.SHUTDOWN
            }
            if (this.stopped) break
            if (next && n > 1) this.useEndpoint(this.st.endpoint + 1 === n ? 0 : this.st.endpoint + 1)
            this.setState("down")
            // a delay drawn from [backoff/2, backoff] (jitter), then double it, bounded, after
            // a pass over all endpoints (after every attempt with one endpoint)
            const r = this.random(2)
            // revoked or unknown: every try would cost a full handshake, and only pairing helps
            const b = this.st.unpaired !== "" ? o.unpairedRetryMs || 3600000 : backoff
            const delay = Math.floor(b / 2 + ((r[0] * 256 + r[1]) / 65536) * (b / 2))
            await ds.suspend(delay)
            misses++
            if (misses >= n) {
                misses = 0
                backoff = Math.min(backoff * 2, max)
            }
        }
        this.finished = true
        this.setState("down")
    }

    /** Makes endpoint `i` the current one (the next attempt's). */
    private useEndpoint(i: number): void {
        const e = this.endpoints[i]
        this.st.endpoint = i
        this.st.host = e.host
        this.st.port = e.port
    }

    private random(n: number): Buffer {
        return (this.opts.random || randomBytes)(n)
    }

    /** The receive loop of one session; returns when it ended. */
    private async receive(s: Session): Promise<void> {
        const silence = this.opts.silenceTimeoutMs || 20000
        for (;;) {
            if (this.stopped) return
            let r: Received
            try {
                r = await s.conn.receive(POLL_MS)
            } catch (e) {
                // a TICKET that did not reach flash: the connection is closed, reconnect
                this.st.lastError = (e as Error).message
                return
            }
            if (r.kind === RecvKind.Closed) return
            if (r.kind === RecvKind.Timeout) {
                // nothing arrived: a silent gateway while messages wait for their ACK means a
                // dead path (TCP alone may not notice for minutes)
                if (this.app.outbound.inFlight() && ds.millis() - s.since > silence) {
                    this.st.lastError = "no answer from the gateway for " + silence + " ms"
                    return
                }
                if (!this.app.outbound.inFlight()) s.since = ds.millis()
                continue
            }
            s.since = ds.millis()
            try {
                await this.app.onData(r.data)
                s.progressed = true // (a session that only fails does not reset the backoff)
            } catch (e) {
                this.st.lastError = (e as Error).message
                if (e instanceof AppProtocolError) await this.closeWith(s, Code.PROTOCOL_ERROR)
                return
            }
            this.kick()
        }
    }

    private async closeWith(s: Session, code: number): Promise<void> {
        try {
            await s.conn.sendRecord(InnerType.CLOSE, Buffer.from([code]))
        } catch (e) {
            // the writer may be mid-frame, or the socket gone: closing anyway
        }
    }

    private startWriter(s: Session): void {
        const self = this
        const writer = async () => {
            s.writer = ds.Fiber.self()
            while (self.session === s && s.conn.isOpen()) {
                const wasInFlight = self.app.outbound.inFlight()
                const c = self.app.nextContent()
                if (c === undefined) {
                    await ds.suspend(60000)
                    continue
                }
                if (!wasInFlight) s.since = ds.millis()
                try {
                    await s.conn.send(c)
                } catch (e) {
                    s.conn.drop()
                    break
                }
            }
            s.writer = undefined
        }
        writer.start()
    }

    /**
     * Idle work after "up", or after a failed full handshake: the keys of the next full
     * handshake (TetherClient.prepare: the ephemeral and its es, two X25519), which connect()
     * leaves out so that the link is up sooner. It runs on its own
     * fiber once the session's first exchange is done (nothing to send, nothing waiting for an
     * ACK, or IDLE_WAIT_MS passed) and yields between steps, so the receive and write fibers
     * keep running.
     */
    private startPrepare(): void {
        if (this.preparing) return
        this.preparing = true
        const self = this
        const prep = async () => {
            try {
                const end = ds.millis() + IDLE_WAIT_MS
                // while a session is up, its first exchange goes first (no wait while down)
                while (
                    !self.stopped &&
                    self.session !== undefined &&
                    ds.millis() < end &&
                    (self.app.hasOutput() || self.app.outbound.inFlight())
                )
                    await ds.sleep(20)
                if (!self.stopped) await self.client.prepare()
            } catch (e) {
                console.log("tether: idle key preparation failed: " + (e as Error).message)
            }
            self.preparing = false
        }
        prep.start()
    }

    private kick(): void {
        const s = this.session
        if (s) this.wake(s.writer)
    }

    private wake(f: ds.Fiber): void {
        if (f && f.suspended) f.resume(undefined)
    }

    private setState(state: LinkState): void {
        if (this.st.state === state) return
        this.st.state = state
        const status = this.status()
        for (const h of this.stateHandlers) {
            try {
                h(state, status)
            } catch (e) {
                console.log("tether: state handler failed: " + (e as Error).message)
            }
        }
    }

    /** @internal */
    onOpen(): void {
        this.setState("handshaking")
    }
}

/**
 * Starts the link: reads the pairing from the settings (or `options.settings`), opens the
 * ticket store, and connects in the background, to the first endpoint first. Returns at once
 * (state "connecting").
 * Messages queued in RAM are lost on a device restart; nothing acknowledged is lost.
 * @throws Error when a setting is missing or malformed
 */
export async function startLink(options?: LinkOptions): Promise<Link> {
    const o = options || {}
    const s = o.settings || (await readLinkSettings())
    const endpoints = s.endpoints !== undefined && s.endpoints.length > 0 ? s.endpoints : [{ host: s.host, port: s.port }]
    // "only when neither slot is valid does it use TT_TICKET/TT_RSECRET (with pseudonym0 and
    // resumed = 0)" (PROTOCOL.md 6.8): the store offers it, never writes it to a slot, and
    // does not know its age (no early data on it); the first TICKET replaces it
    const oob = s.ticket !== undefined && s.secret !== undefined ? { ticket: s.ticket, secret: s.secret } : undefined
    const store = await TicketStore.open(o.storage || new SettingsStorage(), oob)
    let link: Link = undefined
    const dh = new CountingDh(o.dh)
    const client = new TetherClient({
        pairing: {
            deviceId: s.deviceId,
            // the public key is computed while idle (TetherClient.prepare), not at boot
            s: { privateKey: s.privateKey, publicKey: undefined },
            gatewayPublic: s.gatewayPublic,
            psk: s.psk,
        },
        store,
        host: s.host,
        port: s.port,
        connect: o.connect,
        dh,
        random: o.random,
        timeoutMs: o.handshakeTimeoutMs,
        onOpen: () => link.onOpen(),
    })
    const app = new AppLayer({ maxQueueCount: o.maxQueueCount, maxQueueBytes: o.maxQueueBytes, random: o.random })
    link = new Link(o, client, app, dh, endpoints)
    const run = async () => {
        await link.run()
    }
    run.start()
    return link
}
