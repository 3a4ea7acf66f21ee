// The device's connection to its gateway (PROTOCOL.md 8). The states and the transitions are
// in ./initiator.ts; this module drives them over a Transport:
//
//     Idle -> (RESUME_INIT) AwaitResumeResp -> AwaitTicket -> Established   a ticket is stored
//     Idle -> (HS_INIT) AwaitHsResp -> AwaitTicket -> Established           none is
//     AwaitResumeResp -> REJECT(TICKET_REJECTED) -> (HS_INIT) AwaitHsResp, same connection
//
// connect() returns as soon as the session is established and its TICKET stored: it does not
// generate the next ephemeral key pair (one X25519, seconds on a chip). The caller runs
// prepare() while idle (the link does, on its own fiber, once it is up), so the next full
// handshake costs three X25519 on its critical path (4.3); if prepare() has not run by then,
// the full handshake does it first. `ss` is computed once per pairing. All DH goes through
// `opts.dh`, so tests count it. The connection comes from `opts.connect` (FramedSocket on
// the device, a MemoryTransport in tests); once established it is a Connection
// (./connection.ts).
import * as ds from "@devicescript/core"
import { randomBytes, RandomSource } from "../crypto/random"
import { x25519, x25519Base } from "../crypto/x25519"
import { FramedSocket } from "../net/framed-socket"
import { Connector, Frame, Transport } from "../net/transport"
import { CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { Pairing } from "./handshake"
import { Connection } from "./connection"
import { Initiator, InitiatorContext, Outcome, Phase, Step } from "./initiator"
import { TicketStore } from "./ticket-store"

export { Connection, RecvKind } from "./connection"
export type { Received } from "./connection"

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

/** The device's connector: a FramedSocket over TCP. */
export const TCP: Connector = async o => await FramedSocket.connect(o)

/** Options of {@link TetherClient}. */
export interface ClientOptions {
    pairing: Pairing
    /** the ticket store (TicketStore.open(new SettingsStorage()) on the device) */
    store: TicketStore
    host: string
    port: number
    /** opens the connection; default {@link TCP} (FramedSocket.connect) */
    connect?: Connector
    /** DH functions; default {@link X25519} */
    dh?: Dh
    /** randomness for nonces and ephemeral keys; default the CSPRNG */
    random?: RandomSource
    /** cipher function; default AESCCM */
    cipher?: CipherFunction
    /** connection and handshake answer timeout; default {@link HANDSHAKE_TIMEOUT_MS} */
    timeoutMs?: number
    /** called when the connection is open and the first handshake frame is about to go */
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

/** A device's client for its one gateway. */
export class TetherClient {
    private opts: ClientOptions
    private dh: Dh
    private random: RandomSource
    private ctx: InitiatorContext
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
        const self = this
        this.ctx = {
            pairing: opts.pairing,
            dh: this.dh,
            random: this.random,
            cipher: opts.cipher,
            fullKeys: async () => await self.takeKeys(),
        }
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

    /** The keys of one full handshake attempt: prepared (now, if not while idle), then taken. */
    private async takeKeys(): Promise<{ e: KeyPair; ss: Buffer }> {
        await this.prepare() // no-op when done while idle
        const e = this.e
        this.e = undefined // one attempt only (PROTOCOL.md 4.3): taken before any await
        return { e, ss: this.ss }
    }

    /**
     * Connects: resumes with the stored ticket (with `early` as 0-RTT data), or runs the full
     * handshake when there is no ticket or it is rejected (same connection).
     * @param early a DATA content to deliver as early as possible (0-RTT on a resumption)
     * @returns the connection; `earlyAccepted` says whether `early` went as 0-RTT data (if
     *     not, it was sent again as a DATA record)
     * @throws RejectedError on any other REJECT; Error on a bad or missing answer (the
     *     connection is closed, the stored ticket is kept)
     */
    async connect(early?: Buffer): Promise<Connection> {
        const o = this.opts
        const timeoutMs = o.timeoutMs === undefined ? HANDSHAKE_TIMEOUT_MS : o.timeoutMs
        const transport = await (o.connect || TCP)({ host: o.host, port: o.port, timeoutMs })
        const m = new Initiator(this.ctx, o.store)
        try {
            if (o.onOpen) o.onOpen()
            const t0 = ds.millis()
            let handshakeMs = -1
            let s = await m.start(early)
            for (;;) {
                if (handshakeMs < 0 && s.next.phase === Phase.AwaitTicket) handshakeMs = ds.millis() - t0
                if (s.close) throw errorOf(s)
                for (const f of s.frames) await transport.sendFrame(f.type, f.body)
                if (m.state.phase === Phase.Established) break
                s = await m.receive(await this.answer(transport, m.state.phase === Phase.AwaitTicket, timeoutMs))
            }
            // done: the next ephemeral is the caller's idle work (prepare()), not part of connect
            const conn = new Connection(transport, m)
            conn.handshakeMs = handshakeMs
            return conn
        } catch (e) {
            m.close()
            transport.close()
            throw e
        }
    }

    /**
     * The gateway's next frame during the handshake. Waiting for the TICKET, a timeout, a
     * close or a framing error all mean the same: no TICKET.
     */
    private async answer(transport: Transport, ticket: boolean, timeoutMs: number): Promise<Frame> {
        let f: Frame
        try {
            f = await transport.recvFrame(timeoutMs)
        } catch (e) {
            if (!ticket) throw e
            f = null
        }
        if (f === undefined || f === null) {
            if (ticket) throw new Error("tether: no TICKET after the handshake")
            if (f === undefined) throw new Error("tether: no answer from the gateway")
            throw new Error("tether: the gateway closed the connection")
        }
        return f
    }
}

/** The error connect() throws for a closing Step. */
function errorOf(s: Step): Error {
    if (s.outcome === Outcome.Rejected) return new RejectedError(s.code)
    return new Error(s.detail)
}
