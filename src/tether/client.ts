// The device's connection to its gateway (PROTOCOL.md 8). The states and the transitions are
// in ./initiator.ts; this module drives them over a Transport:
//
//     Idle -> (RESUME_INIT) AwaitResumeResp -> Established   a ticket is stored, under the resumption cap
//     Idle -> (HS_INIT) AwaitHsResp -> Established           otherwise
//     AwaitResumeResp -> REJECT(TICKET_REJECTED) -> (HS_INIT) AwaitHsResp, same connection,
//                        within the fallback cap (6.9); past it: RejectedError(TICKET_REJECTED)
//
// connect() returns as soon as the session is established (its first record, `early`, sent):
// the TICKET comes later, after that record, and the Connection stores it. connect() does
// not generate the next ephemeral key pair: the caller runs prepare() while idle (the link
// does, on its own fiber, once it is up), which computes the ephemeral and its `es` (and
// `ss` once per pairing), so the next full handshake costs two X25519 on its critical path,
// ee and se (4.3); if prepare() has not run by then, the full handshake does it first. An
// ephemeral and its es serve one attempt only. All DH goes through `opts.dh`, so tests count
// it. The connection comes from `opts.connect` (FramedSocket on the device, a MemoryTransport
// in tests); once established it is a Connection (./connection.ts).
//
// The client keeps in RAM what PROTOCOL.md gives the device to remember across connections
// besides flash: `rejections`, the TICKET_REJECTED answers since the last successful
// resumption (the fallback cap, 6.9), and whether the next HS_INIT must use pseudonym0 after
// a REJECT(UNKNOWN_DEVICE) to the stored pseudonym (4.4: for one attempt).
import * as ds from "@devicescript/core"
import { randomBytes, RandomSource } from "../crypto/random"
import { x25519, x25519Base } from "../crypto/x25519"
import { FramedSocket } from "../net/framed-socket"
import { Connector, Frame, Transport } from "../net/transport"
import { CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { Pairing, pseudonym0 } from "./handshake"
import { Connection } from "./connection"
import { FullKeys, Initiator, InitiatorContext, Outcome, Phase, PseudonymChoice, Step } from "./initiator"
import { TicketStore } from "./ticket-store"
import { Code, fallBackOn } from "./wire"

export { Connection, RecvKind } from "./connection"
export type { Received } from "./connection"

/** The runtime's X25519. */
export const X25519: Dh = {
    x25519: async (scalar: Buffer, u: Buffer) => await x25519(scalar, u),
    x25519Base: async (scalar: Buffer) => await x25519Base(scalar),
}

/**
 * An X25519 that counts its calls, `x` variable-base (DH) and `base` key generations: the
 * link reports it per handshake, tests and the bench assert it (2 DH on a full handshake's
 * critical path, ee and se, after prepare(); none on a resumption).
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
    /** the ephemeral key pair for the next full handshake and its es; used for one attempt only */
    private e: KeyPair
    private es: Buffer
    /** a prepare() is running (the link's idle fiber, or a full handshake) */
    private preparing = false
    /** HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8] (PROTOCOL.md 4.4) */
    private p0: Buffer
    /** the stored pseudonym that was answered UNKNOWN_DEVICE: the next HS_INIT uses pseudonym0 instead of it */
    private unknownPseudonym: Buffer = undefined
    /** the last connect() sent HS_INIT (its ephemeral is spent: prepare() has work to do) */
    lastAttemptFull = false
    /** TICKET_REJECTED answers since the last successful resumption (RAM, PROTOCOL.md 6.9) */
    rejections = 0
    /**
     * The last connect() was answered UNKNOWN_DEVICE to pseudonym0: the gateway knows no such
     * pairing (revoked, removed, re-keyed, or its generations used up; PROTOCOL.md 6.9)
     */
    unpaired = false

    constructor(opts: ClientOptions) {
        this.opts = opts
        this.dh = opts.dh || X25519
        this.random = opts.random || randomBytes
        this.p0 = pseudonym0(opts.pairing.psk)
        const self = this
        this.ctx = {
            pairing: opts.pairing,
            dh: this.dh,
            random: this.random,
            cipher: opts.cipher,
            fullKeys: async () => await self.takeKeys(),
            pseudonym: () => self.takePseudonym(),
            fallBack: () => self.countRejection(),
        }
    }

    /**
     * Idle work: computes the static public key when the pairing left it undefined, `ss`
     * (once per pairing), and the next ephemeral key pair with its `es` = DH(e, s_gateway),
     * so that a full handshake costs only ee and se (PROTOCOL.md 4.3). Call it while idle (it
     * yields between steps); a full handshake calls it when the idle work has not been done.
     * Calls do not overlap: a second one waits for the first and then finds nothing left to
     * do, so no key is computed twice.
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
                const e = { privateKey: priv, publicKey: await this.dh.x25519Base(priv) }
                const es = await this.dh.x25519(priv, p.gatewayPublic)
                this.e = e
                this.es = es
            }
        } finally {
            this.preparing = false
        }
    }

    /** Whether the next full handshake's keys are ready (prepare() has nothing left to do). */
    prepared(): boolean {
        return this.e !== undefined && this.ss !== undefined && this.opts.pairing.s.publicKey !== undefined
    }

    /** The keys of one full handshake attempt: prepared (now, if not while idle), then taken. */
    private async takeKeys(): Promise<FullKeys> {
        await this.prepare() // no-op when done while idle
        const k: FullKeys = { e: this.e, es: this.es, ss: this.ss }
        this.lastAttemptFull = true
        // one attempt only (PROTOCOL.md 4.3): taken before any await
        this.e = undefined
        this.es = undefined
        return k
    }

    /**
     * The next HS_INIT's pseudonym: the stored one, or pseudonym0 when none is stored, and
     * for one attempt after the stored one was answered UNKNOWN_DEVICE (PROTOCOL.md 4.4, 9.5;
     * a newer stored pseudonym cancels that).
     */
    private takePseudonym(): PseudonymChoice {
        const stored = this.opts.store.pseudonym()
        const unknown = this.unknownPseudonym
        this.unknownPseudonym = undefined
        if (stored === undefined || (unknown !== undefined && unknown.toString("hex") === stored.toString("hex")))
            return { pseudonym: this.p0, stored: false }
        return { pseudonym: stored, stored: true }
    }

    /** A TICKET_REJECTED: counted; whether it falls back to HS_INIT on this connection (6.9). */
    private countRejection(): boolean {
        this.rejections++
        return fallBackOn(this.rejections)
    }

    /**
     * Connects: resumes with the stored ticket (with `early` as 0-RTT data when its age is
     * known), or runs the full handshake when there is no ticket, its slot reached the
     * resumption cap, or it is rejected (same connection, within the fallback cap).
     * @param early a DATA content to deliver as early as possible: 0-RTT data on a
     *     resumption with a known ticket age, else the session's first record
     * @param host, port where to connect this time (a node of the cluster, the link's
     *     failover); default the options' host and port
     * @returns the connection; `earlyAccepted` says whether `early` went as 0-RTT data (if
     *     not, it was sent as the first DATA record)
     * @throws RejectedError on any other REJECT, and on TICKET_REJECTED past the fallback
     *     cap; Error on a bad or missing answer (the connection is closed, the stored ticket
     *     is kept)
     */
    async connect(early?: Buffer, host?: string, port?: number): Promise<Connection> {
        const o = this.opts
        const timeoutMs = o.timeoutMs === undefined ? HANDSHAKE_TIMEOUT_MS : o.timeoutMs
        this.lastAttemptFull = false
        const transport = await (o.connect || TCP)({
            host: host === undefined ? o.host : host,
            port: port === undefined ? o.port : port,
            timeoutMs,
        })
        const m = new Initiator(this.ctx, o.store)
        try {
            if (o.onOpen) o.onOpen()
            const t0 = ds.millis()
            let s = await m.start(early)
            for (;;) {
                if (s.close) {
                    // "UNKNOWN_DEVICE makes a device use its fallback pseudonym for one attempt"
                    if (s.code === Code.UNKNOWN_DEVICE && s.next.phase === Phase.AwaitHsResp) {
                        if (s.next.storedPseudonym) this.unknownPseudonym = o.store.pseudonym()
                        else this.unpaired = true
                    }
                    throw errorOf(s)
                }
                if (s.next.phase === Phase.Established) {
                    this.unpaired = false
                    const handshakeMs = ds.millis() - t0
                    // "the TICKET_REJECTED answers since its last successful resumption"
                    if (s.next.how.resumed) this.rejections = 0
                    for (const f of s.frames) await transport.sendFrame(f.type, f.body)
                    // done: the next ephemeral is the caller's idle work (prepare()), not part of connect
                    const conn = new Connection(transport, m)
                    conn.handshakeMs = handshakeMs
                    return conn
                }
                for (const f of s.frames) await transport.sendFrame(f.type, f.body)
                s = await m.receive(await this.answer(transport, timeoutMs))
            }
        } catch (e) {
            m.close()
            transport.close()
            throw e
        }
    }

    /** The gateway's next frame during the handshake. */
    private async answer(transport: Transport, timeoutMs: number): Promise<Frame> {
        const f = await transport.recvFrame(timeoutMs)
        if (f === undefined) throw new Error("tether: no answer from the gateway")
        if (f === null) throw new Error("tether: the gateway closed the connection")
        return f
    }
}

/** The error connect() throws for a closing Step. */
function errorOf(s: Step): Error {
    if (s.outcome === Outcome.Rejected) return new RejectedError(s.code)
    return new Error(s.detail)
}
