// The Node twin of the device's application stream (PROTOCOL.md 12), for the gateway's tests,
// the load test and the bench: the device's sending stream (PUBLISH, REQUEST) kept in RAM and
// resent across reconnects, its receiving half of the gateway's stream (MESSAGE, RESPONSE),
// and AppClient, which runs it over the package's own initiator (session/initiator.ts) with
// STREAM and the first queued messages as resumption early data.
import { EventEmitter } from "node:events"
import { MAX_EARLY_DATA_CONTENT } from "../src/wire.js"
import type { Connection, TetherClient } from "./initiator.js"
import { AppKind, decodeApp, encodeApp, packApp, type SequencedMessage } from "../src/app/codec.js"
import { ReceiveStream, SendStream } from "../src/app/stream.js"

/** A RESPONSE as the device sees it. */
export interface DeviceResponse {
    readonly status: number
    readonly payload: Buffer
}

/** Events of DeviceApp. */
export interface DeviceAppEvents {
    message: [{ id: number; topic: string; payload: Buffer }]
}

/** The device's application state: independent of any connection. */
export class DeviceApp {
    readonly events = new EventEmitter<DeviceAppEvents>()
    readonly send: SendStream
    recv = new ReceiveStream()
    readonly #waiting = new Map<number, (r: DeviceResponse) => void>()

    constructor(opts: { streamId?: number } = {}) {
        this.send = new SendStream({ streamId: opts.streamId })
    }

    /** Queues a PUBLISH; returns its id. Call flush() (AppClient does) to send it. */
    publish(topic: string, payload: Buffer): number {
        return this.send.enqueue({ kind: AppKind.PUBLISH, topic, payload }).id
    }

    /** Queues a REQUEST; resolves with its RESPONSE, whenever a session delivers it. */
    request(route: string, payload: Buffer): { id: number; response: Promise<DeviceResponse> } {
        const id = this.send.enqueue({ kind: AppKind.REQUEST, route, payload }).id
        return { id, response: new Promise(resolve => this.#waiting.set(id, resolve)) }
    }

    /**
     * A session starts: STREAM, then every unacknowledged message (eagerly: they ride as
     * early data). Returns DATA contents, each small enough for early data.
     */
    sessionStart(): Buffer[] {
        this.send.sessionStart(true)
        this.recv.sessionEnd()
        const r = this.recv.state
        const first = encodeApp({ kind: AppKind.STREAM, streamId: this.send.streamId, peerStreamId: r.streamId, delivered: r.delivered })
        return packApp([first, ...this.send.take().map(encodeApp)], MAX_EARLY_DATA_CONTENT)
    }

    sessionEnd(): void {
        this.send.sessionEnd()
        this.recv.sessionEnd()
    }

    /** DATA contents for what is queued and not yet sent in this session. */
    flush(): Buffer[] {
        return packApp(this.send.take().map(encodeApp), MAX_EARLY_DATA_CONTENT)
    }

    /**
     * A DATA content from the gateway. Returns the contents to send back (an ACK, resends).
     * @throws AppProtocolError: the device closes the session
     */
    data(content: Buffer): Buffer[] {
        const recv = new ReceiveStream(this.recv.state, this.recv.session)
        const deliver: SequencedMessage[] = []
        const streams: Buffer[] = []
        let ack = false
        for (const m of decodeApp(content, "gateway")) {
            if (m.kind === AppKind.STREAM) {
                recv.peerStream(m.streamId)
                const before = this.send.pending()
                // the gateway's receiving state is not this stream's: a new stream, renumbered,
                // announced by a STREAM that goes before any of it (PROTOCOL.md 12.1)
                if (this.send.peerStream(m.peerStreamId, m.delivered)) {
                    this.#renumberWaiting(before)
                    streams.push(this.#streamMsg(recv))
                }
            } else if (m.kind === AppKind.ACK) this.send.ack(m.id)
            else {
                const a = recv.arrive(m.id)
                if (a === "deliver") deliver.push(m)
                if (a === "deliver" || a === "duplicate") ack = true
                if (a === "lost") streams.push(this.#streamMsg(recv))
            }
        }
        this.recv = recv
        for (const m of deliver) {
            if (m.kind === AppKind.MESSAGE) this.events.emit("message", { id: m.id, topic: m.topic, payload: m.payload })
            else if (m.kind === AppKind.RESPONSE) {
                const w = this.#waiting.get(m.requestId)
                this.#waiting.delete(m.requestId)
                w?.({ status: m.status, payload: m.payload })
            }
        }
        const out = ack ? [encodeApp({ kind: AppKind.ACK, id: recv.state.delivered })] : []
        return packApp([...streams, ...out, ...this.send.take().map(encodeApp)], MAX_EARLY_DATA_CONTENT)
    }

    #streamMsg(recv: ReceiveStream): Buffer {
        const r = recv.state
        return encodeApp({ kind: AppKind.STREAM, streamId: this.send.streamId, peerStreamId: r.streamId, delivered: r.delivered })
    }

    /**
     * The stream restarted: a waiting request follows its REQUEST to its new id. One whose
     * REQUEST was already acknowledged has no new id; its RESPONSE is gone with the
     * gateway's state (12.1), so it ends with status 0, UPSTREAM_FAILED.
     */
    #renumberWaiting(before: readonly SequencedMessage[]): void {
        const waiting = new Map(this.#waiting)
        this.#waiting.clear()
        before.forEach((m, i) => {
            const w = waiting.get(m.id)
            if (w === undefined) return
            waiting.delete(m.id)
            this.#waiting.set(i + 1, w)
        })
        for (const w of waiting.values()) w({ status: 0, payload: Buffer.from([0x04]) })
    }
}

/** Runs a DeviceApp over TetherClient connections; reconnect by calling connect() again. */
export class AppClient {
    conn: Connection | undefined
    #pump: Promise<void> | undefined

    constructor(
        readonly client: TetherClient,
        readonly app: DeviceApp = new DeviceApp()
    ) {}

    /** Connects (resumption with early data when a ticket is stored) and starts reading. */
    async connect(): Promise<Connection> {
        const contents = this.app.sessionStart()
        const [early, ...rest] = contents
        let conn: Connection
        try {
            conn = await this.client.connect(early)
        } catch (err) {
            this.app.sessionEnd()
            throw err
        }
        this.conn = conn
        for (const c of rest) conn.send(c)
        this.#pump = this.#run(conn)
        return conn
    }

    async #run(conn: Connection): Promise<void> {
        try {
            for (;;) {
                const c = await conn.recv(2 ** 31 - 1)
                if (c === null || c === undefined) break
                for (const out of this.app.data(c)) conn.send(out)
            }
        } catch {
            conn.close(0x01) // PROTOCOL_ERROR
        } finally {
            if (this.conn === conn) this.conn = undefined
            this.app.sessionEnd()
        }
    }

    /** Sends what is queued, if connected. */
    flush(): void {
        const conn = this.conn
        if (conn === undefined || !conn.isOpen()) return
        for (const c of this.app.flush()) conn.send(c)
    }

    publish(topic: string, payload: Buffer): number {
        const id = this.app.publish(topic, payload)
        this.flush()
        return id
    }

    request(route: string, payload: Buffer): Promise<DeviceResponse> {
        const r = this.app.request(route, payload)
        this.flush()
        return r.response
    }

    /** Waits until the gateway acknowledged everything sent. */
    async settled(timeoutMs = 10000): Promise<void> {
        const deadline = Date.now() + timeoutMs
        while (this.app.send.unacked > 0) {
            if (Date.now() > deadline) throw new Error("AppClient: not acknowledged in time")
            await new Promise(r => setTimeout(r, 5))
        }
    }

    /** Tears the TCP connection down without CLOSE (a dropped radio). */
    async drop(): Promise<void> {
        this.conn?.sock.socket.destroy()
        await this.#pump
    }

    /** CLOSE(NORMAL), then waits for the reader to end. */
    async close(): Promise<void> {
        this.conn?.close()
        this.conn?.sock.socket.destroy()
        await this.#pump
    }

    /** Resolves when the current connection ends (for example CLOSE(REVOKED) from the gateway). */
    async ended(): Promise<void> {
        await this.#pump
    }
}
