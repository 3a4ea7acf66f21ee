// The device's connection state machine (src/tether/initiator.ts), transition by transition,
// with the gateway's answers from the generated vectors: each transition returns the next
// state and the frames to send; the session is Established at once after HS_RESP or
// RESUME_RESP, and its first record (the caller's `early` content, when it did not go as
// accepted 0-RTT data) goes right then, byte for byte the vectors' first device record; a
// TICKET is a record of Established, stored with its pseudonym and the session's `resumed`
// count; a ticket whose age is unknown carries 4 random bytes and no early data; a failed
// message returns the state it was given, unchanged, with `close` set and nothing to send; a
// frame of the wrong type for the state closes; the fallback cap and the resumption cap
// decide what start() and a TICKET_REJECTED do.
// @timeout 60000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { encodeFrame } from "../../../src/net/frame"
import { X25519 } from "../../../src/tether/client"
import {
    AwaitHsResp,
    AwaitResumeResp,
    Established,
    Initiator,
    InitiatorContext,
    onHsResp,
    onRecord,
    onResumeResp,
    Outcome,
    Phase,
    startFull,
    startResume,
} from "../../../src/tether/initiator"
import { encodeSlot, MemoryStorage, SLOT_A, TicketStore } from "../../../src/tether/ticket-store"
import { Code, FrameType, InnerType, RESUME_CAP } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"
import { TETHER_RESUME } from "../vectors/tether-resume"
import { flipped, frameOf, h, hex, pairingOf, ScriptedRandom, ticketOf } from "./gateway-script"

const K = TETHER_KK[0]
/** early data accepted; no early data; early data refused (generation already accepted) */
const R_EARLY = TETHER_RESUME[0]
const R_NONE = TETHER_RESUME[1]
const R_REFUSED = TETHER_RESUME[2]
const EMPTY = Buffer.alloc(0)

let ss: Buffer = undefined

/** The context of the vectors: the KK vector's ephemeral and es, its pseudonym as the stored one. */
async function ctx(random: ScriptedRandom, fallBack?: () => boolean): Promise<InitiatorContext> {
    if (ss === undefined) ss = await X25519.x25519(h(K.device_static_private), h(K.gateway_static_public))
    return {
        pairing: pairingOf(K),
        dh: X25519,
        random: random.source(),
        fullKeys: async () => ({
            e: { privateKey: h(K.device_ephemeral_private), publicKey: h(K.device_ephemeral_public) },
            es: h(K.es),
            ss,
        }),
        pseudonym: () => ({ pseudonym: h(K.pseudonym), stored: true }),
        fallBack,
    }
}

function wire(f: { type: number; body: Buffer }): string {
    return hex(encodeFrame(f.type, f.body))
}

/** A record the gateway would send next in this session: sealed on a clone of the device's receiving state. */
function forged(s: Established, type: number, content: Buffer): Buffer {
    return s.session.recv.clone().encryptWithAd(EMPTY, Buffer.concat(Buffer.from([type]), content))
}

/** The resumption of a vector, its age known, up to Established. */
async function resumed(v: any, resumedBefore?: number): Promise<Established> {
    const c = await ctx(new ScriptedRandom([h(v.nonce_i)]))
    const s0 = startResume(c, ticketOf(v, resumedBefore), v.ticket_age, v.early ? h(v.early_data) : undefined)
    return onResumeResp(s0.next as AwaitResumeResp, frameOf(v.resume_resp).body).next as Established
}

describe("initiator transitions", () => {
    test("Idle -> AwaitResumeResp -> Established, 0-RTT accepted; the TICKET after it stored with resumed + 1", async () => {
        const r = new ScriptedRandom([h(R_EARLY.nonce_i)])
        const s0 = startResume(await ctx(r), ticketOf(R_EARLY, 4), R_EARLY.ticket_age, h(R_EARLY.early_data))
        expect(s0.next.phase).toBe(Phase.AwaitResumeResp)
        expect(s0.frames.length).toBe(1)
        expect(wire(s0.frames[0])).toBe(R_EARLY.resume_init)
        expect(r.asked.join(",")).toBe("8") // nonce_i; the age is known
        const s1 = onResumeResp(s0.next as AwaitResumeResp, frameOf(R_EARLY.resume_resp).body)
        expect(s1.next.phase).toBe(Phase.Established)
        expect(s1.close).toBe(false)
        expect(s1.frames.length).toBe(0) // the early data was accepted: nothing to send again
        const est = s1.next as Established
        expect(est.how.resumed && est.how.earlyAccepted && !est.how.fellBack).toBe(true)
        expect(est.how.ticketResumed).toBe(5)
        const s2 = onRecord(est, frameOf(R_EARLY.record_ticket).body)
        expect(s2.outcome).toBe(Outcome.Ticket)
        expect(s2.next === est).toBe(true)
        expect(s2.delivered.length).toBe(0)
        expect(hex(s2.store.ticket)).toBe(R_EARLY.next_ticket)
        expect(hex(s2.store.secret)).toBe(R_EARLY.next_resumption_secret)
        expect(hex(s2.store.pseudonym)).toBe(R_EARLY.next_pseudonym)
        expect(s2.store.resumed).toBe(5)
        const d = onRecord(est, frameOf(R_EARLY.record_data_r2i).body)
        expect(d.delivered.length).toBe(1)
        expect(hex(d.delivered[0])).toBe(R_EARLY.data_r2i)
    })
    test("early data refused: sent again as the session's first DATA record, byte for byte", async () => {
        await ds.sleep(0)
        const c = await ctx(new ScriptedRandom([h(R_REFUSED.nonce_i)]))
        const s0 = startResume(c, ticketOf(R_REFUSED), R_REFUSED.ticket_age, h(R_REFUSED.early_data))
        expect(wire(s0.frames[0])).toBe(R_REFUSED.resume_init)
        const s1 = onResumeResp(s0.next as AwaitResumeResp, frameOf(R_REFUSED.resume_resp).body)
        const est = s1.next as Established
        expect(est.how.resumed && !est.how.earlyAccepted).toBe(true)
        expect(s1.frames.length).toBe(1)
        expect(R_REFUSED.data_i2r).toBe(R_REFUSED.early_data)
        expect(wire(s1.frames[0])).toBe(R_REFUSED.record_data_i2r)
        expect(est.session.send.n).toBe(1)
        // the TICKET follows that record
        const t = onRecord(est, frameOf(R_REFUSED.record_ticket).body)
        expect(hex(t.store.ticket)).toBe(R_REFUSED.next_ticket)
        expect(t.store.resumed).toBe(1)
    })
    test("unknown age: 4 random bytes, no early data, the content as the first record", async () => {
        await ds.sleep(0)
        // the vector without early data: its obfuscated_age bytes are what the random source gives
        const r = new ScriptedRandom([h(R_NONE.nonce_i), h(R_NONE.obfuscated_age)])
        const s0 = startResume(await ctx(r), ticketOf(R_NONE), undefined, h(R_NONE.data_i2r))
        expect(r.asked.join(",")).toBe("8,4")
        expect(wire(s0.frames[0])).toBe(R_NONE.resume_init)
        expect((s0.next as AwaitResumeResp).pending.early).toBe(false)
        const s1 = onResumeResp(s0.next as AwaitResumeResp, frameOf(R_NONE.resume_resp).body)
        expect((s1.next as Established).how.earlyAccepted).toBe(false)
        expect(s1.frames.length).toBe(1)
        expect(wire(s1.frames[0])).toBe(R_NONE.record_data_i2r)
    })
    test("Idle -> AwaitHsResp -> Established: HS_INIT, the first record and the TICKET of the KK vector", async () => {
        const s0 = await startFull(await ctx(new ScriptedRandom([])), h(K.data_i2r), false)
        expect(s0.next.phase).toBe(Phase.AwaitHsResp)
        expect(s0.outcome).toBe(Outcome.Started)
        expect(wire(s0.frames[0])).toBe(K.hs_init)
        const p = s0.next as AwaitHsResp
        expect(p.storedPseudonym).toBe(true)
        const s1 = await onHsResp(p, frameOf(K.hs_resp).body)
        expect(s1.next.phase).toBe(Phase.Established)
        expect(hex(p.pending.hs.getHandshakeHash())).toBe(K.handshake_hash)
        // the device goes first (12.1): its first record, n = 0
        expect(s1.frames.length).toBe(1)
        expect(wire(s1.frames[0])).toBe(K.record_data_i2r)
        const est = s1.next as Established
        expect(est.how.resumed || est.how.fellBack).toBe(false)
        expect(est.how.ticketResumed).toBe(0)
        const s2 = onRecord(est, frameOf(K.record_ticket).body)
        expect(hex(s2.store.ticket)).toBe(K.ticket)
        expect(hex(s2.store.secret)).toBe(K.resumption_secret)
        expect(hex(s2.store.pseudonym)).toBe(K.next_pseudonym)
        expect(s2.store.resumed).toBe(0)
        expect(hex(onRecord(est, frameOf(K.record_data_r2i).body).delivered[0])).toBe(K.data_r2i)
    })
})

describe("a failed message leaves the state unchanged", () => {
    test("a flipped byte in HS_RESP: same state, same handshake hash, close, nothing sent", async () => {
        const s0 = await startFull(await ctx(new ScriptedRandom([])), undefined, true)
        const p = s0.next as AwaitHsResp
        const h0 = hex(p.pending.hs.getHandshakeHash())
        for (const i of [0, 32, 47]) {
            const s = await onHsResp(p, flipped(K.hs_resp, i).body)
            expect(s.next === p).toBe(true)
            expect(p.phase).toBe(Phase.AwaitHsResp)
            expect(s.close).toBe(true)
            expect(s.frames.length).toBe(0)
            expect(s.store === undefined).toBe(true)
            expect(s.detail).toBe("tether: bad HS_RESP")
            expect(hex(p.pending.hs.getHandshakeHash())).toBe(h0)
        }
        // the untouched answer still completes the very same pending handshake
        const ok = await onHsResp(p, frameOf(K.hs_resp).body)
        expect(ok.next.phase).toBe(Phase.Established)
        expect((ok.next as Established).how.fellBack).toBe(true)
        expect(ok.frames.length).toBe(0) // no content given: nothing to send yet
    })
    test("a flipped byte in RESUME_RESP: same state, same hash, close", async () => {
        await ds.sleep(0)
        const s0 = startResume(
            await ctx(new ScriptedRandom([h(R_EARLY.nonce_i)])),
            ticketOf(R_EARLY),
            R_EARLY.ticket_age,
            h(R_EARLY.early_data)
        )
        const p = s0.next as AwaitResumeResp
        const h0 = hex(p.pending.sym.h)
        for (const i of [0, 12, 28]) {
            const s = onResumeResp(p, flipped(R_EARLY.resume_resp, i).body)
            expect(s.next === p).toBe(true)
            expect(s.close).toBe(true)
            expect(s.frames.length).toBe(0)
            expect(s.detail).toBe("tether: bad RESUME_RESP")
            expect(hex(p.pending.sym.h)).toBe(h0)
            await ds.sleep(0)
        }
        expect(onResumeResp(p, frameOf(R_EARLY.resume_resp).body).next.phase).toBe(Phase.Established)
    })
    test("a flipped byte in the TICKET record: same state, nothing to store, close", async () => {
        const est = await resumed(R_EARLY)
        const s = onRecord(est, flipped(R_EARLY.record_ticket, 5).body)
        expect(s.next === est).toBe(true)
        expect(s.store === undefined).toBe(true)
        expect(s.close).toBe(true)
        expect(s.delivered.length).toBe(0)
        expect(est.session.recv.n).toBe(0)
        expect(est.session.dead).toBe(true)
    })
})

describe("the Initiator's dispatch", () => {
    /** A machine whose flash holds the vector's ticket from before a reboot (age unknown). */
    async function machine(v: any, mem: MemoryStorage, resumedBefore?: number, fallBack?: () => boolean) {
        await mem.write(SLOT_A, encodeSlot(1, ticketOf(v, resumedBefore)))
        const store = await TicketStore.open(mem)
        const random = new ScriptedRandom([h(v.nonce_i), h(v.obfuscated_age)])
        const m = new Initiator(await ctx(random, fallBack), store)
        const first = await m.start(h(v.data_i2r))
        return { m, store, first, random }
    }
    test("start(): a stored ticket of unknown age resumes without early data, byte for byte", async () => {
        const { m, first } = await machine(R_NONE, new MemoryStorage())
        expect(wire(first.frames[0])).toBe(R_NONE.resume_init)
        const s = await m.receive(frameOf(R_NONE.resume_resp))
        expect(m.state.phase).toBe(Phase.Established)
        expect(wire(s.frames[0])).toBe(R_NONE.record_data_i2r)
    })
    test("start(): the resumption cap; no ticket: the full handshake", async () => {
        await ds.sleep(0)
        const below = await machine(R_NONE, new MemoryStorage(), RESUME_CAP - 1)
        expect(below.first.frames[0].type).toBe(FrameType.RESUME_INIT)
        const at = await machine(R_NONE, new MemoryStorage(), RESUME_CAP)
        expect(at.first.frames[0].type).toBe(FrameType.HS_INIT)
        expect(wire(at.first.frames[0])).toBe(K.hs_init)
        expect(at.m.state.phase).toBe(Phase.AwaitHsResp)
        const none = new Initiator(await ctx(new ScriptedRandom([])), await TicketStore.open(new MemoryStorage()))
        expect(wire((await none.start()).frames[0])).toBe(K.hs_init)
        let threw = false
        try {
            await none.start()
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
    })
    test("a frame of the wrong type closes in every state; the ticket is kept", async () => {
        const { m, store } = await machine(R_NONE, new MemoryStorage())
        const s = await m.receive(frameOf(K.hs_resp)) // HS_RESP for RESUME_RESP
        expect(s.close).toBe(true)
        expect(s.outcome).toBe(Outcome.Unexpected)
        expect(s.detail).toBe("tether: unexpected frame 2")
        expect(m.state.phase).toBe(Phase.Closed)
        expect(hex(store.current().ticket)).toBe(R_NONE.ticket)
        // Closed accepts nothing
        expect((await m.receive(frameOf(R_NONE.resume_resp))).close).toBe(true)
        const two = await machine(R_NONE, new MemoryStorage())
        await two.m.receive(frameOf(R_NONE.resume_resp))
        expect(two.m.state.phase).toBe(Phase.Established)
        const t = await two.m.receive(frameOf(R_NONE.resume_resp)) // a handshake frame in Established
        expect(t.close).toBe(true)
        expect(two.m.state.phase).toBe(Phase.Closed)
        expect(hex(two.store.current().ticket)).toBe(R_NONE.ticket)
    })
    test("REJECT(TICKET_REJECTED) -> HS_INIT with the stored pseudonym; another REJECT ends with its code", async () => {
        let asked = 0
        const { m, store } = await machine(R_NONE, new MemoryStorage(), 0, () => {
            asked++
            return true
        })
        const s = await m.receive({ type: FrameType.REJECT, body: Buffer.from([Code.TICKET_REJECTED]) })
        expect(asked).toBe(1)
        expect(s.outcome).toBe(Outcome.FellBack)
        expect(m.state.phase).toBe(Phase.AwaitHsResp)
        expect(wire(s.frames[0])).toBe(K.hs_init)
        expect(hex(store.current().ticket)).toBe(R_NONE.ticket) // a REJECT deletes nothing
        const r = await m.receive({ type: FrameType.REJECT, body: Buffer.from([Code.BUSY]) })
        expect(r.outcome).toBe(Outcome.Rejected)
        expect(r.code).toBe(Code.BUSY)
        expect(m.state.phase).toBe(Phase.Closed)
    })
    test("REJECT(TICKET_REJECTED) past the fallback cap: Rejected with that code, nothing sent, the ticket kept", async () => {
        await ds.sleep(0)
        const { m, store } = await machine(R_NONE, new MemoryStorage(), 0, () => false)
        const s = await m.receive({ type: FrameType.REJECT, body: Buffer.from([Code.TICKET_REJECTED]) })
        expect(s.outcome).toBe(Outcome.Rejected)
        expect(s.code).toBe(Code.TICKET_REJECTED)
        expect(s.close).toBe(true)
        expect(s.frames.length).toBe(0)
        expect(m.state.phase).toBe(Phase.Closed)
        expect(hex(store.current().ticket)).toBe(R_NONE.ticket)
    })
    test("the TICKET is in flash before the next frame; a failed write leaves the state and the ticket", async () => {
        const mem = new MemoryStorage()
        const { m, store } = await machine(R_NONE, mem, 3)
        await m.receive(frameOf(R_NONE.resume_resp))
        expect(store.ageMs() === undefined).toBe(true)
        const writes = mem.writes
        mem.tearNext = 10 // the power goes during the write
        let threw = false
        try {
            await m.receive(frameOf(R_NONE.record_ticket))
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
        expect(mem.writes).toBe(writes + 1)
        expect(m.state.phase).toBe(Phase.Established)
        expect(hex(store.current().ticket)).toBe(R_NONE.ticket)
        // a second machine on other flash: stored, with its pseudonym and resumed = 3 + 1, its age known
        const again = await machine(R_NONE, new MemoryStorage(), 3)
        await again.m.receive(frameOf(R_NONE.resume_resp))
        const t = await again.m.receive(frameOf(R_NONE.record_ticket))
        expect(t.outcome).toBe(Outcome.Ticket)
        expect(again.m.state.phase).toBe(Phase.Established)
        const cur = again.store.current()
        expect(hex(cur.ticket) + " " + hex(cur.secret) + " " + hex(cur.pseudonym)).toBe(
            R_NONE.next_ticket + " " + R_NONE.next_resumption_secret + " " + R_NONE.next_pseudonym
        )
        expect(cur.resumed).toBe(4)
        expect(again.store.seq()).toBe(2)
        expect(again.store.ageMs() >= 0).toBe(true)
        expect(hex(again.store.pseudonym())).toBe(R_NONE.next_pseudonym)
    })
    test("Established: DATA, KEY_UPDATE, a TICKET stored, CLOSE with its code", async () => {
        const { m, store } = await machine(R_NONE, new MemoryStorage())
        await m.receive(frameOf(R_NONE.resume_resp))
        await m.receive(frameOf(R_NONE.record_ticket))
        const est = m.state as Established
        const d = await m.receive(frameOf(R_NONE.record_data_r2i))
        expect(hex(d.delivered[0])).toBe(R_NONE.data_r2i)
        const ku = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.KEY_UPDATE, EMPTY) })
        expect(ku.outcome).toBe(Outcome.KeyUpdate)
        expect(est.session.recv.n).toBe(0) // rekeyed
        const content = Buffer.concat(h(K.ticket), h(K.resumption_secret), h(K.next_pseudonym))
        const seq = store.seq()
        const t = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.TICKET, content) })
        expect(t.outcome).toBe(Outcome.Ticket)
        expect(t.delivered.length).toBe(0)
        expect(store.seq()).toBe(seq + 1)
        expect(hex(store.current().ticket)).toBe(K.ticket)
        expect(hex(store.current().pseudonym)).toBe(K.next_pseudonym)
        expect(store.current().resumed).toBe(1) // a second TICKET of the same resumed session
        // a TICKET of the version 1 size is a bad record
        const bad = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.TICKET, content.slice(0, 65)) })
        expect(bad.close).toBe(true)
        expect(bad.store === undefined).toBe(true)
        expect(m.state.phase).toBe(Phase.Closed)
        expect(hex(store.current().ticket)).toBe(K.ticket)
    })
    test("Established: CLOSE with its code; a frame of the wrong type closes, the DATA after it is not released", async () => {
        await ds.sleep(0)
        const a = await machine(R_NONE, new MemoryStorage())
        await a.m.receive(frameOf(R_NONE.resume_resp))
        const ea = a.m.state as Established
        const c = await a.m.receive({ type: FrameType.RECORD, body: forged(ea, InnerType.CLOSE, Buffer.from([Code.IDLE])) })
        expect(c.outcome).toBe(Outcome.PeerClosed)
        expect(c.code).toBe(Code.IDLE)
        expect(c.close).toBe(true)
        expect(a.m.state.phase).toBe(Phase.Closed)
        const { m } = await machine(R_NONE, new MemoryStorage())
        await m.receive(frameOf(R_NONE.resume_resp))
        const est = m.state as Established
        const s = await m.receive(frameOf(R_NONE.resume_resp))
        expect(s.close).toBe(true)
        expect(s.delivered.length).toBe(0)
        expect(est.session.dead).toBe(true)
        const d = await m.receive(frameOf(R_NONE.record_data_r2i))
        expect(d.close).toBe(true)
        expect(d.delivered.length).toBe(0)
    })
})
