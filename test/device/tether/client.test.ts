// TetherClient.connect() and Connection over the in-memory transport, without a socket: the
// gateway's frames come from the generated vectors (fixed ephemerals and nonces, scripted
// randomness), queued on the gateway's end; the device's frames are read back from it and
// compared byte for byte, in order. Full handshake; resumption with early data accepted and
// refused; REJECT(TICKET_REJECTED) then HS_INIT on the same connection; corrupted HS_RESP,
// RESUME_RESP and TICKET record (the connection closed, the stored ticket kept); a frame of
// the wrong type; timeouts and a gateway that hangs up.
// @timeout 90000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { memoryPair, MemoryTransport } from "../../../src/net/memory-transport"
import { ConnectOptions } from "../../../src/net/transport"
import { Connection, CountingDh, RecvKind, RejectedError, TetherClient } from "../../../src/tether/client"
import { MemoryStorage, TicketStore } from "../../../src/tether/ticket-store"
import { Code, FrameType } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"
import { TETHER_RESUME } from "../vectors/tether-resume"
import { flipped, h, hex, pairingOf, play, ScriptedRandom, sent, ticketOf } from "./gateway-script"

const K = TETHER_KK[0]
const R_EARLY = TETHER_RESUME[0]
const R_REFUSED = TETHER_RESUME[2]

/** A client whose every connect() gets the device end of `pair`. */
class Rig {
    pair = memoryPair()
    opened: ConnectOptions[] = []
    dh = new CountingDh()
    random: ScriptedRandom
    store: TicketStore
    client: TetherClient
    /** the gateway's end of the current pair */
    gw(): MemoryTransport {
        return this.pair.gateway
    }
}

async function rig(randomBufs: Buffer[], stored?: any, timeoutMs?: number): Promise<Rig> {
    const r = new Rig()
    r.random = new ScriptedRandom(randomBufs)
    r.store = await TicketStore.open(new MemoryStorage())
    if (stored) await r.store.save(ticketOf(stored))
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
    test("full handshake: HS_INIT, HS_RESP, TICKET stored, records both ways", async () => {
        const r = await rig([h(K.device_ephemeral_private)])
        await r.client.prepare() // idle work: ss and the ephemeral
        r.dh.reset()
        const gw = r.gw()
        await play(gw, K.hs_resp)
        await play(gw, K.record_ticket)
        await play(gw, K.record_data_r2i)
        const c = await r.client.connect()
        expect(r.opened.length).toBe(1)
        expect(r.opened[0].host + ":" + r.opened[0].port + " " + r.opened[0].timeoutMs).toBe("gw.test:4242 2000")
        expect(r.pair.device.trace.join(" ")).toBe(">1 <2 <16")
        expect(await sent(gw)).toBe(K.hs_init)
        expect(r.dh.x + " " + r.dh.base).toBe("3 0") // es, ee, se
        expect(c.resumed || c.fellBack || c.earlyAccepted).toBe(false)
        expect(hex(r.store.current().ticket)).toBe(K.ticket)
        expect(hex(r.store.current().secret)).toBe(K.resumption_secret)
        await c.send(h(K.data_i2r))
        expect(await sent(gw)).toBe(K.record_data_i2r)
        expect(await text(c, 1000)).toBe(K.data_r2i)
        expect(await text(c, 20)).toBe("<timeout>")
        expect(c.isOpen()).toBe(true)
        await c.close()
        expect(r.pair.device.isClosed()).toBe(true)
        expect((await gw.recvFrame(0)).type).toBe(FrameType.RECORD) // CLOSE(NORMAL)
        expect((await gw.recvFrame(0)) === null).toBe(true)
    })
    test("resumption with early data accepted: no X25519, no DATA sent again", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        const gw = r.gw()
        await play(gw, R_EARLY.resume_resp)
        await play(gw, R_EARLY.record_ticket)
        await play(gw, R_EARLY.record_data_r2i)
        const c = await r.client.connect(h(R_EARLY.early_data))
        expect(r.pair.device.trace.join(" ")).toBe(">3 <4 <16")
        expect(await sent(gw)).toBe(R_EARLY.resume_init)
        expect(r.dh.x + r.dh.base).toBe(0)
        expect(c.resumed && c.earlyAccepted && !c.fellBack).toBe(true)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.next_ticket)
        await c.send(h(R_EARLY.data_i2r))
        expect(await sent(gw)).toBe(R_EARLY.record_data_i2r)
        expect(await text(c, 1000)).toBe(R_EARLY.data_r2i)
    })
    test("resumption with early data refused: the same data sent again as DATA, before the TICKET", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_REFUSED.nonce_i)], R_REFUSED)
        const gw = r.gw()
        await play(gw, R_REFUSED.resume_resp)
        await play(gw, R_REFUSED.record_ticket)
        const c = await r.client.connect(h(R_REFUSED.early_data))
        expect(r.pair.device.trace.join(" ")).toBe(">3 <4 >16 <16")
        expect(await sent(gw)).toBe(R_REFUSED.resume_init)
        expect(c.resumed && !c.earlyAccepted).toBe(true)
        const again = await gw.recvFrame(0)
        expect(again.type).toBe(FrameType.RECORD)
        expect(again.body.length).toBe(1 + h(R_REFUSED.early_data).length + 16)
    })
    test("REJECT(TICKET_REJECTED): HS_INIT on the same connection, early data sent again", async () => {
        const r = await rig([h(R_EARLY.nonce_i), h(K.device_ephemeral_private)], R_EARLY)
        const gw = r.gw()
        await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        await play(gw, K.hs_resp)
        await play(gw, K.record_ticket)
        const c = await r.client.connect(h(R_EARLY.early_data))
        expect(r.opened.length).toBe(1)
        expect(r.pair.device.trace.join(" ")).toBe(">3 <127 >1 <2 >16 <16")
        expect(await sent(gw)).toBe(R_EARLY.resume_init)
        expect(await sent(gw)).toBe(K.hs_init)
        expect((await gw.recvFrame(0)).body.length).toBe(1 + h(R_EARLY.early_data).length + 16)
        expect(c.fellBack && !c.resumed && !c.earlyAccepted).toBe(true)
        expect(hex(r.store.current().ticket)).toBe(K.ticket)
    })
})

describe("connect() refuses, closes and keeps the stored ticket", () => {
    test("a corrupted HS_RESP after the fallback; the next attempt takes a new ephemeral", async () => {
        const r = await rig(
            [h(R_EARLY.nonce_i), h(K.device_ephemeral_private), h(R_REFUSED.nonce_i), h(K.gateway_ephemeral_private)],
            R_EARLY
        )
        const gw = r.gw()
        await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        const bad = flipped(K.hs_resp, 40)
        await gw.sendFrame(bad.type, bad.body)
        expect(await refusal(r)).toBe("tether: bad HS_RESP")
        expect(r.pair.device.isClosed()).toBe(true)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
        // one ephemeral per attempt: the next full handshake asks for another one
        r.pair = memoryPair()
        await r.pair.gateway.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
        expect(await refusal(r)).toBe("tether: no answer from the gateway")
        expect(r.random.asked.join(",")).toBe("12,32,12,32")
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
    test("a corrupted TICKET record", async () => {
        await ds.sleep(0)
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(r.gw(), R_EARLY.resume_resp)
        const bad = flipped(R_EARLY.record_ticket, 30)
        await r.gw().sendFrame(bad.type, bad.body)
        expect(await refusal(r, h(R_EARLY.early_data))).toBe("tether: no TICKET after the handshake")
        expect(r.pair.device.isClosed()).toBe(true)
        expect(r.store.seq()).toBe(1)
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
    })
    test("another REJECT: RejectedError with its code", async () => {
        const r = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await r.gw().sendFrame(FrameType.REJECT, Buffer.from([Code.UNKNOWN_DEVICE]))
        expect(await refusal(r)).toBe("rejected 3: tether: rejected with code 3")
        expect(hex(r.store.current().ticket)).toBe(R_EARLY.ticket)
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
        const n = await rig([h(R_EARLY.nonce_i)], R_EARLY, 50)
        await play(n.gw(), R_EARLY.resume_resp)
        expect(await refusal(n, h(R_EARLY.early_data))).toBe("tether: no TICKET after the handshake")
        expect(n.store.seq()).toBe(1)
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
        const w = await rig([h(R_EARLY.nonce_i)], R_EARLY)
        await play(w.gw(), R_EARLY.resume_resp)
        w.gw().violate("FramedSocket: closed inside a frame")
        expect(await refusal(w, h(R_EARLY.early_data))).toBe("tether: no TICKET after the handshake")
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
