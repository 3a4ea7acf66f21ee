// The gateway's TCP server: node:net, one FrameDecoder and one Responder per connection, and
// the edge policies of PROTOCOL.md 9.4 and issue 5: handshake timeout, idle timeout, the
// frame size limit (FrameDecoder), a cap on concurrent handshakes and a per-source limit on
// handshake attempts (REJECT(BUSY)), graceful close (CLOSE(SHUTDOWN)). One JSON line per
// connection event: device name, outcome, timings; never keys, tickets or payloads.
import { createServer, type Socket } from "node:net"
import type { RandomSource } from "./crypto/random.js"
import type { KeyPair } from "./crypto/x25519.js"
import { resolvePolicy, type ServerPolicy } from "./policy.js"
import type { DeviceRecord, Registry } from "./registry/registry.js"
import type { Dh } from "./session/handshake.js"
import type { Session } from "./session/session.js"
import { Phase, Responder, type ResponderContext, type Step } from "./session/responder.js"
import type { TicketKeySet } from "./tickets.js"
import { Code, codeName, encodeFrame, FrameDecoder, FrameType, type Frame } from "./wire.js"

export { DEFAULT_POLICY } from "./policy.js"
export type { ServerPolicy } from "./policy.js"

/** The identity and ticket keys (a loaded state directory fits). */
export interface ServerState {
    readonly identity: KeyPair
    readonly ticketKeys: TicketKeySet
}

/** One log line's fields. */
export type LogLine = Record<string, string | number | boolean | undefined>

/** Options of startGateway. */
export interface GatewayOptions {
    readonly host?: string
    /** 0 for any free port */
    readonly port?: number
    readonly registry: Registry
    readonly state: ServerState
    /** fields not given take DEFAULT_POLICY's (policy.ts) */
    readonly policy?: Partial<ServerPolicy>
    /** seconds since the Unix epoch; default the wall clock */
    readonly now?: () => number
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

interface Conn {
    readonly socket: Socket
    readonly responder: Responder
    readonly source: string
    readonly t0: number
    handshaking: boolean
    timer: NodeJS.Timeout | undefined
    /** the timer is the idle timeout: each frame refreshes it instead of making a new one */
    idleArmed: boolean
    queue: Promise<void>
    closed: boolean
    /** set once the session is established: the key of `byDevice` */
    deviceId?: string
}

/** Starts the gateway. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
    const policy = resolvePolicy(opts.policy)
    const log = opts.log ?? ((l: LogLine) => process.stdout.write(JSON.stringify(l) + "\n"))
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
    const conns = new Set<Conn>()
    // established connections by device id, so send/closeDevice do not scan every connection
    const byDevice = new Map<string, Set<Conn>>()
    const attempts = new Map<string, { count: number; since: number }>()
    let handshakes = 0

    const event = (c: Conn, fields: LogLine) =>
        log({ ts: new Date().toISOString(), event: "connection", source: c.source, ms: Date.now() - c.t0, ...fields })

    function endHandshake(c: Conn): void {
        if (c.handshaking) {
            c.handshaking = false
            handshakes--
        }
    }

    function finish(c: Conn, destroy: boolean): void {
        if (c.closed) return
        c.closed = true
        endHandshake(c)
        clearTimeout(c.timer)
        conns.delete(c)
        if (c.deviceId !== undefined) {
            const set = byDevice.get(c.deviceId)
            set?.delete(c)
            if (set?.size === 0) byDevice.delete(c.deviceId)
        }
        if (destroy) c.socket.destroy()
        else c.socket.end()
    }

    function arm(c: Conn, ms: number, onTimeout: () => void): void {
        clearTimeout(c.timer)
        c.timer = setTimeout(onTimeout, ms)
        c.timer.unref()
    }

    /**
     * Writes frames as one batch: corked, so the kernel gets one writev for a handshake's
     * answer and its TICKET, or a KEY_UPDATE and its record, instead of one write per frame.
     */
    function writeFrames(c: Conn, frames: readonly Buffer[]): void {
        if (frames.length === 1) c.socket.write(frames[0] as Buffer)
        else if (frames.length > 1) {
            c.socket.cork()
            for (const f of frames) c.socket.write(f)
            c.socket.uncork()
        }
    }

    /** The per-source limit and the handshake cap, at the first handshake frame (4.1 step 2). */
    function admit(c: Conn): boolean {
        const now = Date.now()
        let a = attempts.get(c.source)
        if (a === undefined || now - a.since >= policy.perSourceWindowMs) {
            a = { count: 0, since: now }
            attempts.set(c.source, a)
        }
        a.count++
        return a.count <= policy.perSourceAttempts && handshakes < policy.maxConcurrentHandshakes
    }

    function apply(c: Conn, step: Step): void {
        writeFrames(c, step.frames)
        if (step.event !== undefined) {
            const { code, ...rest } = step.event
            event(c, { ...rest, code: code === undefined ? undefined : codeName(code) })
        }
        const s = step.next
        if (s.phase === Phase.Established) {
            endHandshake(c)
            if (c.idleArmed) c.timer?.refresh()
            else {
                // the first step into Established: index the connection by its device
                c.idleArmed = true
                c.deviceId = s.device.id
                const set = byDevice.get(s.device.id) ?? new Set<Conn>()
                byDevice.set(s.device.id, set.add(c))
                arm(c, policy.idleTimeoutMs, () => {
                    writeFrames(c, c.responder.close(Code.IDLE))
                    event(c, { outcome: "idle-timeout", deviceName: s.device.name })
                    finish(c, false)
                })
            }
            // after indexing: an application that answers 0-RTT data at once must find this
            // connection (send() looks connections up by device)
            for (const d of step.delivered) opts.onData?.(s.device, d)
        }
        if (step.close) finish(c, false)
    }

    async function onFrame(c: Conn, f: Frame): Promise<void> {
        if (c.closed) return
        const phase = c.responder.state.phase
        if ((phase === Phase.AwaitFirst || phase === Phase.AwaitHsInit) && (f.type === FrameType.HS_INIT || f.type === FrameType.RESUME_INIT)) {
            if (!c.handshaking) {
                if (!admit(c)) {
                    c.socket.write(encodeFrame(FrameType.REJECT, Buffer.from([Code.BUSY])))
                    event(c, { outcome: "reject", code: "BUSY", detail: "handshake cap or per-source limit" })
                    finish(c, false)
                    return
                }
                c.handshaking = true
                handshakes++
            }
        }
        let step: Step
        try {
            step = await c.responder.receive(f)
        } catch (err) {
            event(c, { outcome: "error", detail: (err as Error).name })
            finish(c, true)
            return
        }
        if (!c.closed) apply(c, step)
    }

    /** The frames of one chunk, in order, one at a time (each may wait for the registry). */
    async function onFrames(c: Conn, frames: readonly Frame[]): Promise<void> {
        for (const f of frames) {
            if (c.closed) return
            await onFrame(c, f)
        }
    }

    const server = createServer(socket => {
        socket.setNoDelay(true)
        const c: Conn = {
            socket,
            responder: new Responder(ctx),
            source: socket.remoteAddress ?? "?",
            t0: Date.now(),
            handshaking: false,
            timer: undefined,
            idleArmed: false,
            queue: Promise.resolve(),
            closed: false,
        }
        conns.add(c)
        arm(c, policy.handshakeTimeoutMs, () => {
            event(c, { outcome: "handshake-timeout" })
            finish(c, true)
        })
        const decoder = new FrameDecoder()
        socket.on("data", chunk => {
            let frames: Frame[]
            try {
                frames = decoder.push(chunk)
            } catch {
                // "A receiver MUST close the connection when length is 0 or larger than MAX_FRAME_LEN"
                event(c, { outcome: "bad-frame-length" })
                finish(c, true)
                return
            }
            if (frames.length > 0) c.queue = c.queue.then(() => onFrames(c, frames))
        })
        socket.on("error", () => finish(c, true))
        socket.on("close", () => {
            if (!c.closed) {
                const s = c.responder.state
                event(c, { outcome: "peer-gone", deviceName: s.phase === Phase.Established ? s.device.name : undefined })
            }
            finish(c, true)
        })
    })
    server.maxConnections = 100_000

    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve())
    })
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0

    const liveFor = (deviceId: string) =>
        [...(byDevice.get(deviceId) ?? [])].filter(c => {
            const s = c.responder.state
            return s.phase === Phase.Established && s.device.id === deviceId && !c.closed
        })

    return {
        port,
        send(deviceId, content) {
            const live = liveFor(deviceId)
            for (const c of live) writeFrames(c, c.responder.data(content))
            return live.length
        },
        closeDevice(deviceId, code) {
            const live = liveFor(deviceId)
            for (const c of live) {
                writeFrames(c, c.responder.close(code))
                event(c, { outcome: "closed", code: codeName(code) })
                finish(c, false)
            }
            return live.length
        },
        sessionsOf(deviceId) {
            return liveFor(deviceId).flatMap(c => {
                const s = c.responder.state
                return s.phase === Phase.Established ? [s.session] : []
            })
        },
        get stats() {
            let sessions = 0
            for (const c of conns) if (c.responder.state.phase === Phase.Established) sessions++
            return { connections: conns.size, sessions, handshakes }
        },
        async close() {
            const closed = new Promise<void>(resolve => server.close(() => resolve()))
            for (const c of [...conns]) {
                writeFrames(c, c.responder.close(Code.SHUTDOWN))
                finish(c, false)
            }
            await closed
        },
    }
}
