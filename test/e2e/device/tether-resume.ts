// End to end, device side of test/e2e/resume.test.ts (the real gateway, through the test's
// recording proxy): full KK handshake, records both ways, the socket dropped, a resumption
// with 0-RTT data and zero X25519, data both ways; a first connection from an out-of-band
// ticket; an expired, a tampered and another gateway's ticket fall back to the full handshake
// on the same connection; a revoked device is refused; a connection torn after the gateway
// sent the TICKET (the proxy swallows it) and a power cut during the ticket write both leave
// the older ticket, which resumes with the early data sent again under 1-RTT keys. Prints
// `BENCH` lines with the device's handshake times in the simulator.
import { describe, test, expect } from "@devicescript/test"
import { RejectedError, TetherClient } from "../../../src/tether/client"
import { TicketStore } from "../../../src/tether/ticket-store"
import { Code } from "../../../src/tether/wire"
import { h, makeClient, pairing, pass, TestClient, text } from "./tether-common"
import {
    DEV_ID,
    DEV_PRIV,
    DEV_PUB,
    EXP_SECRET,
    EXP_TICKET,
    GW_PUB,
    OOB_DEV_ID,
    OOB_DEV_PRIV,
    OOB_DEV_PUB,
    OOB_PSK,
    OOB_SECRET,
    OOB_TICKET,
    OTHER_SECRET,
    OTHER_TICKET,
    PORT,
    PSK,
    REV_ID,
    REV_PRIV,
    REV_PSK,
    REV_PUB,
    REV_SECRET,
    REV_TICKET,
    TORN_ID,
    TORN_PRIV,
    TORN_PSK,
    TORN_PUB,
    TORN_SECRET,
    TORN_TICKET,
} from "./env.generated"

const hex = (b: Buffer) => b.toString("hex")

/** Device D, shared by the scenarios that need its full handshake. */
let d: TestClient

async function failsToConnect(c: TetherClient, early?: Buffer): Promise<boolean> {
    try {
        await c.connect(early)
    } catch (e) {
        console.log("connect failed as expected: " + (e as Error).message)
        return true
    }
    return false
}

/** Runs a fallback scenario: `t` stored as D's ticket, then connect with `early`. */
async function fallsBack(ticket: Buffer, secret: Buffer, early: string) {
    await d.store.save({ ticket, secret })
    const seq = d.store.seq()
    d.dh.reset()
    const c = await d.client.connect(Buffer.from(early))
    expect(c.fellBack).toBe(true)
    expect(c.resumed).toBe(false)
    expect(c.earlyAccepted).toBe(false)
    expect(d.dh.x).toBe(3) // the full handshake's critical path
    expect(d.store.seq()).toBe(seq + 1) // replaced only by the new ticket
    expect(text(await c.receive(10000))).toBe("ack:" + early)
    await c.close()
}

describe("tether resumption", () => {
    test("full handshake, records, drop, resume with 0-RTT", async () => {
        d = await makeClient(PORT, await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB))
        await d.client.prepare() // idle work: ss and the first ephemeral
        d.dh.reset()
        const c1 = await d.client.connect()
        expect(c1.resumed).toBe(false)
        expect(d.dh.x).toBe(3) // es, ee, se: the whole critical path
        // connect() returns without the next ephemeral: that is idle work for the caller
        expect(d.dh.base).toBe(0)
        expect(d.store.seq()).toBe(1) // the TICKET record went to flash
        await d.client.prepare() // what the link runs while idle after "up": one key pair
        expect(d.dh.base).toBe(1)
        await c1.send(Buffer.from("ping-1"))
        expect(text(await c1.receive(10000))).toBe("ack:ping-1")
        console.log("BENCH device_full_handshake_ms " + c1.handshakeMs)
        c1.drop()

        d.dh.reset()
        const c2 = await d.client.connect(Buffer.from("early-1"))
        expect(c2.resumed).toBe(true)
        expect(c2.earlyAccepted).toBe(true)
        expect(d.dh.x + d.dh.base).toBe(0) // no X25519 at all
        expect(d.store.seq()).toBe(2)
        expect(text(await c2.receive(10000))).toBe("ack:early-1")
        await c2.send(Buffer.from("ping-2"))
        expect(text(await c2.receive(10000))).toBe("ack:ping-2")
        console.log("BENCH device_resume_handshake_ms " + c2.handshakeMs)
        await c2.close()

        // and again from the newest ticket, without early data
        const c3 = await d.client.connect()
        expect(c3.resumed).toBe(true)
        expect(d.dh.x + d.dh.base).toBe(0)
        await c3.send(Buffer.from("ping-3"))
        expect(text(await c3.receive(10000))).toBe("ack:ping-3")
        await c3.close()
        pass("full-then-resume")
    })
    test("first connection from an out-of-band ticket", async () => {
        const tc = await makeClient(PORT, await pairing(OOB_DEV_ID, OOB_DEV_PRIV, GW_PUB, OOB_PSK, OOB_DEV_PUB), OOB_TICKET, OOB_SECRET)
        tc.dh.reset()
        const c = await tc.client.connect(Buffer.from("oob-early"))
        expect(c.resumed).toBe(true)
        expect(c.earlyAccepted).toBe(true)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        expect(tc.store.seq()).toBe(2)
        expect(text(await c.receive(10000))).toBe("ack:oob-early")
        await c.close()
        pass("oob-ticket")
    })
    test("expired ticket: TICKET_REJECTED, full handshake on the same connection", async () => {
        await fallsBack(h(EXP_TICKET), h(EXP_SECRET), "after-expiry")
        pass("expired-ticket")
    })
    test("tampered ticket (generation raised): TICKET_REJECTED, full handshake", async () => {
        const t = d.store.current()
        const ticket = t.ticket.slice(0)
        ticket[12] ^= 0x10 // the low byte of generation: a replayer's wish for "newer"
        await fallsBack(ticket, t.secret.slice(0), "after-tamper")
        pass("tampered-ticket")
    })
    test("a ticket from another gateway: TICKET_REJECTED, full handshake", async () => {
        await fallsBack(h(OTHER_TICKET), h(OTHER_SECRET), "after-other")
        pass("other-gateway-ticket")
    })
    test("revoked device: its ticket and then its full handshake are refused", async () => {
        const tc = await makeClient(PORT, await pairing(REV_ID, REV_PRIV, GW_PUB, REV_PSK, REV_PUB), REV_TICKET, REV_SECRET)
        let code = 0
        try {
            await tc.client.connect(Buffer.from("revoked-early"))
        } catch (e) {
            if (e instanceof RejectedError) code = (e as RejectedError).code
        }
        expect(code).toBe(Code.UNKNOWN_DEVICE)
        expect(tc.store.seq()).toBe(1) // a REJECT never deletes the ticket (9.5)
        expect(hex(tc.store.current().ticket)).toBe(REV_TICKET)
        // the next scenario connects at once: the gateway's close after this REJECT must not
        // reach the new connection (FramedSocket drains it, shipped bug (e))
        pass("revoked-device")
    })
    test("torn after the TICKET was sent, then a power cut in the ticket write", async () => {
        const tc = await makeClient(PORT, await pairing(TORN_ID, TORN_PRIV, GW_PUB, TORN_PSK, TORN_PUB), TORN_TICKET, TORN_SECRET)
        tc.dh.reset()
        // the proxy swallows this connection's TICKET record and cuts it
        expect(await failsToConnect(tc.client, Buffer.from("torn-1"))).toBe(true)
        expect(tc.store.seq()).toBe(1)
        expect(hex(tc.store.current().ticket)).toBe(TORN_TICKET)
        // the older ticket still resumes; its early data is not accepted again, so it goes
        // again as a DATA record under the 1-RTT keys
        const c = await tc.client.connect(Buffer.from("torn-2"))
        expect(c.resumed).toBe(true)
        expect(c.fellBack).toBe(false)
        expect(c.earlyAccepted).toBe(false)
        expect(text(await c.receive(10000))).toBe("ack:torn-2")
        expect(tc.store.seq()).toBe(2)
        await c.close()
        expect(tc.dh.x + tc.dh.base).toBe(0)
        pass("torn-connection")

        // power cut in the middle of writing the next ticket (MemoryStorage tears it)
        const kept = hex(tc.store.current().ticket)
        tc.mem.tearNext = 30
        expect(await failsToConnect(tc.client, Buffer.from("cut-1"))).toBe(true)
        // reboot: the slots are read again, the newest valid one wins
        const store = await TicketStore.open(tc.mem)
        expect(store.seq()).toBe(2)
        expect(hex(store.current().ticket)).toBe(kept)
        const p = await pairing(TORN_ID, TORN_PRIV, GW_PUB, TORN_PSK, TORN_PUB)
        const rebooted = new TetherClient({ pairing: p, store, host: "127.0.0.1", port: PORT, dh: tc.dh, timeoutMs: 15000 })
        const c2 = await rebooted.connect(Buffer.from("cut-2"))
        expect(c2.resumed).toBe(true)
        expect(c2.earlyAccepted).toBe(false)
        expect(text(await c2.receive(10000))).toBe("ack:cut-2")
        expect(store.seq()).toBe(3)
        await c2.close()
        expect(tc.dh.x + tc.dh.base).toBe(0)
        pass("power-cut-during-ticket-write")
    })
})
