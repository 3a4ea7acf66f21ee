// One TCP connection of the gateway: its FrameDecoder, its Responder, its timer and its lifecycle
// as one explicit phase, driven by the Responder's:
//
//     Handshaking  --a step into the Responder's Established-->  Established
//     Handshaking | Established  --finish()-->  Closed
//
// Handshaking is the Responder's AwaitFirst and AwaitHsInit, Established its Established; a step
// into the Responder's Closed, and every close the server asks for, ends in finish() at once. The
// phase changes in #apply (from a step's `next`) and in finish() only, so it cannot disagree with
// the Responder's. Each phase holds what only it has: in Handshaking whether the server counts
// the handshake against its cap and the handshake timeout (the shorter hsInitTimeoutMs once a
// ticket was refused, whose slot is released then); in Established the device the connection is
// indexed by, whether it is the device's live session, and its timer: the idle timeout
// (refreshed by every frame) when live, the handshake timeout for its first authenticated record
// otherwise (PROTOCOL.md 8).
//
// The socket is bounded on both ends of its life: writes the kernel has not taken count against
// maxWriteBufferBytes (a peer that does not read is destroyed), and after end() a peer that
// never sends its FIN is destroyed lingerMs later.
//
// Every clock read (log timestamps, durations) goes through the injected Clock; the timers are
// Node's. The socket is the small ConnectionSocket interface (a net.Socket fits), so the tests
// drive a Connection with frames and a fake clock, without a network.
import type { ServerPolicy } from "./policy.js"
import type { DeviceRecord } from "./registry/registry.js"
import { Phase, type Responder, type Step } from "./session/responder.js"
import type { Session } from "./session/session.js"
import { StoreUnavailable } from "./store/types.js"
import { RegistryBusy } from "./registry/registry.js"
import { Code, codeName, encodeFrame, FrameDecoder, FrameType, type Frame } from "./wire.js"

/** Milliseconds since the Unix epoch on a clock that never goes back. */
export interface Clock {
    nowMs(): number
}

/**
 * The process's monotonic clock, anchored at the wall clock when the process started (so log
 * timestamps are dates; they do not follow later adjustments of the system clock).
 */
export const systemClock: Clock = { nowMs: () => performance.timeOrigin + performance.now() }

/** One log line's fields. */
export type LogLine = Record<string, string | number | boolean | undefined>

/** What a connection does to its socket (a net.Socket fits; the tests pass a twin). */
export interface ConnectionSocket {
    /** bytes written but not yet taken by the kernel */
    readonly writableLength: number
    write(data: Buffer): unknown
    cork(): void
    uncork(): void
    end(): unknown
    destroy(): unknown
}

/** What a connection needs from its server: policy, clock, log, and the shared tables. */
export interface ConnectionHost {
    readonly policy: ServerPolicy
    readonly clock: Clock
    log(line: LogLine): void
    /**
     * A handshake frame: the handshake cap, and with `countAttempt` (the connection's first) the
     * per-source limit (PROTOCOL.md 4.1 step 2, 9.4). true counts the handshake until handshakeEnded.
     */
    admit(c: Connection, countAttempt: boolean): boolean
    /** A counted handshake is over (established or closed). */
    handshakeEnded(c: Connection): void
    /**
     * The connection entered Established: index it by its device. `confirmed` when the device
     * has already proved it holds the session's keys (accepted early data).
     * @returns true if it is the device's live session now; false while it waits for its first
     *     authenticated record (confirmed), because another session is live
     */
    established(c: Connection, device: DeviceRecord, confirmed: boolean): boolean
    /** A connection that was not live decrypted its first record from the device: it becomes the live one. */
    confirmed(c: Connection, device: DeviceRecord): void
    /** The connection closed: forget it (`device` is the one it was indexed by, if any). */
    closed(c: Connection, device: DeviceRecord | undefined): void
    /** DATA content for the application, in order, with the connection it came on. */
    deliver(device: DeviceRecord, content: Buffer, c: Connection, early: boolean): void
}

/** The closed set of connection phases. */
export const ConnPhase = { Handshaking: 0, Established: 1, Closed: 2 } as const
export type ConnPhase = (typeof ConnPhase)[keyof typeof ConnPhase]

type Lifecycle =
    | {
          readonly phase: typeof ConnPhase.Handshaking
          readonly counted: boolean
          readonly attempted: boolean
          readonly timer: NodeJS.Timeout
      }
    | {
          readonly phase: typeof ConnPhase.Established
          readonly device: DeviceRecord
          readonly live: boolean
          readonly timer: NodeJS.Timeout
      }
    | { readonly phase: typeof ConnPhase.Closed }

const CLOSED: Lifecycle = { phase: ConnPhase.Closed }

const isHandshakeFrame = (type: number) => type === FrameType.HS_INIT || type === FrameType.RESUME_INIT

let connectionIds = 0

/** One connection: frames in, steps of its Responder applied, frames out. */
export class Connection {
    readonly #socket: ConnectionSocket
    readonly #host: ConnectionHost
    readonly #decoder = new FrameDecoder()
    readonly #t0: number
    #life: Lifecycle
    /**
     * Frames received and not processed yet, from #next on. They are processed in order at once
     * (the socket's data callback runs the records of a confirmed session to the application
     * synchronously: no promise per frame); a step that waits for the registry (a handshake,
     * a confirmation) holds the rest until it is done (#waiting).
     */
    #backlog: Frame[] = []
    #next = 0
    /** the step being waited for, while one is */
    #waiting: Promise<void> | undefined
    /** after end(): destroys a socket whose peer never closes its side */
    #linger: NodeJS.Timeout | undefined
    /** the server's id for this connection, unique within the process (the live view's session id) */
    readonly id: string
    /** when the last frame arrived (the live view's last activity), on the host's clock */
    lastActivityMs: number
    /** the generation of the ticket issued to this session (0 until one is) */
    generation = 0
    /** the session is a resumption */
    resumed = false

    /** Starts the handshake timeout. */
    constructor(
        socket: ConnectionSocket,
        /** the peer's address, the key of the per-source limit */
        readonly source: string,
        readonly responder: Responder,
        host: ConnectionHost
    ) {
        this.#socket = socket
        this.#host = host
        this.#t0 = host.clock.nowMs()
        this.lastActivityMs = this.#t0
        this.id = (++connectionIds).toString(36)
        const timer = this.#arm(host.policy.handshakeTimeoutMs, () => this.#handshakeTimeout())
        this.#life = { phase: ConnPhase.Handshaking, counted: false, attempted: false, timer }
    }

    /** The lifecycle phase. */
    get phase(): ConnPhase {
        return this.#life.phase
    }

    /** The device of an established connection. */
    get device(): DeviceRecord | undefined {
        return this.#life.phase === ConnPhase.Established ? this.#life.device : undefined
    }

    /** The session of an established connection (tests move its CipherStates' n). */
    get session(): Session | undefined {
        const s = this.responder.state
        return this.#life.phase === ConnPhase.Established && s.phase === Phase.Established ? s.session : undefined
    }

    /** Settles when every frame received so far has been processed (tests). */
    get settled(): Promise<void> {
        return (async () => {
            while (this.#waiting !== undefined) await this.#waiting
        })()
    }

    /** Bytes from the socket. A bad length field closes the connection (PROTOCOL.md 2.1). */
    receive(chunk: Buffer): void {
        if (this.#life.phase === ConnPhase.Closed) return
        let frames: Frame[]
        try {
            frames = this.#decoder.push(chunk)
        } catch {
            // "A receiver MUST close the connection when length is 0 or larger than MAX_FRAME_LEN"
            this.#event({ outcome: "bad-frame-length" })
            this.finish(true)
            return
        }
        if (frames.length === 0) return
        if (this.#next === this.#backlog.length) {
            this.#backlog = frames
            this.#next = 0
        } else for (const f of frames) this.#backlog.push(f)
        if (this.#waiting === undefined) this.#drain()
    }

    /** Processes the backlog in order until it is empty or a step has to wait. */
    #drain(): void {
        while (this.#next < this.#backlog.length) {
            if (this.#life.phase === ConnPhase.Closed) break
            const f = this.#backlog[this.#next++] as Frame
            const wait = this.#frame(f)
            if (wait !== undefined) {
                this.#waiting = wait.then(() => {
                    this.#waiting = undefined
                    this.#drain()
                })
                return
            }
        }
        this.#backlog = []
        this.#next = 0
    }

    /**
     * Writes frames as one batch: corked, so the kernel gets one writev for a handshake's answer
     * and its TICKET, or a KEY_UPDATE and its record, instead of one write per frame. A peer that
     * lets more than maxWriteBufferBytes pile up (it does not read) is destroyed, so it cannot
     * grow the gateway's memory.
     */
    write(frames: readonly Buffer[]): void {
        if (frames.length === 1) this.#socket.write(frames[0] as Buffer)
        else if (frames.length > 1) {
            this.#socket.cork()
            for (const f of frames) this.#socket.write(f)
            this.#socket.uncork()
        }
        if (this.#socket.writableLength > this.#host.policy.maxWriteBufferBytes && this.#life.phase !== ConnPhase.Closed) {
            this.#event({ outcome: "write-buffer-full", deviceName: this.device?.name, bytes: this.#socket.writableLength })
            this.finish(true)
        }
    }

    /**
     * Sends a DATA record (a KEY_UPDATE may come first).
     * @throws if the connection is not established
     */
    send(content: Buffer): void {
        this.write(this.responder.data(content))
    }

    /** Sends CLOSE(code) if a session exists, logs `outcome` if given, and closes; once. */
    close(code: number, outcome?: string): void {
        if (this.#life.phase === ConnPhase.Closed) return
        this.write(this.responder.close(code))
        if (outcome !== undefined) this.#event({ outcome, code: codeName(code) })
        this.finish(false)
    }

    /** The socket closed under us: logged unless we closed it first. */
    peerGone(): void {
        clearTimeout(this.#linger)
        this.#linger = undefined
        if (this.#life.phase !== ConnPhase.Closed) this.#event({ outcome: "peer-gone", deviceName: this.device?.name })
        this.finish(true)
    }

    /**
     * Ends the connection once: the timer, the server's tables, then the socket (destroy, or end
     * after pending writes and destroy lingerMs later if the peer has not closed by then).
     */
    finish(destroy: boolean): void {
        const life = this.#life
        if (life.phase === ConnPhase.Closed) return
        this.#life = CLOSED
        clearTimeout(life.timer)
        if (life.phase === ConnPhase.Handshaking && life.counted) this.#host.handshakeEnded(this)
        this.#host.closed(this, life.phase === ConnPhase.Established ? life.device : undefined)
        if (destroy) {
            this.#socket.destroy()
            return
        }
        this.#socket.end()
        this.#linger = this.#arm(this.#host.policy.lingerMs, () => {
            this.#linger = undefined
            this.#socket.destroy()
        })
    }

    /** A read the compiler does not narrow away: a call may have closed the connection. */
    #isClosed(): boolean {
        return this.#life.phase === ConnPhase.Closed
    }

    #handshakeTimeout(): void {
        this.#event({ outcome: "handshake-timeout" })
        this.finish(true)
    }

    /** One frame: undefined when it was processed at once, else the wait for its step. */
    #frame(f: Frame): Promise<void> | undefined {
        const life = this.#life
        if (life.phase === ConnPhase.Closed) return undefined
        if (life.phase === ConnPhase.Handshaking && !life.counted && isHandshakeFrame(f.type)) {
            if (!this.#host.admit(this, !life.attempted)) {
                this.write([encodeFrame(FrameType.REJECT, Buffer.from([Code.BUSY]))])
                this.#event({ outcome: "reject", code: codeName(Code.BUSY), detail: "handshake cap or per-source limit" })
                this.finish(false)
                return undefined
            }
            this.#life = { ...life, counted: true, attempted: true }
        }
        this.lastActivityMs = this.#host.clock.nowMs()
        let step: Step | Promise<Step>
        try {
            step = this.responder.step(f)
        } catch (err) {
            this.#failed(err)
            return undefined
        }
        if (step instanceof Promise)
            return step.then(
                s => {
                    if (this.#life.phase !== ConnPhase.Closed) this.#apply(s)
                },
                err => this.#failed(err)
            )
        if (this.#life.phase !== ConnPhase.Closed) this.#apply(step)
        return undefined
    }

    /** A step failed (thrown or rejected). */
    #failed(err: unknown): void {
        // the store is unreachable: nothing can be decided (no early data accepted, no ticket
        // checked), so a device still handshaking is asked to come back (BUSY), PROTOCOL.md 9.4
        const unavailable = err instanceof StoreUnavailable || err instanceof RegistryBusy
        if (unavailable && this.#life.phase === ConnPhase.Handshaking) {
            this.write([encodeFrame(FrameType.REJECT, Buffer.from([Code.BUSY]))])
            this.#event({ outcome: "reject", code: codeName(Code.BUSY), detail: "store unavailable" })
            this.finish(false)
            return
        }
        // established: the record is not processed (a confirmation, PROTOCOL.md 6.10); the
        // device comes back later and resends what was not acknowledged
        if (unavailable) {
            this.close(Code.BUSY, "store-unavailable")
            return
        }
        this.#event({ outcome: "error", detail: (err as Error).name })
        this.finish(true)
    }

    /** One step of the Responder: its frames, its log line, then the phase it leads to. */
    #apply(step: Step): void {
        this.write(step.frames)
        if (step.event?.generation !== undefined) this.generation = step.event.generation
        if (step.next.phase === Phase.Established) this.resumed = step.next.resumed
        if (step.event !== undefined) {
            const { code, ...rest } = step.event
            this.#event({ ...rest, code: code === undefined ? undefined : codeName(code) })
        }
        if (this.#isClosed()) return // the write buffer overflowed
        const s = step.next
        if (s.phase === Phase.Established) {
            const life = this.#life
            if (life.phase === ConnPhase.Established) {
                // a record decrypted: the device holds this session's keys
                if (life.live) life.timer.refresh()
                else if (!step.close) this.#confirm(life)
            } else if (life.phase === ConnPhase.Handshaking) this.#establish(life, s.device, step.delivered.length > 0)
            // after indexing: an application that answers 0-RTT data at once must find this
            // connection (the server's send() looks connections up by device)
            for (const d of step.delivered) {
                if (this.#isClosed()) break
                this.#host.deliver(s.device, d, this, step.early === true)
            }
        } else if (s.phase === Phase.AwaitHsInit) {
            const life = this.#life
            // TICKET_REJECTED: the refused resumption's slot is free again, and the device has
            // hsInitTimeoutMs for its HS_INIT (which is admitted against the cap again)
            if (life.phase === ConnPhase.Handshaking && life.counted) {
                clearTimeout(life.timer)
                this.#host.handshakeEnded(this)
                const timer = this.#arm(this.#host.policy.hsInitTimeoutMs, () => this.#handshakeTimeout())
                this.#life = { phase: ConnPhase.Handshaking, counted: false, attempted: true, timer }
            }
        }
        if (step.close) this.finish(false)
    }

    #establish(life: Extract<Lifecycle, { phase: typeof ConnPhase.Handshaking }>, device: DeviceRecord, confirmed: boolean): void {
        clearTimeout(life.timer)
        if (life.counted) this.#host.handshakeEnded(this)
        // a placeholder until the server answers: established() may close another connection
        this.#life = { phase: ConnPhase.Established, device, live: false, timer: life.timer }
        const live = this.#host.established(this, device, confirmed)
        if (this.#isClosed()) return
        this.#life = { phase: ConnPhase.Established, device, live, timer: live ? this.#idleTimer(device) : this.#unconfirmedTimer(device) }
    }

    #confirm(life: Extract<Lifecycle, { phase: typeof ConnPhase.Established }>): void {
        clearTimeout(life.timer)
        this.#life = { ...life, live: true, timer: this.#idleTimer(life.device) }
        this.#host.confirmed(this, life.device)
    }

    #idleTimer(device: DeviceRecord): NodeJS.Timeout {
        return this.#arm(this.#host.policy.idleTimeoutMs, () => {
            this.write(this.responder.close(Code.IDLE))
            this.#event({ outcome: "idle-timeout", deviceName: device.name })
            this.finish(false)
        })
    }

    /** A session that is not live must prove itself (its first record) within the handshake timeout. */
    #unconfirmedTimer(device: DeviceRecord): NodeJS.Timeout {
        return this.#arm(this.#host.policy.handshakeTimeoutMs, () => {
            this.write(this.responder.close(Code.IDLE))
            this.#event({ outcome: "unconfirmed-timeout", deviceName: device.name })
            this.finish(false)
        })
    }

    #arm(ms: number, onTimeout: () => void): NodeJS.Timeout {
        const timer = setTimeout(onTimeout, ms)
        timer.unref()
        return timer
    }

    /** Every line about a connection whose device is known names it (after the close too). */
    #event(fields: LogLine): void {
        const now = this.#host.clock.nowMs()
        this.#deviceName = this.device?.name ?? this.#deviceName
        const deviceName = fields["deviceName"] ?? this.#deviceName
        this.#host.log({
            ts: new Date(now).toISOString(),
            event: "connection",
            source: this.source,
            ms: Math.round(now - this.#t0),
            ...fields,
            ...(deviceName !== undefined ? { deviceName } : {}),
        })
    }
    #deviceName: string | undefined
}
