// The in-memory twin of FramedSocket (./framed-socket.ts), for tests: two connected
// endpoints, each with a queue of whole frames. What one end sends, the other receives, in
// order; a test holds the gateway's end, scripts its frames (also before the device asks)
// and reads what the device sent. No bytes and no reassembly: frames are checked with the
// one encoder (./frame.ts) and queued whole, so FramedSocket's decoder stays the only one.
//
// Semantics follow FramedSocket: frames that arrived before the peer closed are still
// delivered, then `null`; after close() every call throws "used after close()"; a framing
// violation (a bad length on the wire, a connection cut inside a frame) can be injected
// with violate().
import * as ds from "@devicescript/core"
import { BODY_OFFSET, encodeFrame } from "./frame"
import { Frame, Transport } from "./transport"

/** One end of a {@link memoryPair}. */
export class MemoryTransport implements Transport {
    /** The other end. */
    peer: MemoryTransport = undefined
    /** This end's frames, in order: ">type" sent, "<type" received (decimal). */
    trace: string[] = []
    private inbox: Frame[] = []
    private closed = false
    private peerClosed = false
    /** A framing violation to report once the queued frames are read. */
    private violation: string = undefined
    /** The violation was reported: the connection is unusable. */
    private failed = false
    private waiter: ds.Fiber = null

    constructor(public readonly name: string) {}

    /**
     * Queues one frame at the peer.
     * @throws RangeError on a bad type or size (as FramedSocket); Error when either end closed
     */
    async sendFrame(type: number, body: Buffer): Promise<void> {
        const frame = encodeFrame(type, body)
        this.checkUsable()
        if (this.failed) throw new Error(this.violation)
        if (!this.isOpen()) throw new Error("MemoryTransport: " + this.name + " closed by peer")
        this.trace.push(">" + type)
        this.peer.deliver({ type, body: frame.slice(BODY_OFFSET) })
    }

    /**
     * The next frame from the peer.
     * @returns the frame, `undefined` on timeout, `null` once the peer closed and every frame
     *     it sent was read
     * @throws the injected violation, or on use after close()
     */
    async recvFrame(timeoutMs?: number): Promise<Frame | undefined | null> {
        this.checkUsable()
        if (this.waiter) throw new Error("MemoryTransport: recvFrame already pending on " + this.name)
        const deadline = timeoutMs === undefined ? undefined : ds.millis() + timeoutMs
        for (;;) {
            this.checkUsable()
            if (this.inbox.length > 0) {
                const f = this.inbox.shift()
                this.trace.push("<" + f.type)
                return f
            }
            if (this.violation !== undefined) {
                this.failed = true
                throw new Error(this.violation)
            }
            if (this.peerClosed) return null
            let left: number = undefined
            if (deadline !== undefined) {
                left = deadline - ds.millis()
                if (left <= 0) return undefined
            }
            this.waiter = ds.Fiber.self()
            try {
                await ds.suspend(left)
            } finally {
                this.waiter = null
            }
        }
    }

    /** Closes this end; the peer reads what was already sent, then `null`. Idempotent. */
    close(): void {
        if (this.closed) return
        this.closed = true
        this.inbox = []
        this.wake()
        if (this.peer) this.peer.onPeerClosed()
    }

    /** True while frames can be sent: neither end closed, no violation reported. */
    isOpen(): boolean {
        return !this.closed && !this.peerClosed && !this.failed
    }

    /** True once close() was called on this end. */
    isClosed(): boolean {
        return this.closed
    }

    /** Frames queued here and not read yet. */
    pending(): number {
        return this.inbox.length
    }

    /**
     * Makes the peer's recvFrame throw `message` once it has read the frames already sent,
     * as FramedSocket does on a bad length or a connection cut inside a frame.
     */
    violate(message: string): void {
        this.peer.violation = message
        this.peer.wake()
    }

    private deliver(f: Frame) {
        if (this.closed) return
        this.inbox.push(f)
        this.wake()
    }

    private onPeerClosed() {
        this.peerClosed = true
        this.wake()
    }

    private checkUsable() {
        if (this.closed) throw new Error("MemoryTransport: " + this.name + " used after close()")
    }

    private wake() {
        const w = this.waiter
        if (w) {
            this.waiter = null
            if (w.suspended) w.resume(undefined)
        }
    }
}

/** Two connected endpoints: the device's and the (scripted) gateway's. */
export function memoryPair(): { device: MemoryTransport; gateway: MemoryTransport } {
    const device = new MemoryTransport("memory:device")
    const gateway = new MemoryTransport("memory:gateway")
    device.peer = gateway
    gateway.peer = device
    return { device, gateway }
}
