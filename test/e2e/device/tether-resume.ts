// End to end, device side of test/e2e/resume.test.ts: full KK handshake, records both ways,
// the socket dropped, a resumption with 0-RTT data and zero X25519, data both ways; a first
// connection from an out-of-band ticket; an expired ticket falls back to the full handshake
// on the same connection. Prints
// `BENCH` lines with the device's handshake times in the simulator.
import { describe, test, expect } from "@devicescript/test"
import { makeClient, pairing, pass } from "./tether-common"
import {
    DEV_ID,
    DEV_PRIV,
    EXP_SECRET,
    EXP_TICKET,
    GW_PUB,
    OOB_DEV_ID,
    OOB_DEV_PRIV,
    OOB_PSK,
    OOB_SECRET,
    OOB_TICKET,
    PORT,
    PSK,
} from "./env.generated"

describe("tether", () => {
    test("full handshake, records, drop, resume with 0-RTT", async () => {
        const tc = await makeClient(PORT, await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK))
        await tc.client.prepare() // idle work: ss and the first ephemeral
        tc.dh.reset()
        const c1 = await tc.client.connect()
        expect(c1.resumed).toBe(false)
        expect(tc.dh.x).toBe(3) // es, ee, se: the whole critical path
        expect(tc.dh.base).toBe(1) // the next ephemeral, after the handshake
        expect(tc.store.seq()).toBe(1) // the TICKET record went to flash
        await c1.send(Buffer.from("ping-1"))
        expect((await c1.recv(10000)).toString()).toBe("ack:ping-1")
        console.log("BENCH device_full_handshake_ms " + c1.handshakeMs)
        c1.drop()

        tc.dh.reset()
        const c2 = await tc.client.connect(Buffer.from("early-1"))
        expect(c2.resumed).toBe(true)
        expect(c2.earlyAccepted).toBe(true)
        expect(tc.dh.x + tc.dh.base).toBe(0) // no X25519 at all
        expect(tc.store.seq()).toBe(2)
        expect((await c2.recv(10000)).toString()).toBe("ack:early-1")
        await c2.send(Buffer.from("ping-2"))
        expect((await c2.recv(10000)).toString()).toBe("ack:ping-2")
        console.log("BENCH device_resume_handshake_ms " + c2.handshakeMs)
        await c2.close()

        // and again from the newest ticket, without early data
        const c3 = await tc.client.connect()
        expect(c3.resumed).toBe(true)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        await c3.send(Buffer.from("ping-3"))
        expect((await c3.recv(10000)).toString()).toBe("ack:ping-3")
        await c3.close()
        pass("full-then-resume")
    })
    test("first connection from an out-of-band ticket", async () => {
        const tc = await makeClient(PORT, await pairing(OOB_DEV_ID, OOB_DEV_PRIV, GW_PUB, OOB_PSK), OOB_TICKET, OOB_SECRET)
        tc.dh.reset()
        const c = await tc.client.connect(Buffer.from("oob-early"))
        expect(c.resumed).toBe(true)
        expect(c.earlyAccepted).toBe(true)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        expect(tc.store.seq()).toBe(2)
        expect((await c.recv(10000)).toString()).toBe("ack:oob-early")
        await c.close()
        pass("oob-ticket")
    })
    test("expired ticket: TICKET_REJECTED, full handshake on the same connection", async () => {
        const tc = await makeClient(PORT, await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK), EXP_TICKET, EXP_SECRET)
        const c = await tc.client.connect(Buffer.from("after-expiry"))
        expect(c.fellBack).toBe(true)
        expect(c.resumed).toBe(false)
        expect(c.earlyAccepted).toBe(false)
        expect(tc.store.seq()).toBe(2) // the old ticket was replaced only by the new one
        expect((await c.recv(10000)).toString()).toBe("ack:after-expiry")
        await c.close()
        pass("expired-ticket")
    })
})
