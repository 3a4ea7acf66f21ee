// A test-local gateway for the client tests: both version 2 handshakes of PROTOCOL.md written
// out token by token on the device's own SymmetricState (independently of src/tether/*),
// over the gateway end of a MemoryTransport, one fiber per connection. It issues tickets the
// way 6.3 says (after the device's first record, or right after RESUME_RESP when it accepted
// early data), rotates pseudonyms (4.4), and can be told to refuse every ticket or to accept
// no early data. Tickets are opaque random bytes here; the bytes of the real gateway are
// checked against the generated vectors elsewhere. The DH is injected: a toy commutative one
// (public = private) keeps a test of many connections cheap; the runtime's X25519 for the
// tests that count the device's X25519.
import * as ds from "@devicescript/core"
import { hmacSha256, sha256 } from "../../../src/crypto/hash"
import { memoryPair, MemoryTransport } from "../../../src/net/memory-transport"
import { AESCCM } from "../../../src/noise/cipher"
import { CipherState } from "../../../src/noise/cipher-state"
import { Dh } from "../../../src/noise/dh"
import { SymmetricState } from "../../../src/noise/symmetric-state"
import { Pairing } from "../../../src/tether/handshake"
import { Code, FrameType, InnerType } from "../../../src/tether/wire"

const EMPTY = Buffer.alloc(0)
const hex = (b: Buffer) => b.toString("hex")

function lt(a: Buffer, b: Buffer) {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i]
    return false
}

/** Toy DH: public = scalar, DH(a, B) = SHA-256(min || max): commutative, not secure, no cost. */
export const TOY_DH: Dh = {
    x25519: async (a: Buffer, u: Buffer) => {
        if (hex(u) === hex(Buffer.alloc(32))) throw new Error("all-zero output")
        return lt(a, u) ? sha256(a, u) : sha256(u, a)
    },
    x25519Base: async (a: Buffer) => a.slice(0),
}

function prologue(id: Buffer): Buffer {
    return Buffer.concat(Buffer.from("tether/2"), Buffer.from([2]), id)
}

function u32(b: Buffer, off: number): number {
    return (b[off] * 256 + b[off + 1]) * 65536 + b[off + 2] * 256 + b[off + 3]
}

/** What the gateway saw of one connection, in order: "R" RESUME_INIT, "H" HS_INIT. */
export interface Seen {
    first: string[]
    /** the pseudonym of each HS_INIT, hex */
    pseudonyms: string[]
    /** the ephemeral public key of each HS_INIT, hex */
    ephemerals: string[]
    /** the ticket age each RESUME_INIT carried, de-obfuscated with its ticket's age_add */
    ages: number[]
    /** whether each RESUME_INIT carried early data */
    early: boolean[]
    /** DATA contents received, hex, in order, with "e:" for accepted early data */
    data: string[]
}

/** The gateway side. */
export class MiniGateway {
    /** the device's pairing as the gateway holds it, and the gateway's static private key */
    readonly deviceId: Buffer
    readonly devicePublic: Buffer
    readonly psk: Buffer
    readonly staticPrivate: Buffer
    staticPublic: Buffer
    dh: Dh
    /** the pseudonyms it accepts in HS_INIT (4.4): pseudonym0, the latest, the previous */
    pseudonyms: string[] = []
    /** issued tickets and their secrets, hex */
    private tickets: string[] = []
    private secrets: Buffer[] = []
    private counter = 0
    /** answer TICKET_REJECTED to every RESUME_INIT */
    rejectTickets = false
    /** accept no early data (EARLY_ACCEPTED clear) */
    refuseEarly = false
    /** what it saw, across connections */
    seen: Seen = { first: [], pseudonyms: [], ephemerals: [], ages: [], early: [], data: [] }
    /** the current connection's gateway end */
    end: MemoryTransport
    /** the current session's sending CipherState (undefined before its handshake) */
    private sendCs: CipherState = undefined
    full = 0
    resumed = 0

    constructor(p: Pairing, staticPrivate: Buffer, dh: Dh) {
        this.deviceId = p.deviceId
        this.devicePublic = p.s.publicKey
        this.psk = p.psk
        this.staticPrivate = staticPrivate
        this.dh = dh
        this.pseudonyms.push(hex(hmacSha256(p.psk, Buffer.from("tether/2 pseudonym")).slice(0, 8)))
    }

    async init(): Promise<MiniGateway> {
        this.staticPublic = await this.dh.x25519Base(this.staticPrivate)
        return this
    }

    private fresh(n: number): Buffer {
        this.counter++
        return sha256(Buffer.from("mini-gateway " + this.counter)).slice(0, n)
    }

    /** Mints a ticket for the device (the out-of-band one, say) without a connection. */
    mint(): { ticket: Buffer; secret: Buffer } {
        const ticket = this.fresh(33)
        const secret = this.fresh(32)
        this.tickets.push(hex(ticket))
        this.secrets.push(secret)
        return { ticket, secret }
    }

    /** A connector for TetherClient: each connection gets a new pair and a serving fiber. */
    connector() {
        const self = this
        return async () => {
            const pair = memoryPair()
            const gw = pair.gateway
            self.end = gw
            const serve = async () => {
                try {
                    await self.run(gw)
                } catch (e) {
                    console.log("mini-gateway: " + (e as Error).message)
                }
                gw.close()
            }
            serve.start()
            return pair.device
        }
    }

    private async run(gw: MemoryTransport): Promise<void> {
        let f = await gw.recvFrame(5000)
        if (!f) return
        let send: CipherState
        let recv: CipherState
        let ticketDue = true
        let resumedCount = false
        if (f.type === FrameType.RESUME_INIT) {
            this.seen.first.push("R")
            const r = this.resume(f.body)
            if (r === undefined) {
                await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
                f = await gw.recvFrame(5000)
                if (!f || f.type !== FrameType.HS_INIT) return
            } else {
                await gw.sendFrame(FrameType.RESUME_RESP, r.resp)
                send = r.cs[1]
                recv = r.cs[0]
                resumedCount = true
                if (r.accepted) {
                    this.seen.data.push("e:" + hex(r.early.slice(1)))
                    await this.ticket(gw, send)
                    ticketDue = false
                }
            }
        }
        if (send === undefined) {
            if (f.type !== FrameType.HS_INIT) return
            this.seen.first.push("H")
            const pseudonym = f.body.slice(1, 9)
            this.seen.pseudonyms.push(hex(pseudonym))
            this.seen.ephemerals.push(hex(f.body.slice(9, 41)))
            if (this.pseudonyms.indexOf(hex(pseudonym)) < 0) {
                await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.UNKNOWN_DEVICE]))
                return
            }
            const k = await this.kk(pseudonym, f.body.slice(9))
            if (k === undefined) {
                await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.HANDSHAKE_FAILED]))
                return
            }
            await gw.sendFrame(FrameType.HS_RESP, k.resp)
            send = k.cs[1]
            recv = k.cs[0]
        }
        if (resumedCount) this.resumed++
        else this.full++
        if (this.end === gw) this.sendCs = send
        for (;;) {
            const r = await gw.recvFrame()
            if (!r) return
            if (r.type !== FrameType.RECORD) return
            const pt = recv.decryptWithAd(EMPTY, r.body)
            if (pt === undefined) return
            if (pt[0] === InnerType.DATA) this.seen.data.push(hex(pt.slice(1)))
            if (pt[0] === InnerType.CLOSE) return
            // confirmed (6.3): the TICKET follows the device's first record
            if (ticketDue) {
                await this.ticket(gw, send)
                ticketDue = false
            }
        }
    }

    /** Issues a TICKET: ticket || secret || next_pseudonym; the pseudonyms rotate. */
    private async ticket(gw: MemoryTransport, send: CipherState): Promise<void> {
        const t = this.mint()
        const next = this.fresh(8)
        // pseudonym0 stays; previous = latest, latest = next
        const p0 = this.pseudonyms[0]
        const latest = this.pseudonyms.length > 1 ? this.pseudonyms[1] : undefined
        this.pseudonyms = latest === undefined ? [p0, hex(next)] : [p0, hex(next), latest]
        const content = Buffer.concat(Buffer.from([InnerType.TICKET]), t.ticket, t.secret, next)
        await gw.sendFrame(FrameType.RECORD, send.encryptWithAd(EMPTY, content))
    }

    /** Ends the current session with CLOSE(code) (SHUTDOWN, IDLE, ...), as a gateway node does. */
    async closeSession(code: number): Promise<void> {
        const gw = this.end
        const cs = this.sendCs
        this.sendCs = undefined
        if (gw === undefined || cs === undefined) return
        await gw.sendFrame(FrameType.RECORD, cs.encryptWithAd(EMPTY, Buffer.from([InnerType.CLOSE, code])))
        gw.close()
    }

    /** Forgets every pseudonym it issued (pseudonym0 stays). */
    forgetPseudonyms(): void {
        this.pseudonyms = [this.pseudonyms[0]]
    }

    /** PROTOCOL.md 6.2, the gateway's side; undefined when the ticket is refused. */
    private resume(body: Buffer) {
        if (this.rejectTickets || body.length < 62 || body[0] !== 2) return undefined
        const ticket = body.slice(1, 34)
        const i = this.tickets.indexOf(hex(ticket))
        if (i < 0) return undefined
        const secret = this.secrets[i]
        const age = body.slice(34, 38)
        const nonceI = body.slice(38, 46)
        const sym = new SymmetricState(AESCCM, "Tether_Resume2_AESCCM_SHA256")
        sym.mixHash(prologue(this.deviceId))
        sym.mixKeyAndHash(secret)
        sym.mixHash(ticket)
        sym.mixHash(age)
        sym.mixHash(nonceI)
        sym.mixKey(nonceI)
        const early = sym.decryptAndHash(body.slice(46))
        if (early === undefined) return undefined
        const add = u32(hmacSha256(secret, Buffer.from("tether/2 age")), 0)
        // (not `% 2^32`: the VM's remainder does not work with that divisor)
        const d = u32(age, 0) - add
        this.seen.ages.push(d < 0 ? d + 4294967296 : d)
        this.seen.early.push(early.length > 0)
        const accepted = early.length > 0 && !this.refuseEarly
        const nonceR = this.fresh(12)
        sym.mixHash(nonceR)
        sym.mixKey(nonceR)
        const ct = sym.encryptAndHash(Buffer.from([accepted ? 1 : 0]))
        return { resp: Buffer.concat(nonceR, ct), cs: sym.split(), accepted, early }
    }

    /** PROTOCOL.md 4, the responder of KKpsk2. */
    private async kk(pseudonym: Buffer, msg1: Buffer) {
        const sym = new SymmetricState(AESCCM, "Noise_KKpsk2_25519_AESCCM_SHA256")
        sym.mixHash(prologue(pseudonym))
        sym.mixHash(this.devicePublic)
        sym.mixHash(this.staticPublic)
        const re = msg1.slice(0, 32)
        sym.mixHash(re) // e
        sym.mixKey(re)
        sym.mixKey(await this.dh.x25519(this.staticPrivate, re)) // es
        sym.mixKey(await this.dh.x25519(this.staticPrivate, this.devicePublic)) // ss
        const p1 = sym.decryptAndHash(msg1.slice(32))
        if (p1 === undefined || p1.length !== 0) return undefined
        const ePriv = this.fresh(32)
        const ePub = await this.dh.x25519Base(ePriv)
        sym.mixHash(ePub) // e
        sym.mixKey(ePub)
        sym.mixKey(await this.dh.x25519(ePriv, re)) // ee
        sym.mixKey(await this.dh.x25519(ePriv, this.devicePublic)) // se
        sym.mixKeyAndHash(this.psk) // psk
        const ct = sym.encryptAndHash(EMPTY)
        return { resp: Buffer.concat(ePub, ct), cs: sym.split() }
    }
}

/** Waits until `pred` holds (polling every 5 ms), at most `ms`. */
export async function until(pred: () => boolean, ms: number): Promise<boolean> {
    const end = ds.millis() + ms
    while (!pred()) {
        if (ds.millis() > end) return false
        await ds.sleep(5)
    }
    return true
}
