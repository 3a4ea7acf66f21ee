// TetherClient.connect() and Connection over the in-memory transport, without a socket: the
// gateway's frames come from the generated vectors (fixed ephemerals and nonces, scripted
// randomness, the ticket's age set through the store's clock), queued on the gateway's end;
// the device's frames are read back from it and compared byte for byte, in order. Full
// handshake (2 X25519 after prepare(), the device's first record at once, the TICKET after
// it, stored in Established); resumption with early data accepted and refused;
// REJECT(TICKET_REJECTED) then HS_INIT on the same connection; corrupted HS_RESP,
// RESUME_RESP and TICKET record (the connection closed, the stored ticket kept); a frame of
// the wrong type; timeouts and a gateway that hangs up.
// @timeout 90000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { memoryPair, MemoryTransport } from "../../../src/net/memory-transport"
import { ConnectOptions } from "../../../src/net/transport"
import { Connection, CountingDh, RecvKind, RejectedError, TetherClient } from "../../../src/tether/client"
import { encodeSlot, MemoryStorage, SLOT_A, TicketStore } from "../../../src/tether/ticket-store"
import { Code, FrameType, RESUME_CAP } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"
import { TETHER_RESUME } from "../vectors/tether-resume"
import { flipped, h, hex, pairingOf, play, ScriptedRandom, sent, ticketOf } from "./gateway-script"

const K = TETHER_KK[0]
const R_EARLY = TETHER_RESUME[0]
const R_NONE = TETHER_RESUME[1]
const R_REFUSED = TETHER_RESUME[2]

/** A client whose every connect() gets the device end of `pair`. */
class Rig {
    pair = memoryPair()
    opened: ConnectOptions[] = []
    dh = new CountingDh()
    random: ScriptedRandom
    mem = new MemoryStorage()
    store: TicketStore
    client: TetherClient
    /** the store's clock */
    now = 1000
    /** the gateway's end of the current pair */
    gw(): MemoryTransport {
        return this.pair.gateway
    }
}

/**
 * A device.
 * @param stored a resume vector whose ticket is in flash: saved in this boot with the vector's
 *     age (`resumed` 0), or, with `resumed` given, read from flash at boot (age unknown)
 */
async function rig(randomBufs: Buffer[], stored?: any, timeoutMs?: number, resumed?: number): Promise<Rig> {
    const r = new Rig()
    r.random = new ScriptedRandom(randomBufs)
    if (stored && resumed !== undefined) await r.mem.write(SLOT_A, encodeSlot(1, ticketOf(stored, resumed)))
    r.store = await TicketStore.open(r.mem, undefined, () => r.now)
    if (stored && resumed === undefined) {
        await r.store.save(ticketOf(stored))
        r.now += stored.ticket_age
    }
    r.client = new TetherClient({
        pairing: pairingOf(K),
        store: r.store,
        host: "gw.test",
        port: 4242,
        dh: r.dh,
        random: r.random.source(),
        timeoutMs: timeoutMs === undefined ? 2000 : timeoutMs,
        connect: async (o: ConnectOptions) => {
            r.opened.push(o)
            return r.pair.device
        },
    })
    return r
}

/** connect()'s error message, or "" when it connected. */
async function refusal(r: Rig, early?: Buffer): Promise<string> {
    try {
        await r.client.connect(early)
    } catch (e) {
        return (e instanceof RejectedError ? "rejected " + (e as RejectedError).code + ": " : "") + (e as Error).message
    }
    return ""
}

async function text(c: Connection, ms: number): Promise<string> {
    const r = await c.receive(ms)
    if (r.kind === RecvKind.Data) return hex(r.data)
    return r.kind === RecvKind.Timeout ? "<timeout>" : "<closed " + r.code + ">"
}

describe("connect() over the memory transport", () => {
    test("full handshake: 2 X25519 after prepare(), HS_INIT, HS_RESP, the first record, then the TICKET", async () => {
        // a slot at the resumption cap holds the vector's pseudonym: the full handshake uses it
        const r = await rig([h(K.device_ephemeral_private)], R_NONE, undefined, RESUME_CAP)
        await r.client.prepare() // idle work: the public key is given; ss, the ephemeral and its es
        expect(r.dh.x + " " + r.dh.base).toBe("2 1")
        r.dh.reset()
        const gw = r.gw()
        await play(gw, K.hs_resp)
        const c = await r.client.connect(h(K.data_i2r))
        expect(r.dh.x + " " + r.dh.base).toBe("2 0") // ee, se: the critical path
        expect(r.opened.length).toBe(1)
        expect(r.opened[0].host + ":" + r.opened[0].port + " " + r.opened[0].timeoutMs).toBe("gw.test:4242 2000")
        expect(r.pair.device.trace.join(" ")).toBe(">1 <2 >16")
        expect(await sent(gw)).toBe(K.hs_init)
        expect(await sent(gw)).toBe(K.record_data_i2r) // the device's first record, at once
        expect(c.resumed || c.fellBack || c.earlyAccepted).toBe(false)
        expect(c.handshakeMs >= 0).toBe(true)
        // Established before any TICKET: flash still holds the old slot
        expect(r.store.seq()).toBe(1)
        await play(gw, K.record_ticket)
        await play(gw, K.record_data_r2i)
        expect(await text(c, 1000)).toBe(K.data_r2i) // the TICKET went to flash on the way
        expect(r.store.seq()).toBe(2)
        const t = r.store.current()
        expect(hex(t.ticket) + " " + hex(t.secret) + " " + hex(t.pseudonym) + " " + t.resumed).toBe(
            K.ticket + " " + K.resumption_secret + " " + K.next_pseudonym + " 0"
        )
        expect(await text(c, 20)).toBe("<timeout>")
        expect(c.isOpen()).toBe(true)
        await c.close()
        expect(r.pair.device.isClosed()).toBe(true)
        expect((await gw.recvFrame(0)).type).toBe(FrameType.RECORD) // CLOSE(NORMAL)
        expect((await gw.recvFrame(0)) === null).toBe(true)
    })
    test("resumption with early data accepted: no X25519, no DATA sent again, the TICKET at once", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        const gw = r.gw()
        await play(gw, R_EARLY.resume_resp)
        await play(gw, R_EARLY.record_ticket)
        await play(gw, R_EARLY.record_data_r2i)
        const c = await r.client.connect(h(R_EARLY.early_data))
        expect(r.pair.device.trace.join(" ")).toBe(">3 <4")
        expect(await sent(gw)).toBe(R_EARLY.resume_init)
        expect(r.dh.x + r.dh.base).toBe(0)
        expect(c.resumed && c.earlyAccepted && !c.fellBack).toBe(true)
        expect(r.random.asked.join(",")).toBe("8")
        await c.send(h(R_EARLY.data_i2r))
        expect(await sent(gw)).toBe(R_EARLY.record_data_i2r)
        expect(await text(c, 1000)).toBe(R_EARLY.data_r2i)
        expect(r.pair.device.trace.join(" ")).toBe(">3 <4 >16 <16 <16")
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.next_ticket)
        expect(hex(r.store.current().pseudonym)).toBe(R_EARLY.next_pseudonym)
        expect(r.store.current().resumed).toBe(1)
    })
    test("resumption with early data refused: the same data as the first record, byte for byte, then the TICKET", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_REFUSED.nonce_i)], R_REFUSED)
        const gw = r.gw()
        await play(gw, R_REFUSED.resume_resp)
        const c = await r.client.connect(h(R_REFUSED.early_data))
        expect(r.pair.device.trace.join(" ")).toBe(">3 <4 >16")
        expect(await sent(gw)).toBe(R_REFUSED.resume_init)
        expect(await sent(gw)).toBe(R_REFUSED.record_data_i2r)
        expect(c.resumed && !c.earlyAccepted).toBe(true)
        await play(gw, R_REFUSED.record_ticket)
        expect(await text(c, 50)).toBe("<timeout>")
        expect(hex(r.store.current().ticket)).toBe(R_REFUSED.next_ticket)
    })
    test("a ticket read from flash at boot (age unknown): 4 random bytes, the content as the first record", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_NONE.nonce_i), h(R_NONE.obfuscated_age)], R_NONE, undefined, 0)
        const gw = r.gw()
        await play(gw, R_NONE.resume_resp)
        const c = await r.client.connect(h(R_NONE.data_i2r))
        expect(r.random.asked.join(",")).toBe("8,4")
        expect(await sent(gw)).toBe(R_NONE.resume_init)
        expect(await sent(gw)).toBe(R_NONE.record_data_i2r)
        expect(c.resumed && !c.earlyAccepted).toBe(true)
    })
    test("REJECT(TICKET_REJECTED): HS_INIT on the same connection, the content as its first record", async () => {
        const r = await rig([h(R_EARLY.nonce_i), h(K.device_ephemeral_private)], R_EARLY)
        const gw = r.gw()
        await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        await play(gw, K.hs_resp)
        const c = await r.client.connect(h(K.data_i2r))
        expect(r.opened.length).toBe(1)
        expect(r.pair.device.trace.join(" ")).toBe(">3 <127 >1 <2 >16")
        expect((await sent(gw)).length > 0).toBe(true) // RESUME_INIT (with K.data_i2r as early data)
        expect(await sent(gw)).toBe(K.hs_init) // the stored pseudonym
        expect(await sent(gw)).toBe(K.record_data_i2r)
        expect(c.fellBack && !c.resumed && !c.earlyAccepted).toBe(true)
        expect(r.client.rejections).toBe(1)
        await play(gw, K.record_ticket)
        expect(await text(c, 50)).toBe("<timeout>")
        expect(hex(r.store.current().ticket)).toBe(K.ticket)
        expect(r.store.current().resumed).toBe(0)
    })
})

describe("connect() refuses, closes and keeps the stored ticket", () => {
    test("a corrupted HS_RESP after the fallback; the next attempt takes a new ephemeral", async () => {
        const r = await rig(
            [h(R_EARLY.nonce_i), h(K.device_ephemeral_private), h(R_REFUSED.nonce_i), h(K.gateway_ephemeral_private)],
            R_EARLY,
            4000
        )
        const gw = r.gw()
        await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        const bad = flipped(K.hs_resp, 40)
        await gw.sendFrame(bad.type, bad.body)
        expect(await refusal(r)).toBe("tether: bad HS_RESP")
        expect(r.pair.device.isClosed()).toBe(true)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
        // one ephemeral (and es) per attempt: the next full handshake asks for another one
        r.pair = memoryPair()
        await r.pair.gateway.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        expect(await refusal(r)).toBe("tether: no answer from the gateway")
        expect(r.random.asked.join(",")).toBe("8,32,8,32")
        expect(r.client.rejections).toBe(2)
    })
    test("a corrupted RESUME_RESP", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        const bad = flipped(R_EARLY.resume_resp, 20)
        await r.gw().sendFrame(bad.type, bad.body)
        await play(r.gw(), R_EARLY.record_ticket)
        expect(await refusal(r, h(R_EARLY.early_data))).toBe("tether: bad RESUME_RESP")
        expect(r.pair.device.isClosed()).toBe(true)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
    })
    test("a corrupted TICKET record: the connection ends, nothing released, the stored ticket kept", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(r.gw(), R_EARLY.resume_resp)
        const bad = flipped(R_EARLY.record_ticket, 30)
        await r.gw().sendFrame(bad.type, bad.body)
        await play(r.gw(), R_EARLY.record_data_r2i)
        const c = await r.client.connect(h(R_EARLY.early_data))
        expect(await text(c, 1000)).toBe("<closed 0>")
        expect(c.isOpen()).toBe(false)
        expect(r.pair.device.isClosed()).toBe(true)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
    })
    test("a TICKET that does not reach flash: receive() throws, the connection is closed, the old ticket stays", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(r.gw(), R_EARLY.resume_resp)
        await play(r.gw(), R_EARLY.record_ticket)
        const c = await r.client.connect(h(R_EARLY.early_data))
        r.mem.tearNext = 3
        let threw = false
        try {
            await c.receive(1000)
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
        expect(c.isOpen()).toBe(false)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
    })
    test("another REJECT: RejectedError with its code", async () => {
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await r.gw().sendFrame(FrameType.REJECT, Buffer.from([Code.UNKNOWN_DEVICE]))
        expect(await refusal(r)).toBe("rejected 3: tether: rejected with code 3")
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
        expect(r.client.rejections).toBe(0)
    })
    test("a frame of the wrong type for the state", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(r.gw(), K.hs_resp)
        expect(await refusal(r)).toBe("tether: unexpected frame 2")
        expect(r.pair.device.isClosed()).toBe(true)
        const f = await rig([h(K.device_ephemeral_private)])
        await play(f.gw(), R_EARLY.record_ticket)
        expect(await refusal(f)).toBe("tether: unexpected frame 16")
        expect(f.store.current() === undefined).toBe(true)
    })
    test("timeouts, a hang-up and a framing error at each step", async () => {
        await ds.sleep(0)
        const t = await rig([h(R_EARLY.nonce_i)], R_EARLY, 50)
        expect(await refusal(t)).toBe("tether: no answer from the gateway")
        const q = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        const gw = q.gw()
        const hangUp = async () => {
            await ds.sleep(30)
            gw.close()
        }
        hangUp.start()
        expect(await refusal(q)).toBe("tether: the gateway closed the connection")
        const v = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        v.gw().violate("FramedSocket: bad frame length 2000")
        expect(await refusal(v)).toBe("FramedSocket: bad frame length 2000")
        // after the session exists, a framing error ends the connection, not connect()
        const w = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(w.gw(), R_EARLY.resume_resp)
        w.gw().violate("FramedSocket: closed inside a frame")
        const c = await w.client.connect(h(R_EARLY.early_data))
        expect(await text(c, 1000)).toBe("<closed 0>")
        expect(w.store.seq()).toBe(1)
    })
})

describe("Connection.receive", () => {
    async function up(): Promise<{ r: Rig; c: Connection }> {
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(r.gw(), R_EARLY.resume_resp)
        await play(r.gw(), R_EARLY.record_ticket)
        return { r, c: await r.client.connect(h(R_EARLY.early_data)) }
    }
    test("a frame of the wrong type in a session: Closed, the DATA after it not released", async () => {
        const { r, c } = await up()
        await play(r.gw(), R_EARLY.resume_resp)
        await play(r.gw(), R_EARLY.record_data_r2i)
        expect(await text(c, 1000)).toBe("<closed 0>")
        expect(c.isOpen()).toBe(false)
        expect(await text(c, 1000)).toBe("<closed 0>")
        expect(r.pair.device.isClosed()).toBe(true)
    })
    test("a corrupted record: Closed; the gateway hanging up: Closed; a timeout: Timeout", async () => {
        await ds.sleep(0)
        const a = await up()
        const bad = flipped(R_EARLY.record_data_r2i, 3)
        await a.r.gw().sendFrame(bad.type, bad.body)
        expect((await a.c.receive(1000)).kind).toBe(RecvKind.Closed)
        const b = await up()
        expect((await b.c.receive(10)).kind).toBe(RecvKind.Timeout)
        await play(b.r.gw(), R_EARLY.record_data_r2i)
        const got = await b.c.receive(1000)
        expect(got.kind === RecvKind.Data ? hex(got.data) : "none").toBe(R_EARLY.data_r2i)
        b.r.gw().close()
        expect(await text(b.c, 1000)).toBe("<closed 0>")
    })
})
