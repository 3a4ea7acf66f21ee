// The gateway's TCP server: node:net, one Connection (a FrameDecoder and a Responder) per
// socket, and the edge policies of PROTOCOL.md 9.4: handshake timeouts, idle timeout, the frame
// size limit (FrameDecoder), a cap on concurrent handshakes, per-source limits on connections
// and handshake attempts (REJECT(BUSY)), a bounded write buffer, a bounded linger after every
// close, TCP keepalive, and a shutdown bounded by a grace period (CLOSE(SHUTDOWN), then every
// socket destroyed). One JSON line per connection event: device name, outcome, timings; never
// keys, tickets or payloads.
//
// The server keeps what connections share: every accepted socket, the index of established
// connections by device (one live session per device, PROTOCOL.md 8), the per-source tables
// and the count of handshakes in progress. Each connection's lifecycle is its own
// (connection.ts).
import { createServer, type Socket } from "node:net"
import { Connection, ConnPhase, systemClock, type Clock, type ConnectionHost, type LogLine } from "./connection.js"
import type { RandomSource } from "./crypto/random.js"
import type { KeyPair } from "./crypto/x25519.js"
import { DEFAULT_POLICY, resolvePolicy, type ServerPolicy } from "./policy.js"
import type { DeviceRecord, Registry } from "./registry/registry.js"
import type { Dh } from "./session/handshake.js"
import { Responder, type ResponderContext } from "./session/responder.js"
import type { Session } from "./session/session.js"
import type { TicketKeySet } from "./tickets.js"
import { Code, encodeFrame, FrameType } from "./wire.js"

export { DEFAULT_POLICY } from "./policy.js"
export type { ServerPolicy } from "./policy.js"
export type { Clock, LogLine } from "./connection.js"

/** The identity and ticket keys (a loaded state directory fits). */
export interface ServerState {
    readonly identity: KeyPair
    readonly ticketKeys: TicketKeySet
}

/** Options of startGateway. */
export interface GatewayOptions {
    readonly host?: string
    /** 0 for any free port */
    readonly port?: number
    readonly registry: Registry
    readonly state: ServerState
    /** fields not given take DEFAULT_POLICY's (policy.ts) */
    readonly policy?: Partial<ServerPolicy>
    /** seconds since the Unix epoch, for tickets; default the wall clock */
    readonly now?: () => number
    /** milliseconds since the Unix epoch, for the ticket age (PROTOCOL.md 6.2); default `now` * 1000, or the wall clock */
    readonly nowMs?: () => number
    /** milliseconds, for log lines and the per-source window; default systemClock */
    readonly clock?: Clock
    /** one call per connection event; default JSON lines on stdout */
    readonly log?: (line: LogLine) => void
    /**
     * DATA records for the application, with the session they came on: answers sent through
     * `session` reach that session only (none once it is closed or replaced)
     */
    /** `early`: the content came as resumption early data (0-RTT, PROTOCOL.md 9.3) */
    readonly onData?: (device: DeviceRecord, content: Buffer, session: SessionLink, early: boolean) => void
    /**
     * A session became its device's live session here (confirmed), or stopped being it (closed,
     * superseded): the node records it in the store's live view (PROTOCOL.md 8, one live session
     * per device across a cluster). Called after the server's own tables changed; must not throw.
     */
    readonly onLive?: (s: LiveSession) => void
    readonly onEnded?: (s: LiveSession) => void
    /** tests: X25519 hook, randomness */
    readonly dh?: Dh
    readonly rng?: RandomSource
}

/** A live session as the live view records it. */
export interface LiveSession {
    readonly deviceId: string
    readonly deviceName: string
    /** unique within this process */
    readonly sessionId: string
    readonly remote: string
    /** milliseconds since the Unix epoch (the server's clock) */
    readonly since: number
    readonly generation: number
    readonly resumed: boolean
}

/** One session's way back to its device, as the application gets it with each DATA. */
export interface SessionLink {
    /** Sends one DATA record on this session; false (nothing sent) once it is closed. */
    send(content: Buffer): boolean
    /** Sends CLOSE(code) on this session and closes it. */
    close(code: number): void
}

/** A running gateway. */
export interface Gateway {
    readonly port: number
    /** Sends a DATA record to the device's live session; returns how many got it (0 or 1). */
    send(deviceId: string, content: Buffer): number
    /**
     * Closes the device's sessions with CLOSE(code) (e.g. REVOKED): the live one and any not
     * yet confirmed; returns how many.
     */
    closeDevice(deviceId: string, code: number): number
    /**
     * Closes the device's live session with CLOSE(code) unless it is `keep` (the session another
     * node or this one just made live); returns whether one was closed.
     */
    closeSessionUnless(deviceId: string, keep: string, code: number): boolean
    /** The live sessions here, with the time of each one's last frame. */
    live(): { session: LiveSession; lastActivityMs: number }[]
    /** The device's live session here, if any. */
    liveOf(deviceId: string): LiveSession | undefined
    /** The device's live session, as a list of 0 or 1 (test hook: its CipherStates, e.g. to move n). */
    sessionsOf(deviceId: string): Session[]
    /** Live connections, for tests and metrics. */
    readonly stats: { connections: number; sessions: number; handshakes: number }
    /** Open sockets: the live connections' and those lingering after a close (PROTOCOL.md 9.4). */
    readonly sockets: number
    /**
     * Stops accepting, sends CLOSE(SHUTDOWN) to every session, waits up to shutdownGraceMs for
     * the peers to close, then destroys every socket left.
     */
    close(): Promise<void>
}

/**
 * Handshake attempts per source address, counted in fixed windows (PROTOCOL.md 9.4): a source's
 * window starts at its first attempt and lasts `windowMs`; the first attempt after it starts the
 * next window. Time is passed in.
 *
 * An entry whose window has ended counts for nothing (the source's next attempt starts afresh),
 * so such entries are dropped whenever the table has doubled since the last sweep: a flood from
 * many addresses costs memory for the sources of one window, not for every source ever seen.
 * The table never holds more than `maxSources` entries: past that the least recently seen source
 * is forgotten (a Map iterates in insertion order, and a counted source is moved to the end). A
 * forgotten source starts afresh, so a flood from more than `maxSources` addresses in one window
 * is bounded in memory rather than in attempts; the handshake cap still bounds the work.
 */
export class SourceAttempts {
    readonly #table = new Map<string, { count: number; since: number }>()
    #sweepAt = SWEEP_MIN

    constructor(
        readonly windowMs: number,
        readonly maxSources: number = DEFAULT_POLICY.maxSources
    ) {}

    /** Entries held (tests). */
    get size(): number {
        return this.#table.size
    }

    /** Counts one attempt from `source` at `nowMs`; returns the attempts in its window, this one included. */
    count(source: string, nowMs: number): number {
        let a = this.#table.get(source)
        if (a !== undefined) this.#table.delete(source) // re-inserted below: most recently seen
        if (a === undefined || nowMs - a.since >= this.windowMs) {
            if (a === undefined && this.#table.size >= this.#sweepAt) this.#sweep(nowMs)
            a = { count: 0, since: nowMs }
        }
        this.#table.set(source, a)
        for (const oldest of this.#table.keys()) {
            if (this.#table.size <= this.maxSources) break
            this.#table.delete(oldest)
        }
        return ++a.count
    }

    #sweep(nowMs: number): void {
        for (const [source, a] of this.#table) if (nowMs - a.since >= this.windowMs) this.#table.delete(source)
        this.#sweepAt = Math.max(SWEEP_MIN, 2 * this.#table.size)
    }
}

/** The table size below which SourceAttempts never sweeps. */
const SWEEP_MIN = 1024

/** At most this many `ss` values are kept (one per pairing; a re-paired device's old one ages out). */
export const SS_CACHE_MAX = 65536

/** A Map that forgets its oldest entry when a new one would pass `max` (the `ss` cache). */
export class BoundedMap<K, V> extends Map<K, V> {
    constructor(readonly max: number) {
        super()
    }
    override set(key: K, value: V): this {
        if (!this.has(key) && this.size >= this.max) this.delete(this.keys().next().value as K)
        return super.set(key, value)
    }
}

/** A device's established connections: the live one, and those not yet confirmed (PROTOCOL.md 8). */
interface DeviceSessions {
    live: Connection | undefined
    readonly pending: Set<Connection>
}

/** Starts the gateway. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
    const policy = resolvePolicy(opts.policy)
    const clock = opts.clock ?? systemClock
    const ctx: ResponderContext = {
        registry: opts.registry,
        identity: opts.state.identity,
        ticketKeys: opts.state.ticketKeys,
        policy,
        now: opts.now ?? (() => Math.floor(Date.now() / 1000)),
        nowMs: opts.nowMs ?? (opts.now !== undefined ? () => (opts.now as () => number)() * 1000 : () => Date.now()),
        rng: opts.rng,
        dh: opts.dh,
        ssCache: new BoundedMap(SS_CACHE_MAX),
    }
    const log = opts.log ?? ((l: LogLine) => process.stdout.write(JSON.stringify(l) + "\n"))
    const conns = new Set<Connection>()
    // every accepted socket until its close event, lingering ones included (shutdown destroys them)
    const sockets = new Set<Socket>()
    // open sockets per source address: an entry exists only while one is open, so the table is
    // bounded by the connections themselves
    const openBySource = new Map<string, number>()
    // established connections by device id, so send/closeDevice do not scan every connection
    const byDevice = new Map<string, DeviceSessions>()
    const attempts = new SourceAttempts(policy.perSourceWindowMs, policy.maxSources)
    let handshakes = 0

    const since = new WeakMap<Connection, number>()
    const liveSession = (c: Connection, device: DeviceRecord): LiveSession => ({
        deviceId: device.id,
        deviceName: device.name,
        sessionId: c.id,
        remote: c.source,
        since: since.get(c) ?? clock.nowMs(),
        generation: c.generation,
        resumed: c.resumed,
    })
    const report = (fn: ((s: LiveSession) => void) | undefined, s: LiveSession) => {
        try {
            fn?.(s)
        } catch {
            // the live view is the node's: a failure there must not break a connection
        }
    }

    /** The device's live session becomes `c`; the one it replaces is closed with CLOSE(SUPERSEDED). */
    const makeLive = (c: Connection, entry: DeviceSessions) => {
        const old = entry.live
        entry.pending.delete(c)
        entry.live = c
        if (old !== undefined && old !== c) old.close(Code.SUPERSEDED, "superseded")
        const device = c.device
        if (device !== undefined && entry.live === c) {
            since.set(c, clock.nowMs())
            report(opts.onLive, liveSession(c, device))
        }
    }

    const host: ConnectionHost = {
        policy,
        clock,
        log,
        admit(c, countAttempt) {
            // the attempt counts even when the cap refuses it
            const n = countAttempt ? attempts.count(c.source, clock.nowMs()) : 0
            if (n > policy.perSourceAttempts || handshakes >= policy.maxConcurrentHandshakes) return false
            handshakes++
            return true
        },
        handshakeEnded() {
            handshakes--
        },
        established(c, device, confirmed) {
            let entry = byDevice.get(device.id)
            if (entry === undefined) byDevice.set(device.id, (entry = { live: undefined, pending: new Set() }))
            // a session that is not confirmed yet (a replayed first frame looks like one) is
            // never live: it waits, for at most the handshake timeout, for its first
            // authenticated record (PROTOCOL.md 8), so a replayer holds no live session
            if (confirmed) {
                makeLive(c, entry)
                return true
            }
            entry.pending.add(c)
            return false
        },
        confirmed(c, device) {
            const entry = byDevice.get(device.id)
            if (entry !== undefined && entry.live !== c) makeLive(c, entry)
        },
        closed(c, device) {
            conns.delete(c)
            if (device === undefined) return
            const entry = byDevice.get(device.id)
            if (entry === undefined) return
            if (entry.live === c) {
                entry.live = undefined
                report(opts.onEnded, liveSession(c, device))
            }
            entry.pending.delete(c)
            if (entry.live === undefined && entry.pending.size === 0) byDevice.delete(device.id)
        },
        deliver(device, content, c, early) {
            opts.onData?.(device, content, linkOf(c), early)
        },
    }

    // one link per connection, so the application can tell its sessions apart by identity
    const links = new WeakMap<Connection, SessionLink>()
    const linkOf = (c: Connection): SessionLink => {
        let l = links.get(c)
        if (l === undefined) {
            l = {
                send: content => {
                    if (c.phase !== ConnPhase.Established) return false
                    c.send(content)
                    return true
                },
                close: code => c.close(code, "closed"),
            }
            links.set(c, l)
        }
        return l
    }

    const server = createServer(socket => {
        const source = socket.remoteAddress ?? "?"
        const open = openBySource.get(source) ?? 0
        if (open >= policy.perSourceConnections) {
            // refused before any state exists: best-effort BUSY, and the descriptor goes at once
            socket.on("error", () => {})
            socket.write(encodeFrame(FrameType.REJECT, Buffer.from([Code.BUSY])))
            socket.destroy()
            const now = clock.nowMs()
            log({
                ts: new Date(now).toISOString(),
                event: "connection",
                source,
                ms: 0,
                outcome: "reject",
                code: "BUSY",
                detail: "per-source connections",
            })
            return
        }
        openBySource.set(source, open + 1)
        sockets.add(socket)
        socket.setNoDelay(true)
        socket.setKeepAlive(true, policy.keepAliveMs)
        const c = new Connection(socket, source, new Responder(ctx), host)
        conns.add(c)
        socket.on("data", chunk => c.receive(chunk))
        socket.on("error", () => c.finish(true))
        socket.on("close", () => {
            sockets.delete(socket)
            const n = (openBySource.get(source) ?? 1) - 1
            if (n > 0) openBySource.set(source, n)
            else openBySource.delete(source)
            c.peerGone()
        })
    })
    server.maxConnections = 100_000

    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve())
    })
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0

    const liveOf = (deviceId: string): Connection | undefined => {
        const c = byDevice.get(deviceId)?.live
        return c !== undefined && c.phase === ConnPhase.Established && c.device?.id === deviceId ? c : undefined
    }

    return {
        port,
        send(deviceId, content) {
            const c = liveOf(deviceId)
            if (c === undefined) return 0
            c.send(content)
            return 1
        },
        closeDevice(deviceId, code) {
            const entry = byDevice.get(deviceId)
            if (entry === undefined) return 0
            const all = [...(entry.live === undefined ? [] : [entry.live]), ...entry.pending]
            for (const c of all) c.close(code, "closed")
            return all.length
        },
        closeSessionUnless(deviceId, keep, code) {
            const c = byDevice.get(deviceId)?.live
            if (c === undefined || c.id === keep) return false
            c.close(code, "superseded")
            return true
        },
        liveOf(deviceId) {
            const c = byDevice.get(deviceId)?.live
            const device = c?.device
            return c !== undefined && device !== undefined ? liveSession(c, device) : undefined
        },
        live() {
            const out: { session: LiveSession; lastActivityMs: number }[] = []
            for (const entry of byDevice.values()) {
                const c = entry.live
                const device = c?.device
                if (c !== undefined && device !== undefined) out.push({ session: liveSession(c, device), lastActivityMs: c.lastActivityMs })
            }
            return out
        },
        sessionsOf(deviceId) {
            const s = liveOf(deviceId)?.session
            return s === undefined ? [] : [s]
        },
        get stats() {
            let sessions = 0
            for (const c of conns) if (c.phase === ConnPhase.Established) sessions++
            return { connections: conns.size, sessions, handshakes }
        },
        get sockets() {
            return sockets.size
        },
        async close() {
            const closed = new Promise<void>(resolve => server.close(() => resolve()))
            for (const c of [...conns]) c.close(Code.SHUTDOWN)
            // the peers have the grace period to read CLOSE(SHUTDOWN) and close; a silent one
            // must not keep the process alive
            let timer: NodeJS.Timeout | undefined
            const grace = new Promise<"grace">(resolve => (timer = setTimeout(() => resolve("grace"), policy.shutdownGraceMs)))
            const outcome = await Promise.race([closed.then(() => "closed" as const), grace])
            clearTimeout(timer)
            if (outcome === "grace") {
                const left = sockets.size
                for (const s of [...sockets]) s.destroy()
                log({ ts: new Date(clock.nowMs()).toISOString(), event: "shutdown", outcome: "destroyed", sockets: left })
                await closed
            }
        },
    }
}
