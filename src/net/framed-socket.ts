// The device's only door to the network: a TCP connection carrying length-prefixed frames
// (see ./frame.ts). This is the one module that touches the runtime's socket primitives; it
// replaces `@devicescript/net`'s `Socket`, which as shipped (2.16.4) has four problems:
//
// (a) `connect()` fails with "Assertion failed" when the server speaks first. The runtime
//     reports "open" and then "data" before the connecting fiber resumes; the stock module
//     signals both through one `ds.emitter`, whose handler wrapper keeps only the latest value,
//     so the waiter wakes with the "data" value (false) and `assert(v === true)` fails.
//     Here every event updates this object's state synchronously, and the waiting fiber is
//     only woken up: it re-reads the state, so coalesced wake-ups lose nothing.
// (b) `send()` sleeps on a -1 (busy) return and then throws anyway. Here a busy write is
//     retried with exponential backoff until a deadline (nothing is written on -1, so a retry
//     cannot duplicate bytes).
// (c) The runtime has one socket, and the stock module keeps it in a module global that a
//     second `connect` silently takes over. Here a second connect while one FramedSocket is
//     open throws, and every use of a closed FramedSocket throws a clear error.
// (d) Chunks arrive split or merged arbitrarily. Here frames are reassembled with one
//     MAX_FRAME-sized buffer per socket (and no copy at all when a frame lies inside one chunk).
//
// (e) The runtime's events carry no socket identity. The simulator's host drops events of a
//     socket once a newer one is opened or it was closed by the program, but an event it
//     posted before that (the peer's close right after a REJECT) still waits in the VM's
//     queue, and is dispatched after the program, having closed that socket, opened the
//     next: the new connection then fails with "closed". Here connect() claims the slot,
//     yields once with the new socket in a Draining state that ignores every event, so the
//     VM dispatches whatever was queued for the old socket, and only then opens the runtime
//     socket. Events that follow can only be the new socket's.
//
// The runtime's socket is process-global, so `current` below is the one module-level variable
// this needs; it is never exported.
import * as ds from "@devicescript/core"
import { encodeFrame, LEN_SIZE, MAX_FRAME, MAX_WIRE_FRAME, TYPE_SIZE } from "./frame"
import { ConnectOptions, Frame, Transport } from "./transport"

type SocketEvent = "open" | "close" | "data" | "error"
type DsSockets = typeof ds & {
    _socketOpen(host: string, port: number): number
    _socketClose(): number
    _socketWrite(buf: Buffer): number
    _socketOnEvent: (event: SocketEvent, arg?: Buffer | string) => void
}
const rt = ds as DsSockets

/** Default time for {@link FramedSocket.connect} to see the connection open. */
export const CONNECT_TIMEOUT_MS = 10000
/** Default time {@link FramedSocket.sendFrame} keeps retrying a busy socket. */
export const SEND_TIMEOUT_MS = 5000
/** First and largest pause between retries of a busy write. */
const SEND_BACKOFF_MIN_MS = 5
const SEND_BACKOFF_MAX_MS = 200
/**
 * Most received bytes held while nobody reads: the runtime does not apply back-pressure, so a
 * peer that floods the device is cut off rather than allowed to exhaust the heap.
 */
export const RX_QUEUE_MAX = 8 * MAX_WIRE_FRAME

/** Options of {@link FramedSocket.connect}; `timeoutMs` defaults to {@link CONNECT_TIMEOUT_MS}. */
export interface FramedSocketOptions extends ConnectOptions {
    /** How long `sendFrame` retries while the socket is busy; default {@link SEND_TIMEOUT_MS}. */
    sendTimeoutMs?: number
}

enum State {
    /** Waiting for the old socket's queued events to be dispatched (ignored), before opening. */
    Draining,
    Connecting,
    Open,
    /** The peer closed (or the runtime reported an error); buffered frames can still be read. */
    PeerClosed,
    /** A protocol violation was seen; the connection has been closed. */
    Failed,
    /** `close()` was called. */
    Closed,
}

/** The FramedSocket that receives the runtime's socket events, if any. */
let current: FramedSocket = null

function onSocketEvent(event: SocketEvent, arg?: Buffer | string) {
    if (current) current._onEvent(event, arg)
}

/**
 * A TCP connection that sends and receives Tether frames (`uint16_be length || type || body`).
 * At most one is open at a time (the runtime has one socket). One fiber may wait in
 * `recvFrame` at a time; sending and receiving may overlap.
 */
export class FramedSocket implements Transport {
    private state = State.Draining
    private opened = false
    /** Why the connection ended abnormally (socket error, violation, truncation). */
    private error: Error = null
    /** The fiber waiting for an event, at most one. */
    private waiter: ds.Fiber = null
    private sending = false

    // Received chunks not yet consumed, and how far the first one has been consumed.
    private queue: Buffer[] = []
    private queueOffset = 0
    private queued = 0

    // Reassembly of the current frame.
    private lenRead = 0
    private frameLen = 0
    private got = 0
    private rx: Buffer = null

    private constructor(
        public readonly name: string,
        private readonly sendTimeoutMs: number
    ) {}

    /**
     * Opens a TCP connection to the gateway.
     * Works when the server sends before this fiber resumes (shipped bug (a)).
     * @throws Error if another FramedSocket is open, the connection fails, or it does not open
     *     within `timeoutMs`
     */
    static async connect(options: FramedSocketOptions): Promise<FramedSocket> {
        const { host, port } = options
        const timeoutMs = options.timeoutMs === undefined ? CONNECT_TIMEOUT_MS : options.timeoutMs
        const sendTimeoutMs = options.sendTimeoutMs === undefined ? SEND_TIMEOUT_MS : options.sendTimeoutMs
        if (typeof host !== "string" || host.length === 0) throw new TypeError("FramedSocket: bad host")
        if (typeof port !== "number" || !(port >= 1 && port <= 65535) || Math.floor(port) !== port)
            throw new RangeError("FramedSocket: bad port " + port)
        if (current) throw new Error("FramedSocket: " + current.name + " is still open (one socket at a time); close it first")

        const s = new FramedSocket("tcp://" + host + ":" + port, sendTimeoutMs)
        current = s // claims the slot; events are ignored until the runtime socket is opened
        rt._socketOnEvent = onSocketEvent
        // Shipped bug (e): let the VM dispatch events still queued for the previous socket
        // (they reach `s` while it is Draining and are dropped). A sleep(0) yields to every
        // runnable fiber and to the runtime's pending callbacks once.
        await ds.sleep(0)
        if (current !== s || s.state !== State.Draining) {
            if (current === s) current = null
            s.state = State.Closed
            throw new Error("FramedSocket: connect to " + s.name + " abandoned")
        }
        s.state = State.Connecting
        const r = rt._socketOpen(host, port)
        if (r !== 0) {
            current = null
            s.state = State.Closed
            throw new Error("FramedSocket: can't connect to " + s.name + ": " + r)
        }
        const deadline = ds.millis() + timeoutMs
        while (!s.opened && s.state === State.Connecting) {
            const left = deadline - ds.millis()
            if (left <= 0) {
                s.shutdown(State.Closed)
                throw new Error("FramedSocket: timeout connecting to " + s.name)
            }
            await s.waitEvent(left)
        }
        if (!s.opened) {
            s.state = State.Closed
            throw new Error("FramedSocket: can't connect to " + s.name + ": " + (s.error ? s.error.message : "closed"))
        }
        return s
    }

    /**
     * Sends one frame. A busy socket is retried with backoff until the send timeout
     * (shipped bug (b)); nothing is written twice.
     * @param type frame type, 0..255
     * @param body at most MAX_FRAME - 1 bytes
     * @throws RangeError on a bad type or size; Error when the connection is closed, failed,
     *     still busy at the deadline, or another sendFrame is in progress
     */
    async sendFrame(type: number, body: Buffer): Promise<void> {
        const frame = encodeFrame(type, body)
        this.checkUsable()
        if (this.sending) throw new Error("FramedSocket: sendFrame already in progress on " + this.name)
        this.sending = true
        try {
            const deadline = ds.millis() + this.sendTimeoutMs
            let pause = SEND_BACKOFF_MIN_MS
            for (;;) {
                this.checkUsable()
                if (this.state === State.Failed) throw this.error
                if (this.state !== State.Open) throw new Error("FramedSocket: " + this.name + " closed by peer")
                const r = rt._socketWrite(frame)
                if (r === 0) return
                if (r !== -1) {
                    this.fail("write error " + r)
                    throw this.error
                }
                // -1: busy, nothing written. Retry until the deadline.
                if (ds.millis() + pause > deadline)
                    throw new Error("FramedSocket: " + this.name + " busy for " + this.sendTimeoutMs + " ms, frame not sent")
                await ds.sleep(pause)
                pause = Math.min(pause * 2, SEND_BACKOFF_MAX_MS)
            }
        } finally {
            this.sending = false
        }
    }

    /**
     * Receives the next frame, reassembling it from however the bytes arrived (shipped bug (d)).
     * Frames that arrived before the peer closed are still delivered, then `null`.
     * @param timeoutMs how long to wait; waits forever when omitted. A partial frame received
     *     before a timeout is kept for the next call.
     * @returns the frame, `undefined` on timeout, or `null` when the peer closed cleanly
     *     (between frames)
     * @throws Error on a protocol violation (length 0 or above MAX_FRAME: the connection is
     *     closed), a connection closed inside a frame, a socket error, a receive queue overflow,
     *     use after `close()`, or a second concurrent `recvFrame`
     */
    async recvFrame(timeoutMs?: number): Promise<Frame | undefined | null> {
        this.checkUsable()
        if (this.waiter) throw new Error("FramedSocket: recvFrame already pending on " + this.name)
        const deadline = timeoutMs === undefined ? undefined : ds.millis() + timeoutMs
        for (;;) {
            this.checkUsable()
            const f = this.reassemble()
            if (f) return f
            if (this.state === State.Failed) throw this.error
            if (this.state === State.PeerClosed) {
                if (this.error) throw this.error
                if (this.lenRead > 0 || this.got > 0) {
                    this.state = State.Failed
                    this.error = new Error(
                        "FramedSocket: " +
                            this.name +
                            " closed inside a frame (" +
                            (this.lenRead + this.got) +
                            " of " +
                            (this.lenRead < LEN_SIZE ? "?" : LEN_SIZE + this.frameLen) +
                            " bytes)"
                    )
                    throw this.error
                }
                return null
            }
            let left: number = undefined
            if (deadline !== undefined) {
                left = deadline - ds.millis()
                if (left <= 0) return undefined
            }
            await this.waitEvent(left)
        }
    }

    /**
     * Closes the connection and frees the runtime's socket for the next connect. Idempotent;
     * afterwards every other method (also a `recvFrame` pending in another fiber) throws
     * "used after close()".
     */
    close(): void {
        if (this.state === State.Closed) return
        this.shutdown(State.Closed)
    }

    /** True while frames can be sent (open, not closed by either side, no violation). */
    isOpen(): boolean {
        return this.state === State.Open
    }

    /**
     * Runtime socket event, routed here by the module's event handler.
     * @internal
     */
    _onEvent(event: SocketEvent, arg?: Buffer | string) {
        if (this.state === State.Draining) return // the previous socket's (bug (e))
        if (event === "open") {
            if (this.state === State.Connecting) {
                this.opened = true
                this.state = State.Open
            }
        } else if (event === "data") {
            if (this.state !== State.Open) return
            const chunk = arg as Buffer
            if (!chunk || chunk.length === 0) return
            if (this.queued + chunk.length > RX_QUEUE_MAX) {
                this.fail("receive queue overflow (" + (this.queued + chunk.length) + " bytes unread)")
            } else {
                this.queue.push(chunk)
                this.queued += chunk.length
            }
        } else if (event === "close" || event === "error") {
            if (event === "error") this.error = new Error("FramedSocket: " + this.name + ": socket error: " + arg)
            if (this.state === State.Open || this.state === State.Connecting) this.state = State.PeerClosed
            // The runtime's socket is gone: free the slot for the next connect.
            if (current === this) current = null
        }
        this.wake()
    }

    private checkUsable() {
        if (this.state === State.Closed) throw new Error("FramedSocket: " + this.name + " used after close()")
    }

    /** Marks a violation: close the connection, keep the reason for every later call. */
    private fail(msg: string) {
        this.error = new Error("FramedSocket: " + this.name + ": " + msg)
        this.shutdown(State.Failed)
    }

    private shutdown(to: State) {
        if (current === this) {
            current = null
            rt._socketClose() // errors ignored: the socket is being dropped either way
        }
        this.state = to
        this.queue = []
        this.queued = 0
        this.queueOffset = 0
        this.wake()
    }

    private wake() {
        const w = this.waiter
        if (w) {
            this.waiter = null
            if (w.suspended) w.resume(undefined)
        }
    }

    /** Suspends until an event wakes this socket or `ms` pass; the caller re-reads the state. */
    private async waitEvent(ms: number) {
        this.waiter = ds.Fiber.self()
        try {
            await ds.suspend(ms)
        } finally {
            this.waiter = null
        }
    }

    /**
     * Moves queued bytes into the current frame; returns the frame once complete.
     * Reading the length field validates it; a bad length fails the socket.
     */
    private reassemble(): Frame | undefined {
        while (this.queue.length > 0 && this.state !== State.Failed) {
            const chunk = this.queue[0]
            let off = this.queueOffset
            let frame: Frame = undefined
            if (this.lenRead < LEN_SIZE) {
                this.frameLen = (this.frameLen << 8) | chunk[off]
                off++
                this.lenRead++
                if (this.lenRead === LEN_SIZE && (this.frameLen === 0 || this.frameLen > MAX_FRAME)) {
                    this.fail("bad frame length " + this.frameLen + " (allowed 1.." + MAX_FRAME + ")")
                    return undefined
                }
            } else if (this.got === 0 && chunk.length - off >= this.frameLen) {
                // The whole frame is inside this chunk: no copy into rx.
                frame = { type: chunk[off], body: chunk.slice(off + TYPE_SIZE, off + this.frameLen) }
                off += this.frameLen
            } else {
                if (!this.rx) this.rx = Buffer.alloc(MAX_FRAME)
                const n = Math.min(this.frameLen - this.got, chunk.length - off)
                this.rx.blitAt(this.got, chunk, off, n)
                this.got += n
                off += n
                if (this.got === this.frameLen) frame = { type: this.rx[0], body: this.rx.slice(TYPE_SIZE, this.frameLen) }
            }
            this.queued -= off - this.queueOffset
            if (off >= chunk.length) {
                this.queue.shift()
                this.queueOffset = 0
            } else {
                this.queueOffset = off
            }
            if (frame) {
                this.lenRead = 0
                this.frameLen = 0
                this.got = 0
                return frame
            }
        }
        return undefined
    }
}
