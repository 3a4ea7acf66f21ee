// The gateway's TCP server: node:net, one Connection (a FrameDecoder and a Responder) per
// socket, and the edge policies of PROTOCOL.md 9.4: handshake timeout, idle timeout, the frame
// size limit (FrameDecoder), a cap on concurrent handshakes and a per-source limit on handshake
// attempts (REJECT(BUSY)), graceful close (CLOSE(SHUTDOWN)). One JSON line per connection event:
// device name, outcome, timings; never keys, tickets or payloads.
//
// The server keeps what connections share: the set of connections, the index of established
// ones by device, the per-source attempt table and the count of handshakes in progress. Each
// connection's lifecycle is its own (connection.ts).
import { createServer } from "node:net"
import { Connection, ConnPhase, systemClock, type Clock, type ConnectionHost, type LogLine } from "./connection.js"
import type { RandomSource } from "./crypto/random.js"
import type { KeyPair } from "./crypto/x25519.js"
import { resolvePolicy, type ServerPolicy } from "./policy.js"
import type { DeviceRecord, Registry } from "./registry/registry.js"
import type { Dh } from "./session/handshake.js"
import { Responder, type ResponderContext } from "./session/responder.js"
import type { Session } from "./session/session.js"
import type { TicketKeySet } from "./tickets.js"
import { Code } from "./wire.js"

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
    /** milliseconds, for log lines and the per-source window; default systemClock */
    readonly clock?: Clock
    /** one call per connection event; default JSON lines on stdout */
    readonly log?: (line: LogLine) => void
    /** DATA records for the application */
    readonly onData?: (device: DeviceRecord, content: Buffer) => void
    /** tests: X25519 hook, randomness */
    readonly dh?: Dh
    readonly rng?: RandomSource
}

/** A running gateway. */
export interface Gateway {
    readonly port: number
    /** Sends a DATA record to every live session of the device; returns how many. */
    send(deviceId: string, content: Buffer): number
    /** Closes the device's live sessions with CLOSE(code) (e.g. REVOKED); returns how many. */
    closeDevice(deviceId: string, code: number): number
    /** The live sessions of a device (test hook: their CipherStates, e.g. to move n). */
    sessionsOf(deviceId: string): Session[]
    /** Live connections, for tests and metrics. */
    readonly stats: { connections: number; sessions: number; handshakes: number }
    /** Stops accepting, sends CLOSE(SHUTDOWN) to every session, closes every socket. */
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
 */
export class SourceAttempts {
    readonly #table = new Map<string, { count: number; since: number }>()
    #sweepAt = SWEEP_MIN

    constructor(readonly windowMs: number) {}

    /** Entries held (tests). */
    get size(): number {
        return this.#table.size
    }

    /** Counts one attempt from `source` at `nowMs`; returns the attempts in its window, this one included. */
    count(source: string, nowMs: number): number {
        let a = this.#table.get(source)
        if (a === undefined || nowMs - a.since >= this.windowMs) {
            if (a === undefined && this.#table.size >= this.#sweepAt) this.#sweep(nowMs)
            a = { count: 0, since: nowMs }
            this.#table.set(source, a)
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
        rng: opts.rng,
        dh: opts.dh,
        ssCache: new Map(),
    }
    const conns = new Set<Connection>()
    // established connections by device id, so send/closeDevice do not scan every connection
    const byDevice = new Map<string, Set<Connection>>()
    const attempts = new SourceAttempts(policy.perSourceWindowMs)
    let handshakes = 0

    const host: ConnectionHost = {
        policy,
        clock,
        log: opts.log ?? ((l: LogLine) => process.stdout.write(JSON.stringify(l) + "\n")),
        admit(c) {
            // the attempt counts even when the cap refuses it
            const n = attempts.count(c.source, clock.nowMs())
            if (n > policy.perSourceAttempts || handshakes >= policy.maxConcurrentHandshakes) return false
            handshakes++
            return true
        },
        handshakeEnded() {
            handshakes--
        },
        established(c, device) {
            const set = byDevice.get(device.id) ?? new Set<Connection>()
            byDevice.set(device.id, set.add(c))
        },
        closed(c, device) {
            conns.delete(c)
            if (device === undefined) return
            const set = byDevice.get(device.id)
            set?.delete(c)
            if (set?.size === 0) byDevice.delete(device.id)
        },
        deliver(device, content) {
            opts.onData?.(device, content)
        },
    }

    const server = createServer(socket => {
        socket.setNoDelay(true)
        const c = new Connection(socket, socket.remoteAddress ?? "?", new Responder(ctx), host)
        conns.add(c)
        socket.on("data", chunk => c.receive(chunk))
        socket.on("error", () => c.finish(true))
        socket.on("close", () => c.peerGone())
    })
    server.maxConnections = 100_000

    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve())
    })
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0

    const liveFor = (deviceId: string) =>
        [...(byDevice.get(deviceId) ?? [])].filter(c => c.phase === ConnPhase.Established && c.device?.id === deviceId)

    return {
        port,
        send(deviceId, content) {
            const live = liveFor(deviceId)
            for (const c of live) c.send(content)
            return live.length
        },
        closeDevice(deviceId, code) {
            const live = liveFor(deviceId)
            for (const c of live) c.close(code, "closed")
            return live.length
        },
        sessionsOf(deviceId) {
            return liveFor(deviceId).flatMap(c => (c.session === undefined ? [] : [c.session]))
        },
        get stats() {
            let sessions = 0
            for (const c of conns) if (c.phase === ConnPhase.Established) sessions++
            return { connections: conns.size, sessions, handshakes }
        },
        async close() {
            const closed = new Promise<void>(resolve => server.close(() => resolve()))
            for (const c of [...conns]) c.close(Code.SHUTDOWN)
            await closed
        },
    }
}
