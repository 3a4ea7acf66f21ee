// End to end, device side of test/e2e/resume.test.ts (the real gateway, through the test's
// recording proxy), version 2:
//
// - full KK handshake (2 X25519 on the critical path, es prepared while idle, PROTOCOL.md
//   4.3), its TICKET only after the device's first record (6.3), the socket dropped; a
//   resumption with 0-RTT data (the ticket was received in this boot, so its age is known,
//   6.2) and zero X25519, its TICKET right after RESUME_RESP; data both ways;
// - a first connection from an out-of-band ticket: its age is unknown, so no early data (6.2,
//   6.7): the content goes as the first DATA record, which brings the first TICKET (seq 1);
// - an expired, a tampered and another gateway's ticket fall back to the full handshake on the
//   same connection (each time after a successful resumption, which resets the fallback cap's
//   count, 6.9), the early data sent again as the session's first record;
// - a revoked device is refused (TICKET_REJECTED, then UNKNOWN_DEVICE to pseudonym0);
// - a 0-RTT connection torn after the gateway sent the TICKET (the proxy swallows it): the
//   older ticket resumes, its early data refused as an older generation (6.4) and sent again
//   under 1-RTT keys; a power cut during the ticket write leaves the older slot, which
//   resumes after the reboot without early data (the age died with the RAM, 6.2).
//
// Prints `BENCH` lines with the device's handshake times in the simulator.
import { describe, test, expect } from "@devicescript/test"
import { RecvKind, RejectedError, TetherClient } from "../../../src/tether/client"
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

/**
 * Runs a fallback scenario: `ticket` stored as D's newest ticket (with D's pseudonym and
 * count), then connect with `early`: TICKET_REJECTED, the full handshake on the same
 * connection, `early` as its first record (which brings the new TICKET). Then the new ticket
 * resumes with 0-RTT `early + "-0rtt"`: a successful resumption, which resets the fallback
 * cap's count (PROTOCOL.md 6.9), so the next scenario falls back again.
 */
async function fallsBack(ticket: Buffer, secret: Buffer, early: string) {
    const cur = d.store.current()
    await d.store.save({ ticket, secret, pseudonym: cur.pseudonym, resumed: cur.resumed })
    const seq = d.store.seq()
    expect(d.client.rejections).toBe(0)
    await d.client.prepare() // idle work: the ephemeral and its es for the next full handshake
    d.dh.reset()
    const c = await d.client.connect(Buffer.from(early))
    expect(c.fellBack).toBe(true)
    expect(c.resumed).toBe(false)
    expect(c.earlyAccepted).toBe(false)
    expect(d.dh.x).toBe(2) // ee, se: the full handshake's critical path (4.3)
    expect(d.dh.base).toBe(0)
    expect(d.client.rejections).toBe(1) // a full handshake does not reset it (6.9)
    expect(d.store.seq()).toBe(seq) // a REJECT never replaces the ticket (9.5), and no TICKET yet
    expect(text(await c.receive(10000))).toBe("ack:" + early)
    expect(d.store.seq()).toBe(seq + 1) // the TICKET followed the first record
    expect(d.store.current().resumed).toBe(0)
    await c.close()

    d.dh.reset()
    const r = await d.client.connect(Buffer.from(early + "-0rtt"))
    expect(r.resumed).toBe(true)
    expect(r.earlyAccepted).toBe(true)
    expect(d.dh.x + d.dh.base).toBe(0)
    expect(d.client.rejections).toBe(0)
    expect(text(await r.receive(10000))).toBe("ack:" + early + "-0rtt")
    expect(d.store.seq()).toBe(seq + 2)
    await r.close()
}

describe("tether resumption", () => {
    test("full handshake, records, drop, resume with 0-RTT", async () => {
        d = await makeClient(PORT, await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB))
        await d.client.prepare() // idle work: ss, the first ephemeral and its es
        d.dh.reset()
        const c1 = await d.client.connect()
        expect(c1.resumed).toBe(false)
        expect(d.dh.x).toBe(2) // ee, se: the whole critical path (es was prepared, 4.3)
        // connect() returns without the next ephemeral: that is idle work for the caller
        expect(d.dh.base).toBe(0)
        expect(d.store.seq()).toBe(0) // the TICKET follows the device's first record (6.3)
        await c1.send(Buffer.from("ping-1"))
        expect(text(await c1.receive(10000))).toBe("ack:ping-1")
        expect(d.store.seq()).toBe(1) // the TICKET record went to flash
        expect(d.store.current().resumed).toBe(0)
        await d.client.prepare() // what the link runs while idle after "up": one key pair and its es
        expect(d.dh.base).toBe(1)
        expect(d.dh.x).toBe(3)
        console.log("BENCH device_full_handshake_ms " + c1.handshakeMs)
        c1.drop()

        d.dh.reset()
        const c2 = await d.client.connect(Buffer.from("early-1"))
        expect(c2.resumed).toBe(true)
        expect(c2.earlyAccepted).toBe(true) // a ticket of this boot: its age is known (6.2)
        expect(d.dh.x + d.dh.base).toBe(0) // no X25519 at all
        expect(text(await c2.receive(10000))).toBe("ack:early-1")
        expect(d.store.seq()).toBe(2) // the TICKET came right after RESUME_RESP (6.3)
        expect(d.store.current().resumed).toBe(1)
        await c2.send(Buffer.from("ping-2"))
        expect(text(await c2.receive(10000))).toBe("ack:ping-2")
        console.log("BENCH device_resume_handshake_ms " + c2.handshakeMs)
        await c2.close()

        // and again from the newest ticket, without early data
        const c3 = await d.client.connect()
        expect(c3.resumed).toBe(true)
        expect(c3.earlyAccepted).toBe(false)
        expect(d.dh.x + d.dh.base).toBe(0)
        await c3.send(Buffer.from("ping-3"))
        expect(text(await c3.receive(10000))).toBe("ack:ping-3")
        expect(d.store.seq()).toBe(3)
        expect(d.store.current().resumed).toBe(2)
        await c3.close()
        pass("full-then-resume")
    })
    test("first connection from an out-of-band ticket", async () => {
        const tc = await makeClient(PORT, await pairing(OOB_DEV_ID, OOB_DEV_PRIV, GW_PUB, OOB_PSK, OOB_DEV_PUB), OOB_TICKET, OOB_SECRET)
        expect(tc.store.seq()).toBe(0) // the out-of-band ticket is in no slot (6.8)
        expect(tc.store.ageMs()).toBe(undefined)
        tc.dh.reset()
        const c = await tc.client.connect(Buffer.from("oob-early"))
        expect(c.resumed).toBe(true)
        // its age is unknown: no early data (6.2, 6.7); "oob-early" went as the first record
        expect(c.earlyAccepted).toBe(false)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        expect(text(await c.receive(10000))).toBe("ack:oob-early")
        expect(tc.store.seq()).toBe(1)
        expect(tc.store.current().resumed).toBe(1) // the out-of-band ticket counts 0 (6.6)
        await c.close()
        pass("oob-ticket")
    })
    test("expired ticket: TICKET_REJECTED, full handshake on the same connection", async () => {
        await fallsBack(h(EXP_TICKET), h(EXP_SECRET), "after-expiry")
        pass("expired-ticket")
    })
    test("tampered ticket (a bit of its sealed fields): TICKET_REJECTED, full handshake", async () => {
        const t = d.store.current()
        const ticket = t.ticket.slice(0)
        // version 2 seals the fields (6.1): a replayer cannot even aim at the generation; any
        // flipped bit of the sealed block scrambles all of them, and the MAC fails
        ticket[12] ^= 0x10
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
        expect(tc.store.seq()).toBe(0) // a REJECT never deletes the ticket (9.5)
        expect(hex(tc.store.current().ticket)).toBe(REV_TICKET)
        // the next scenario connects at once: the gateway's close after this REJECT must not
        // reach the new connection (FramedSocket drains it, shipped bug (e))
        pass("revoked-device")
    })
    test("torn after the TICKET was sent, then a power cut in the ticket write", async () => {
        const tc = await makeClient(PORT, await pairing(TORN_ID, TORN_PRIV, GW_PUB, TORN_PSK, TORN_PUB), TORN_TICKET, TORN_SECRET)
        tc.dh.reset()
        // first a ticket of this boot (the out-of-band one has no known age, so no 0-RTT)
        const c0 = await tc.client.connect(Buffer.from("torn-0"))
        expect(c0.resumed).toBe(true)
        expect(c0.earlyAccepted).toBe(false)
        expect(text(await c0.receive(10000))).toBe("ack:torn-0")
        expect(tc.store.seq()).toBe(1)
        await c0.close()
        const kept0 = hex(tc.store.current().ticket)

        // 0-RTT accepted; the proxy swallows the TICKET that follows RESUME_RESP and cuts
        const c1 = await tc.client.connect(Buffer.from("torn-1"))
        expect(c1.resumed).toBe(true)
        expect(c1.earlyAccepted).toBe(true)
        expect((await c1.receive(10000)).kind).toBe(RecvKind.Closed)
        expect(tc.store.seq()).toBe(1)
        expect(hex(tc.store.current().ticket)).toBe(kept0)
        // the older ticket still resumes; its generation was accepted on the torn connection,
        // so its early data is refused (6.4) and goes again as a DATA record under 1-RTT keys
        const c = await tc.client.connect(Buffer.from("torn-2"))
        expect(c.resumed).toBe(true)
        expect(c.fellBack).toBe(false)
        expect(c.earlyAccepted).toBe(false)
        expect(text(await c.receive(10000))).toBe("ack:torn-2")
        expect(tc.store.seq()).toBe(2)
        await c.close()
        expect(tc.dh.x + tc.dh.base).toBe(0)
        pass("torn-connection")

        // power cut in the middle of writing the next ticket (MemoryStorage tears it): the
        // TICKET follows RESUME_RESP at once (0-RTT accepted) and is stored in receive()
        const kept = hex(tc.store.current().ticket)
        tc.mem.tearNext = 30
        const c2 = await tc.client.connect(Buffer.from("cut-1"))
        expect(c2.earlyAccepted).toBe(true)
        let cut = false
        try {
            await c2.receive(10000)
        } catch (e) {
            console.log("receive failed as expected: " + (e as Error).message)
            cut = true
        }
        expect(cut).toBe(true)
        expect(c2.isOpen()).toBe(false)
        // reboot: the slots are read again, the newest valid one wins
        const store = await TicketStore.open(tc.mem)
        expect(store.seq()).toBe(2)
        expect(hex(store.current().ticket)).toBe(kept)
        expect(store.ageMs()).toBe(undefined) // the receipt time was in RAM (6.2)
        const p = await pairing(TORN_ID, TORN_PRIV, GW_PUB, TORN_PSK, TORN_PUB)
        const rebooted = new TetherClient({ pairing: p, store, host: "127.0.0.1", port: PORT, dh: tc.dh, timeoutMs: 15000 })
        const c3 = await rebooted.connect(Buffer.from("cut-2"))
        expect(c3.resumed).toBe(true)
        // no early data after a restart (6.2): "cut-2" is the first record
        expect(c3.earlyAccepted).toBe(false)
        expect(text(await c3.receive(10000))).toBe("ack:cut-2")
        expect(store.seq()).toBe(3)
        await c3.close()
        expect(tc.dh.x + tc.dh.base).toBe(0)
        pass("power-cut-during-ticket-write")
    })
})
