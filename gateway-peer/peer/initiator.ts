// The device's protocol in Node (PROTOCOL.md 4, 6, 8): the mirror of src/tether/client.ts with
// the same names (TetherClient, Connection, connect(early), recv, send), used by the gateway's
// tests, the load test and the vector generator.
//
//     Idle -> (RESUME_INIT) AwaitResumeResp -> Established         when a ticket is stored
//     Idle -> (HS_INIT) AwaitHsResp -> Established                 when none
//     AwaitResumeResp -> REJECT(TICKET_REJECTED) -> (HS_INIT) AwaitHsResp, same connection
//
// The gateway sends its TICKET once the session is confirmed (the device's first record, or
// accepted early data, 6.3); it is stored before anything uses it, with the time it arrived (the
// start of its age, 6.2) and the pseudonym that came with it (4.4). A REJECT never deletes the
// stored ticket (9.5). Early data the gateway did not accept is sent again as a DATA record
// (6.2). `ss` is computed once per pairing, the next ephemeral and its `es` while idle (4.3);
// every DH goes through `dh` (counted by tests).
import { connect as netConnect, type Socket } from "node:net"
import { randomBytes, type RandomSource } from "../src/crypto/random.js"
import { generateKeyPair, type KeyPair } from "../src/crypto/x25519.js"
import {
    Code,
    EARLY_ACCEPTED,
    encodeFrame,
    FrameDecoder,
    FrameType,
    InnerType,
    NONCE_I_LEN,
    REJECT_BODY_LEN,
    type Frame,
} from "../src/wire.js"
import { readHsResp, writeHsInit, X25519, type Dh } from "../src/session/handshake.js"
import { obfuscateAge, readResumeResp, writeResumeInit } from "../src/session/resume.js"
import type { Session } from "../src/session/session.js"
import { decodeTicketContent, type TicketContent } from "../src/tickets.js"
import { pseudonym0 } from "../src/registry/registry.js"

/**
 * A stored ticket: the TICKET record's content and, while this process lives, when it arrived
 * (ms on Date.now; undefined after a "restart", or for the out-of-band ticket).
 */
export interface StoredTicket {
    readonly ticket: Buffer
    readonly secret: Buffer
    /** the pseudonym for the next full handshake; undefined: use pseudonym0 */
    readonly pseudonym?: Buffer
    readonly receivedAt?: number
}

/** What pairing gave the device. Secrets: never log. */
export interface Pairing {
    readonly deviceId: Buffer
    readonly s: KeyPair
    readonly gatewayPublic: Buffer
    readonly psk: Buffer
}

/** The device's ticket store (flash on the device; memory here). */
export interface TicketStore {
    current(): StoredTicket | undefined
    store(t: StoredTicket): void
}

/** A TicketStore in memory, with the history of what it stored (tests resume with older ones). */
export class MemoryTicketStore implements TicketStore {
    readonly history: StoredTicket[] = []
    constructor(public ticket?: StoredTicket) {}
    current(): StoredTicket | undefined {
        return this.ticket
    }
    store(t: StoredTicket): void {
        this.ticket = t
        this.history.push(t)
    }
    /** Forgets the arrival times, as a device restart does (its RAM): the next resumption carries no early data. */
    restart(): void {
        if (this.ticket !== undefined)
            this.ticket = { ticket: this.ticket.ticket, secret: this.ticket.secret, pseudonym: this.ticket.pseudonym }
    }
}

/** A framed socket: whole frames in and out, with a timeout on receive. */
export class FramedSocket {
    readonly #decoder = new FrameDecoder()
    readonly #frames: Frame[] = []
    #waiter: (() => void) | undefined
    #ended = false

    private constructor(readonly socket: Socket) {
        socket.on("data", chunk => {
            try {
                this.#frames.push(...this.#decoder.push(chunk))
            } catch {
                this.#ended = true
                socket.destroy()
            }
            this.#waiter?.()
        })
        const end = () => {
            this.#ended = true
            this.#waiter?.()
        }
        socket.on("close", end)
        socket.on("end", end)
        socket.on("error", end)
    }

    /** Connects to host:port. */
    static connect(host: string, port: number): Promise<FramedSocket> {
        return new Promise((resolve, reject) => {
            const s = netConnect({ host, port })
            s.setNoDelay(true)
            s.once("connect", () => resolve(new FramedSocket(s)))
            s.once("error", reject)
        })
    }

    /** Writes one frame. */
    sendFrame(type: number, body: Buffer): void {
        this.sendRaw(encodeFrame(type, body))
    }

    /** Writes frames as one batch (corked: one writev, not one write per frame). */
    sendFrames(frames: readonly { type: number; body: Buffer }[]): void {
        if (this.socket.destroyed) return
        this.socket.cork()
        for (const f of frames) this.socket.write(encodeFrame(f.type, f.body))
        this.socket.uncork()
    }

    /** Writes raw bytes (tests: garbage, truncated frames). */
    sendRaw(bytes: Buffer): void {
        if (!this.socket.destroyed) this.socket.write(bytes)
    }

    /** The next frame; undefined on timeout; null when the connection ended. */
    async recvFrame(timeoutMs: number): Promise<Frame | undefined | null> {
        const deadline = Date.now() + timeoutMs
        for (;;) {
            const f = this.#frames.shift()
            if (f !== undefined) return f
            if (this.#ended) return null
            const left = deadline - Date.now()
            if (left <= 0) return undefined
            await new Promise<void>(resolve => {
                const t = setTimeout(resolve, left)
                this.#waiter = () => {
                    clearTimeout(t)
                    resolve()
                }
            })
            this.#waiter = undefined
        }
    }

    /** Whether the peer or we ended the connection. */
    get ended(): boolean {
        return this.#ended
    }

    close(): void {
        this.socket.destroy()
    }
}

/** Default time to wait for the gateway's handshake answer and first record. */
export const HANDSHAKE_TIMEOUT_MS = 10000

/** Options of TetherClient. */
export interface ClientOptions {
    readonly pairing: Pairing
    readonly store: TicketStore
    readonly host: string
    readonly port: number
    readonly dh?: Dh
    readonly random?: RandomSource
    readonly timeoutMs?: number
    /** every frame this client sends, for tests that capture and replay */
    readonly onSend?: (type: number, body: Buffer) => void
}

/** Thrown by connect() when the gateway answered REJECT (a hint, PROTOCOL.md 9.5). */
export class RejectedError extends Error {
    constructor(readonly code: number) {
        super(`tether: rejected with code ${code}`)
        this.name = "RejectedError"
    }
}

/** An established connection: records both ways. */
export class Connection {
    resumed = false
    earlyAccepted = false
    fellBack = false
    handshakeMs = 0
    /** the code of a CLOSE received from the gateway, or 0 */
    closeCode = 0
    readonly #pending: Buffer[] = []

    constructor(
        readonly sock: FramedSocket,
        readonly session: Session,
        readonly store: TicketStore,
        readonly onSend?: (type: number, body: Buffer) => void
    ) {}

    isOpen(): boolean {
        return !this.session.dead && !this.sock.ended
    }

    /** Sends one DATA record (two frames when a KEY_UPDATE is due). */
    send(data: Buffer): void {
        this.sendRecord(InnerType.DATA, data)
    }

    /** Sends a record of any inner type. */
    sendRecord(type: number, content: Buffer): void {
        const bodies = this.session.encrypt(type, content)
        for (const b of bodies) this.onSend?.(FrameType.RECORD, b)
        if (bodies.length === 1) this.sock.sendFrame(FrameType.RECORD, bodies[0] as Buffer)
        else this.sock.sendFrames(bodies.map(body => ({ type: FrameType.RECORD, body })))
    }

    /**
     * The next DATA content; TICKET records are stored, KEY_UPDATE applied.
     * @returns the content; undefined on timeout; null when the connection ended
     */
    async recv(timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<Buffer | undefined | null> {
        const p = this.#pending.shift()
        if (p !== undefined) return p
        const deadline = Date.now() + timeoutMs
        for (;;) {
            if (this.session.dead) return null
            const f = await this.sock.recvFrame(Math.max(0, deadline - Date.now()))
            if (f === undefined) return undefined
            if (f === null || f.type !== FrameType.RECORD) return this.#end()
            const r = this.session.decrypt(f.body)
            if (r === undefined) return this.#end()
            if (r.type === InnerType.DATA) return r.content
            if (r.type === InnerType.TICKET) this.#storeTicket(r.content)
            else if (r.type === InnerType.CLOSE) {
                this.closeCode = r.content[0] as number
                return this.#end()
            }
        }
    }

    /**
     * Waits for the TICKET record that follows the session's confirmation (the device's first
     * record, 6.3); DATA before it is queued.
     */
    async awaitTicket(timeoutMs: number = HANDSHAKE_TIMEOUT_MS): Promise<boolean> {
        const deadline = Date.now() + timeoutMs
        for (;;) {
            const f = await this.sock.recvFrame(Math.max(0, deadline - Date.now()))
            if (f === undefined || f === null || f.type !== FrameType.RECORD) return false
            const r = this.session.decrypt(f.body)
            if (r === undefined) return false
            if (r.type === InnerType.TICKET) return this.#storeTicket(r.content)
            if (r.type === InnerType.DATA) this.#pending.push(r.content)
            else if (r.type !== InnerType.KEY_UPDATE) return false
        }
    }

    /** Stores a well-formed TICKET record's content; false for a malformed one (not stored). */
    #storeTicket(content: Buffer): boolean {
        const t: TicketContent | undefined = decodeTicketContent(content)
        if (t !== undefined) this.store.store({ ...t, receivedAt: Date.now() })
        return t !== undefined
    }

    #end(): null {
        this.session.close()
        this.sock.close()
        return null
    }

    /** Sends CLOSE(code) and closes. */
    close(code: number = Code.NORMAL): void {
        if (this.isOpen()) this.sendRecord(InnerType.CLOSE, Buffer.from([code]))
        this.session.close()
        this.sock.socket.end()
    }
}

/** A device's client for its one gateway. */
export class TetherClient {
    readonly #dh: Dh
    readonly #random: RandomSource
    #ss: Buffer | undefined
    #e: KeyPair | undefined
    /** DH(e, s_gateway) of #e, computed with it while idle (4.3) */
    #es: Buffer | undefined
    /** the last HS_INIT with a stored pseudonym got UNKNOWN_DEVICE: the next uses pseudonym0 (4.4) */
    #fallbackPseudonym = false

    constructor(readonly opts: ClientOptions) {
        this.#dh = opts.dh ?? X25519
        this.#random = opts.random ?? randomBytes
    }

    /** Idle work: `ss` once per pairing, the next ephemeral key pair and its `es` (PROTOCOL.md 4.3). */
    prepare(): void {
        const p = this.opts.pairing
        this.#ss ??= this.#dh.x25519(p.s.privateKey, p.gatewayPublic)
        if (this.#e === undefined) {
            const e = generateKeyPair(this.#random)
            this.#es = this.#dh.x25519(e.privateKey, p.gatewayPublic)
            this.#e = e
        }
    }

    /**
     * Connects: resumes with the stored ticket (early as 0-RTT data), or runs the full
     * handshake when there is no ticket or it is rejected (same connection).
     * @throws RejectedError on any other REJECT; Error on a bad or missing answer
     */
    async connect(early?: Buffer): Promise<Connection> {
        const o = this.opts
        const timeoutMs = o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS
        const sock = await FramedSocket.connect(o.host, o.port)
        const send = (type: number, body: Buffer) => {
            o.onSend?.(type, body)
            sock.sendFrame(type, body)
        }
        try {
            const t0 = Date.now()
            let session: Session | undefined
            let resumed = false
            let earlyAccepted = false
            let fellBack = false
            const t = o.store.current()
            // a ticket whose age is unknown carries no early data (6.2): it goes as the first record
            const early0 = t?.receivedAt !== undefined ? early : undefined
            if (t !== undefined) {
                const age = obfuscateAge(
                    t.secret,
                    t.receivedAt === undefined ? undefined : Math.max(0, Date.now() - t.receivedAt),
                    this.#random
                )
                const pending = writeResumeInit(t, o.pairing.deviceId, age, this.#random(NONCE_I_LEN), early0)
                send(FrameType.RESUME_INIT, pending.body)
                const f = await answer(sock, timeoutMs)
                if (f.type === FrameType.RESUME_RESP) {
                    const r = readResumeResp(pending, f.body)
                    if (r === undefined) throw new Error("tether: bad RESUME_RESP")
                    session = r.session
                    resumed = true
                    earlyAccepted = early0 !== undefined && (r.flags & EARLY_ACCEPTED) !== 0
                } else if (f.type === FrameType.REJECT && f.body.length === REJECT_BODY_LEN && f.body[0] === Code.TICKET_REJECTED) {
                    fellBack = true // keep the ticket: the REJECT is not authenticated
                } else throw unexpected(f)
            }
            if (session === undefined) {
                this.prepare()
                const e = this.#e as KeyPair
                const es = this.#es
                this.#e = undefined // one attempt only (4.3)
                this.#es = undefined
                const p = o.pairing
                const stored = t?.pseudonym
                const usedStored = stored !== undefined && !this.#fallbackPseudonym
                const pseudonym = usedStored ? stored : pseudonym0(p.psk)
                const pending = writeHsInit({ pseudonym, s: p.s, rs: p.gatewayPublic, psk: p.psk, ss: this.#ss, dh: this.#dh }, e, es)
                send(FrameType.HS_INIT, pending.body)
                const f = await answer(sock, timeoutMs)
                if (f.type === FrameType.REJECT && f.body[0] === Code.UNKNOWN_DEVICE && usedStored) this.#fallbackPseudonym = true // the gateway may have lost the newer pseudonym (4.4)
                if (f.type !== FrameType.HS_RESP) throw unexpected(f)
                this.#fallbackPseudonym = false
                const r = readHsResp(pending, f.body)
                if (r === undefined) throw new Error("tether: bad HS_RESP")
                session = r.session
            }
            const conn = new Connection(sock, session, o.store, o.onSend)
            conn.handshakeMs = Date.now() - t0
            conn.resumed = resumed
            conn.earlyAccepted = earlyAccepted
            conn.fellBack = fellBack
            // "If EARLY_ACCEPTED is clear and it sent early data, it sends the same data again"
            // (and early data it could not send goes the same way): the device's first record,
            // which confirms the session and brings the TICKET (6.3)
            if (early !== undefined && !earlyAccepted) conn.send(early)
            if (early !== undefined && !(await conn.awaitTicket(timeoutMs))) throw new Error("tether: no TICKET after the handshake")
            if (!resumed) this.prepare() // the next ephemeral, off the critical path
            return conn
        } catch (err) {
            sock.close()
            throw err
        }
    }
}

async function answer(sock: FramedSocket, timeoutMs: number): Promise<Frame> {
    const f = await sock.recvFrame(timeoutMs)
    if (f === undefined) throw new Error("tether: no answer from the gateway")
    if (f === null) throw new Error("tether: the gateway closed the connection")
    return f
}

function unexpected(f: Frame): Error {
    if (f.type === FrameType.REJECT && f.body.length === REJECT_BODY_LEN) return new RejectedError(f.body[0] as number)
    return new Error(`tether: unexpected frame ${f.type}`)
}
