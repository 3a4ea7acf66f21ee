// The device's connection state machine (src/tether/initiator.ts), transition by transition,
// with the gateway's answers from the generated vectors: each transition returns the next
// state and the frames to send; a failed message returns the state it was given, unchanged
// (the pending handshake hash, the stored ticket), with `close` set and nothing to send; a
// frame of the wrong type for the state closes; the TICKET is in flash before Established.
// @timeout 60000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { encodeFrame } from "../../../src/net/frame"
import { X25519 } from "../../../src/tether/client"
import {
    AwaitHsResp,
    AwaitResumeResp,
    AwaitTicket,
    Established,
    Initiator,
    InitiatorContext,
    onFirstRecord,
    onHsResp,
    onRecord,
    onResumeResp,
    Outcome,
    Phase,
    startFull,
    startResume,
} from "../../../src/tether/initiator"
import { MemoryStorage, TicketStore } from "../../../src/tether/ticket-store"
import { Code, FrameType, InnerType } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"
import { TETHER_RESUME } from "../vectors/tether-resume"
import { flipped, frameOf, h, hex, pairingOf, ScriptedRandom, ticketOf } from "./gateway-script"

const K = TETHER_KK[0]
/** early data accepted; no early data; early data refused */
const R_EARLY = TETHER_RESUME[0]
const R_REFUSED = TETHER_RESUME[2]
const EMPTY = Buffer.alloc(0)

function ctx(random: ScriptedRandom): InitiatorContext {
    return {
        pairing: pairingOf(K),
        dh: X25519,
        random: random.source(),
        fullKeys: async () => ({
            e: { privateKey: h(K.device_ephemeral_private), publicKey: h(K.device_ephemeral_public) },
            ss: undefined, // one more DH: fine for a test
        }),
    }
}

function wire(f: { type: number; body: Buffer }): string {
    return hex(encodeFrame(f.type, f.body))
}

/** A record the gateway would send next in this session: sealed on a clone of the device's receiving state. */
function forged(s: AwaitTicket | Established, type: number, content: Buffer): Buffer {
    return s.session.recv.clone().encryptWithAd(EMPTY, Buffer.concat(Buffer.from([type]), content))
}

async function resumed(v: any): Promise<AwaitTicket> {
    const s0 = startResume(ctx(new ScriptedRandom([h(v.nonce_i)])), ticketOf(v), v.early ? h(v.early_data) : undefined)
    return onResumeResp(s0.next as AwaitResumeResp, frameOf(v.resume_resp).body).next as AwaitTicket
}

describe("initiator transitions", () => {
    test("Idle -> AwaitResumeResp -> AwaitTicket -> Established, byte for byte", async () => {
        const r = new ScriptedRandom([h(R_EARLY.nonce_i)])
        const s0 = startResume(ctx(r), ticketOf(R_EARLY), h(R_EARLY.early_data))
        expect(s0.next.phase).toBe(Phase.AwaitResumeResp)
        expect(s0.frames.length).toBe(1)
        expect(wire(s0.frames[0])).toBe(R_EARLY.resume_init)
        const s1 = onResumeResp(s0.next as AwaitResumeResp, frameOf(R_EARLY.resume_resp).body)
        expect(s1.next.phase).toBe(Phase.AwaitTicket)
        expect(s1.close).toBe(false)
        expect(s1.frames.length).toBe(0) // the early data was accepted: nothing to send again
        const at = s1.next as AwaitTicket
        expect(at.how.resumed && at.how.earlyAccepted && !at.how.fellBack).toBe(true)
        const s2 = onFirstRecord(at, frameOf(R_EARLY.record_ticket).body)
        expect(s2.next.phase).toBe(Phase.Established)
        expect(hex(s2.store.ticket)).toBe(R_EARLY.next_ticket)
        expect(hex(s2.store.secret)).toBe(R_EARLY.next_resumption_secret)
        const d = onRecord(s2.next as Established, frameOf(R_EARLY.record_data_r2i).body)
        expect(d.next === s2.next).toBe(true)
        expect(d.delivered.length).toBe(1)
        expect(hex(d.delivered[0])).toBe(R_EARLY.data_r2i)
    })
    test("early data refused: sent again as a DATA record as the session starts", async () => {
        await ds.sleep(0)
        const s0 = startResume(ctx(new ScriptedRandom([h(R_REFUSED.nonce_i)])), ticketOf(R_REFUSED), h(R_REFUSED.early_data))
        const s1 = onResumeResp(s0.next as AwaitResumeResp, frameOf(R_REFUSED.resume_resp).body)
        expect((s1.next as AwaitTicket).how.earlyAccepted).toBe(false)
        expect(s1.frames.length).toBe(1)
        expect(s1.frames[0].type).toBe(FrameType.RECORD)
        expect(s1.frames[0].body.length).toBe(1 + h(R_REFUSED.early_data).length + 16)
        expect((s1.next as AwaitTicket).session.send.n).toBe(1)
    })
    test("Idle -> AwaitHsResp -> AwaitTicket: HS_INIT and the session of the KK vector", async () => {
        const s0 = await startFull(ctx(new ScriptedRandom([])), undefined, false)
        expect(s0.next.phase).toBe(Phase.AwaitHsResp)
        expect(wire(s0.frames[0])).toBe(K.hs_init)
        const p = s0.next as AwaitHsResp
        const s1 = await onHsResp(p, frameOf(K.hs_resp).body)
        expect(s1.next.phase).toBe(Phase.AwaitTicket)
        expect(hex(p.pending.hs.getHandshakeHash())).toBe(K.handshake_hash)
        const s2 = onFirstRecord(s1.next as AwaitTicket, frameOf(K.record_ticket).body)
        expect(hex(s2.store.ticket)).toBe(K.ticket)
    })
})

describe("a failed message leaves the state unchanged", () => {
    test("a flipped byte in HS_RESP: same state, same handshake hash, close, nothing sent", async () => {
        const s0 = await startFull(ctx(new ScriptedRandom([])), undefined, true)
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
        expect((await onHsResp(p, frameOf(K.hs_resp).body)).next.phase).toBe(Phase.AwaitTicket)
    })
    test("a flipped byte in RESUME_RESP: same state, same hash, close", async () => {
        await ds.sleep(0)
        const s0 = startResume(ctx(new ScriptedRandom([h(R_EARLY.nonce_i)])), ticketOf(R_EARLY), h(R_EARLY.early_data))
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
        expect(onResumeResp(p, frameOf(R_EARLY.resume_resp).body).next.phase).toBe(Phase.AwaitTicket)
    })
    test("a flipped byte in the TICKET record: same state, nothing to store, close", async () => {
        const at = await resumed(R_EARLY)
        const s = onFirstRecord(at, flipped(R_EARLY.record_ticket, 5).body)
        expect(s.next === at).toBe(true)
        expect(at.phase).toBe(Phase.AwaitTicket)
        expect(s.store === undefined).toBe(true)
        expect(s.close).toBe(true)
        expect(s.delivered.length).toBe(0)
        expect(at.session.recv.n).toBe(0)
    })
    test("a DATA record where the TICKET must be: close, nothing delivered", async () => {
        const at = await resumed(R_EARLY)
        const s = onFirstRecord(at, forged(at, InnerType.DATA, Buffer.from("too soon")))
        expect(s.next === at).toBe(true)
        expect(s.close).toBe(true)
        expect(s.delivered.length).toBe(0)
        expect(s.store === undefined).toBe(true)
    })
})

describe("the Initiator's dispatch", () => {
    async function machine(v: any, mem: MemoryStorage): Promise<{ m: Initiator; store: TicketStore }> {
        const store = await TicketStore.open(mem)
        await store.save(ticketOf(v))
        const m = new Initiator(ctx(new ScriptedRandom([h(v.nonce_i)])), store)
        await m.start(h(v.early_data))
        return { m, store }
    }
    test("a frame of the wrong type closes in every handshake state; the ticket is kept", async () => {
        const { m, store } = await machine(R_EARLY, new MemoryStorage())
        const s = await m.receive(frameOf(K.hs_resp)) // HS_RESP for RESUME_RESP
        expect(s.close).toBe(true)
        expect(s.outcome).toBe(Outcome.Unexpected)
        expect(s.detail).toBe("tether: unexpected frame 2")
        expect(m.state.phase).toBe(Phase.Closed)
        expect(hex(store.current().ticket)).toBe(R_EARLY.ticket)
        // Closed accepts nothing
        expect((await m.receive(frameOf(R_EARLY.resume_resp))).close).toBe(true)
        const two = await machine(R_EARLY, new MemoryStorage())
        await two.m.receive(frameOf(R_EARLY.resume_resp))
        expect(two.m.state.phase).toBe(Phase.AwaitTicket)
        const t = await two.m.receive(frameOf(R_EARLY.resume_resp)) // RESUME_RESP for the TICKET
        expect(t.close).toBe(true)
        expect(two.m.state.phase).toBe(Phase.Closed)
        expect(hex(two.store.current().ticket)).toBe(R_EARLY.ticket)
    })
    test("REJECT(TICKET_REJECTED) -> HS_INIT; another REJECT ends with its code", async () => {
        const store = await TicketStore.open(new MemoryStorage())
        await store.save(ticketOf(R_EARLY))
        const m = new Initiator(ctx(new ScriptedRandom([h(R_EARLY.nonce_i)])), store)
        await m.start()
        const s = await m.receive({ type: FrameType.REJECT, body: Buffer.from([Code.TICKET_REJECTED]) })
        expect(s.outcome).toBe(Outcome.FellBack)
        expect(m.state.phase).toBe(Phase.AwaitHsResp)
        expect(wire(s.frames[0])).toBe(K.hs_init)
        expect(hex(store.current().ticket)).toBe(R_EARLY.ticket) // a REJECT deletes nothing
        const r = await m.receive({ type: FrameType.REJECT, body: Buffer.from([Code.BUSY]) })
        expect(r.outcome).toBe(Outcome.Rejected)
        expect(r.code).toBe(Code.BUSY)
        expect(m.state.phase).toBe(Phase.Closed)
    })
    test("the TICKET is in flash before Established; a failed write does not advance", async () => {
        const mem = new MemoryStorage()
        const { m, store } = await machine(R_EARLY, mem)
        await m.receive(frameOf(R_EARLY.resume_resp))
        const writes = mem.writes
        mem.tearNext = 10 // the power goes during the write
        let threw = false
        try {
            await m.receive(frameOf(R_EARLY.record_ticket))
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
        expect(mem.writes).toBe(writes + 1)
        expect(m.state.phase).toBe(Phase.AwaitTicket)
        expect(hex(store.current().ticket)).toBe(R_EARLY.ticket)
        // a second machine on the same flash: stored, then Established
        const again = await machine(R_EARLY, new MemoryStorage())
        await again.m.receive(frameOf(R_EARLY.resume_resp))
        await again.m.receive(frameOf(R_EARLY.record_ticket))
        expect(again.m.state.phase).toBe(Phase.Established)
        expect(hex(again.store.current().ticket)).toBe(R_EARLY.next_ticket)
    })
    test("Established: DATA, KEY_UPDATE, a later TICKET stored, CLOSE with its code", async () => {
        const { m, store } = await machine(R_EARLY, new MemoryStorage())
        await m.receive(frameOf(R_EARLY.resume_resp))
        await m.receive(frameOf(R_EARLY.record_ticket))
        const est = m.state as Established
        const d = await m.receive(frameOf(R_EARLY.record_data_r2i))
        expect(hex(d.delivered[0])).toBe(R_EARLY.data_r2i)
        const ku = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.KEY_UPDATE, EMPTY) })
        expect(ku.outcome).toBe(Outcome.KeyUpdate)
        expect(est.session.recv.n).toBe(0) // rekeyed
        const content = Buffer.concat(h(K.ticket), h(K.resumption_secret))
        const seq = store.seq()
        const t = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.TICKET, content) })
        expect(t.outcome).toBe(Outcome.Ticket)
        expect(t.delivered.length).toBe(0)
        expect(store.seq()).toBe(seq + 1)
        expect(hex(store.current().ticket)).toBe(K.ticket)
        const c = await m.receive({ type: FrameType.RECORD, body: forged(est, InnerType.CLOSE, Buffer.from([Code.IDLE])) })
        expect(c.outcome).toBe(Outcome.PeerClosed)
        expect(c.code).toBe(Code.IDLE)
        expect(c.close).toBe(true)
        expect(m.state.phase).toBe(Phase.Closed)
    })
    test("Established: a frame of the wrong type closes, the DATA after it is not released", async () => {
        const { m } = await machine(R_EARLY, new MemoryStorage())
        await m.receive(frameOf(R_EARLY.resume_resp))
        await m.receive(frameOf(R_EARLY.record_ticket))
        const est = m.state as Established
        const s = await m.receive(frameOf(R_EARLY.resume_resp))
        expect(s.close).toBe(true)
        expect(s.delivered.length).toBe(0)
        expect(est.session.dead).toBe(true)
        const d = await m.receive(frameOf(R_EARLY.record_data_r2i))
        expect(d.close).toBe(true)
        expect(d.delivered.length).toBe(0)
    })
})
