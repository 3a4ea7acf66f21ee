// The device's connection to its gateway (PROTOCOL.md 8):
//
//     Idle -> (RESUME_INIT) AwaitResumeResp -> Established         when a ticket is stored
//     Idle -> (HS_INIT) AwaitHsResp -> Established                 when none
//     AwaitResumeResp -> REJECT(TICKET_REJECTED) -> (HS_INIT) AwaitHsResp, same connection
//
// After either handshake the gateway's first record is a TICKET: it is written to flash
// before anything uses it (PROTOCOL.md 6.3). A REJECT never deletes the stored ticket (9.5).
// Early data that the gateway did not accept is sent again as a DATA record under the new
// keys (6.2). connect() returns as soon as the session is established and its TICKET stored:
// it does not generate the next ephemeral key pair (one X25519, seconds on a chip). The
// caller runs prepare() while idle (the link does, on its own fiber, once it is up), so the
// next full handshake costs three X25519 on its critical path (4.3); if prepare() has not run
// by then, the full handshake does it first. `ss` is computed once per pairing. All DH goes
// through `opts.dh`, so tests count it.
import * as ds from "@devicescript/core"
import { randomBytes, RandomSource } from "../crypto/random"
import { x25519, x25519Base } from "../crypto/x25519"
import { FramedSocket } from "../net/framed-socket"
import { CipherFunction } from "../noise/cipher-state"
import { Dh, KeyPair } from "../noise/handshake-state"
import { Pairing, readHsResp, writeHsInit } from "./handshake"
import { readResumeResp, writeResumeInit } from "./resume"
import { Session } from "./session"
import { TicketStore } from "./ticket-store"
import {
    Code,
    decodeTicketContent,
    EARLY_ACCEPTED,
    FrameType,
    REJECT_BODY_LEN,
    InnerType,
    RESUME_NONCE_LEN,
} from "./wire"

/** The runtime's X25519. */
export const X25519: Dh = {
    x25519: async (scalar: Buffer, u: Buffer) => await x25519(scalar, u),
    x25519Base: async (scalar: Buffer) => await x25519Base(scalar),
}

/**
 * An X25519 that counts its calls, `x` variable-base (DH) and `base` key generations: the
 * link reports it per handshake, tests and the bench assert it (3 DH on a full handshake's
 * critical path, none on a resumption).
 */
export class CountingDh implements Dh {
    x = 0
    base = 0
    private inner: Dh
    constructor(inner?: Dh) {
        this.inner = inner || X25519
    }
    async x25519(scalar: Buffer, u: Buffer): Promise<Buffer> {
        this.x++
        return await this.inner.x25519(scalar, u)
    }
    async x25519Base(scalar: Buffer): Promise<Buffer> {
        this.base++
        return await this.inner.x25519Base(scalar)
    }
    /** Back to zero. */
    reset() {
        this.x = 0
        this.base = 0
    }
}

/** Default time to wait for the gateway's handshake answer and first record. */
export const HANDSHAKE_TIMEOUT_MS = 10000

/** Options of {@link TetherClient}. */
export interface ClientOptions {
    pairing: Pairing
    /** the ticket store (TicketStore.open(new SettingsStorage()) on the device) */
    store: TicketStore
    host: string
    port: number
    /** DH functions; default {@link X25519} */
    dh?: Dh
    /** randomness for nonces and ephemeral keys; default the CSPRNG */
    random?: RandomSource
    /** cipher function; default AESCCM */
    cipher?: CipherFunction
    /** handshake answer timeout; default {@link HANDSHAKE_TIMEOUT_MS} */
    timeoutMs?: number
    /** called when the TCP connection is open and the first handshake frame is about to go */
    onOpen?: () => void
}

/** Thrown by connect() when the gateway answered REJECT (a hint, PROTOCOL.md 9.5). */
export class RejectedError extends Error {
    /** the REJECT code (Code) */
    code: number
    constructor(code: number) {
        super("tether: rejected with code " + code)
        this.code = code
    }
}

/** An established connection: records both ways. */
export class Connection {
    /** true when this session came from a resumption */
    resumed = false
    /** true when the gateway delivered the early data in RESUME_INIT (0-RTT) */
    earlyAccepted = false
    /** true when a REJECT(TICKET_REJECTED) led to the full handshake on this connection */
    fellBack = false
    /** milliseconds from the first handshake frame sent to the session (critical path) */
    handshakeMs = 0
    /** the code of a CLOSE received from the gateway, or 0 */
    closeCode = 0
    private pending: Buffer[] = []

    constructor(private sock: FramedSocket, private session: Session, private store: TicketStore) {}

    /** Whether records can still be sent and received. */
    isOpen(): boolean {
        return !this.session.dead && this.sock.isOpen()
    }

    /**
     * Sends one DATA record (two frames when a KEY_UPDATE is due).
     * @throws when the session is dead or the socket closed
     */
    async send(data: Buffer): Promise<void> {
        await this.sendRecord(InnerType.DATA, data)
    }

    /** @internal */
    async sendRecord(type: number, content: Buffer): Promise<void> {
        const bodies = this.session.encrypt(type, content)
        for (const b of bodies) await this.sock.sendFrame(FrameType.RECORD, b)
    }

    /**
     * Receives the next DATA content. TICKET records are stored, KEY_UPDATE is applied.
     * @returns the content; undefined on timeout; null when the connection ended (peer
     *     close, CLOSE record with `closeCode` set, or a bad record: then it is closed
     *     without answering and no plaintext of it is released)
     */
    async recv(timeoutMs?: number): Promise<Buffer | undefined | null> {
        if (this.pending.length) return this.pending.shift()
        const deadline = timeoutMs === undefined ? undefined : ds.millis() + timeoutMs
        for (;;) {
            if (this.session.dead) return null
            let left: number = undefined
            if (deadline !== undefined) {
                left = deadline - ds.millis()
                if (left <= 0) return undefined
            }
            const r = await this.next(left)
            if (r === undefined) return undefined
            if (r === null) return null
            if (r.type === InnerType.DATA) return r.content
        }
    }

    /**
     * The next record, with TICKET and CLOSE handled.
     * @internal
     */
    async next(timeoutMs: number): Promise<{ type: number; content: Buffer } | undefined | null> {
        let f
        try {
            f = await this.sock.recvFrame(timeoutMs)
        } catch (e) {
            f = null // framing violation or socket error
        }
        if (f === undefined) return undefined
        if (f === null || f.type !== FrameType.RECORD) return this.abort()
        const r = this.session.decrypt(f.body)
        if (r === undefined) return this.abort()
        if (r.type === InnerType.TICKET) {
            const t = decodeTicketContent(r.content)
            r.content.fillAt(0, r.content.length, 0) // best effort on a garbage-collected VM
            if (t === undefined) return this.abort()
            await this.store.save(t) // store before use (PROTOCOL.md 6.3)
        } else if (r.type === InnerType.CLOSE) {
            this.closeCode = r.content[0]
            return this.abort()
        }
        return r
    }

    /**
     * Waits for the gateway's first record, which must be the TICKET (DATA is kept for recv).
     * @internal
     */
    async awaitTicket(timeoutMs: number): Promise<boolean> {
        const r = await this.next(timeoutMs)
        if (r === undefined || r === null) return false
        if (r.type === InnerType.DATA) this.pending.push(r.content)
        return r.type === InnerType.TICKET
    }

    private abort(): null {
        this.session.close()
        this.sock.close()
        return null
    }

    /** Closes the socket without a CLOSE record, as when the radio goes away. */
    drop() {
        this.abort()
    }

    /** Sends CLOSE(NORMAL) when possible, then closes the socket. */
    async close(): Promise<void> {
        if (this.isOpen()) {
            try {
                await this.sendRecord(InnerType.CLOSE, Buffer.from([Code.NORMAL]))
            } catch (e) {
                // the socket is going away anyway
            }
        }
        this.abort()
    }
}

/** A device's client for its one gateway. */
export class TetherClient {
    private opts: ClientOptions
    private dh: Dh
    private random: RandomSource
    /** DH(s_device, s_gateway), per pairing */
    private ss: Buffer
    /** the ephemeral key pair for the next full handshake; used for one attempt only */
    private e: KeyPair
    /** a prepare() is running (the link's idle fiber, or a full handshake) */
    private preparing = false

    constructor(opts: ClientOptions) {
        this.opts = opts
        this.dh = opts.dh || X25519
        this.random = opts.random || randomBytes
    }

    /**
     * Idle work: computes the static public key when the pairing left it undefined, `ss`
     * (once per pairing) and the next ephemeral key pair, so that a
     * full handshake costs only es, ee and se. Call it while idle (it yields between
     * steps); a full handshake calls it when the idle work has not been done. Calls do not
     * overlap: a second one waits for the first and then finds nothing left to do, so no key
     * is computed twice.
     */
    async prepare(): Promise<void> {
        while (this.preparing) await ds.sleep(5)
        this.preparing = true
        try {
            const p = this.opts.pairing
            // the static public key is only needed by the full handshake: a device that
            // resumes at boot does not pay for it (one X25519) until it is idle
            if (p.s.publicKey === undefined) p.s.publicKey = await this.dh.x25519Base(p.s.privateKey)
            if (this.ss === undefined) this.ss = await this.dh.x25519(p.s.privateKey, p.gatewayPublic)
            if (this.e === undefined) {
                const priv = this.random(32)
                this.e = { privateKey: priv, publicKey: await this.dh.x25519Base(priv) }
            }
        } finally {
            this.preparing = false
        }
    }

    /**
     * Connects: resumes with the stored ticket (with `early` as 0-RTT data), or runs the full
     * handshake when there is no ticket or it is rejected (same connection).
     * @param early a DATA content to deliver as early as possible (0-RTT on a resumption)
     * @returns the connection; `earlyAccepted` says whether `early` went as 0-RTT data (if
     *     not, it was sent again as a DATA record)
     * @throws RejectedError on any other REJECT; Error on a bad or missing answer (the
     *     socket is closed, the stored ticket is kept)
     */
    async connect(early?: Buffer): Promise<Connection> {
        const o = this.opts
        const timeoutMs = o.timeoutMs === undefined ? HANDSHAKE_TIMEOUT_MS : o.timeoutMs
        const sock = await FramedSocket.connect({ host: o.host, port: o.port, timeoutMs })
        try {
            if (o.onOpen) o.onOpen()
            const t0 = ds.millis()
            let session: Session = undefined
            let resumed = false
            let earlyAccepted = false
            let fellBack = false
            const t = o.store.current()
            if (t !== undefined) {
                const pending = writeResumeInit(t, this.random(RESUME_NONCE_LEN), early, o.cipher)
                await sock.sendFrame(FrameType.RESUME_INIT, pending.body)
                const f = await this.answer(sock, timeoutMs)
                if (f.type === FrameType.RESUME_RESP) {
                    const r = readResumeResp(pending, f.body)
                    if (r === undefined) throw new Error("tether: bad RESUME_RESP")
                    session = r.session
                    resumed = true
                    earlyAccepted = early !== undefined && (r.flags & EARLY_ACCEPTED) !== 0
                } else if (f.type === FrameType.REJECT && f.body.length === REJECT_BODY_LEN && f.body[0] === Code.TICKET_REJECTED) {
                    fellBack = true // keep the ticket: the REJECT is not authenticated
                } else throw this.unexpected(f)
            }
            if (session === undefined) session = await this.fullHandshake(sock, timeoutMs)
            const conn = new Connection(sock, session, o.store)
            conn.handshakeMs = ds.millis() - t0
            conn.resumed = resumed
            conn.earlyAccepted = earlyAccepted
            conn.fellBack = fellBack
            // "If EARLY_ACCEPTED is clear and it sent early data, it sends the same data again"
            if (early !== undefined && !earlyAccepted) await conn.send(early)
            if (!(await conn.awaitTicket(timeoutMs))) throw new Error("tether: no TICKET after the handshake")
            // done: the next ephemeral is the caller's idle work (prepare()), not part of connect
            return conn
        } catch (e) {
            sock.close()
            throw e
        }
    }

    private async fullHandshake(sock: FramedSocket, timeoutMs: number): Promise<Session> {
        await this.prepare() // no-op when done while idle
        const e = this.e
        this.e = undefined // one attempt only (PROTOCOL.md 4.3): taken before any await
        const pending = await writeHsInit({ pairing: this.opts.pairing, e, ss: this.ss, dh: this.dh, cipher: this.opts.cipher })
        await sock.sendFrame(FrameType.HS_INIT, pending.body)
        const f = await this.answer(sock, timeoutMs)
        if (f.type !== FrameType.HS_RESP) throw this.unexpected(f)
        const session = await readHsResp(pending, f.body)
        if (session === undefined) throw new Error("tether: bad HS_RESP")
        return session
    }

    private async answer(sock: FramedSocket, timeoutMs: number) {
        const f = await sock.recvFrame(timeoutMs)
        if (f === undefined) throw new Error("tether: no answer from the gateway")
        if (f === null) throw new Error("tether: the gateway closed the connection")
        return f
    }

    private unexpected(f: { type: number; body: Buffer }): Error {
        if (f.type === FrameType.REJECT && f.body.length === REJECT_BODY_LEN) return new RejectedError(f.body[0])
        return new Error("tether: unexpected frame " + f.type)
    }
}
