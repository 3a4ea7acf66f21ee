// End to end, device side of test/e2e/attacks.test.ts (the real gateway, through the test's
// frame proxy, which tampers with, replaces, retypes or cuts frames). Before each scenario
// the device prints `E2E-STEP <name>` and waits a moment: the test switches the proxy's
// behaviour on that line. Each scenario uses its own paired device, so the gateway's log can
// be read per device. Every refused connection must fail with an error well before the
// client's own timeout (no hang), leave the ticket store as it was, and release nothing. An
// out-of-band ticket is in no flash slot (seq 0, PROTOCOL.md 6.8); the gateway's TICKET follows
// the device's first record (6.3).
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { Connection, RecvKind, RejectedError } from "../../../src/tether/client"
import { Code } from "../../../src/tether/wire"
import { has } from "./check"
import { makeClient, pairing, pass, TestClient, text } from "./tether-common"
import { GB, GW_PUB, HI, HR, OK, PORT, RI, RR, RT, TR, WT } from "./env.generated"

/** A refused connection must end this much sooner than the client's 15 s timeout. */
const NO_HANG_MS = 5000

const hex = (b: Buffer) => b.toString("hex")

/** Field 4 of a device spec: its out-of-band ticket (hex). */
function oobTicket(spec: string): string {
    return spec.split(":")[4]
}

/**
 * A client for a device given as "id:priv:pub:psk:ticket:secret" (hex), with an empty ticket
 * store, or with its out-of-band ticket stored when `oob`.
 */
async function client(spec: string, oob: boolean): Promise<TestClient> {
    const f = spec.split(":")
    const p = await pairing(f[0], f[1], GW_PUB, f[3], f[2])
    if (oob) return await makeClient(PORT, p, f[4], f[5])
    return await makeClient(PORT, p)
}

/** Tells the test which proxy behaviour the next connections get, and gives it time to switch. */
async function step(name: string) {
    console.log("E2E-STEP " + name)
    await ds.sleep(300)
}

interface Refusal {
    msg: string
    /** the REJECT code, 0 when the device refused the connection itself */
    code: number
}

/** Connects, expecting a failure soon; returns the error. */
async function fails(tc: TestClient, early?: Buffer): Promise<Refusal> {
    const t0 = ds.millis()
    let r: Refusal = { msg: "", code: 0 }
    try {
        const c = await tc.client.connect(early)
        await c.close()
    } catch (e) {
        r = { msg: (e as Error).message, code: e instanceof RejectedError ? (e as RejectedError).code : 0 }
    }
    const ms = ds.millis() - t0
    console.log("refused after " + ms + " ms: " + r.msg)
    expect(r.msg === "").toBe(false)
    expect(ms < NO_HANG_MS).toBe(true)
    return r
}

/** A record that must end the connection: receive gives Closed (no plaintext), soon. */
async function endsWithoutPlaintext(c: Connection) {
    const t0 = ds.millis()
    expect((await c.receive(10000)).kind).toBe(RecvKind.Closed)
    expect(ds.millis() - t0 < NO_HANG_MS).toBe(true)
    expect(c.isOpen()).toBe(false)
    expect(c.closeCode).toBe(0)
}

let hi: TestClient
let rr: TestClient

describe("tether attacks through the proxy", () => {
    test("tampered HS_INIT: HANDSHAKE_FAILED, nothing stored", async () => {
        hi = await client(HI, false)
        await step("hs-init-tamper")
        // a byte of e, then a byte of the payload's tag
        for (let i = 0; i < 2; i++) {
            const r = await fails(hi)
            expect(r.code).toBe(Code.HANDSHAKE_FAILED)
            expect(hi.store.current()).toBe(undefined)
        }
        pass("hs-init-tamper")
    })
    test("tampered HS_RESP: the device refuses it", async () => {
        const tc = await client(HR, false)
        await step("hs-resp-tamper")
        const r = await fails(tc)
        expect(r.code).toBe(0)
        has(r.msg, "bad HS_RESP")
        expect(tc.store.current()).toBe(undefined)
        pass("hs-resp-tamper")
    })
    test("tampered RESUME_INIT (ticket, then encrypted part): TICKET_REJECTED, full handshake", async () => {
        const tc = await client(RI, true)
        await step("resume-init-tamper")
        for (let i = 0; i < 2; i++) {
            const seq = tc.store.seq()
            const early = "ri-early-" + i
            const c = await tc.client.connect(Buffer.from(early))
            expect(c.fellBack).toBe(true)
            expect(c.resumed).toBe(false)
            expect(c.earlyAccepted).toBe(false)
            // the early data went again as the first record, which brought the TICKET
            expect(text(await c.receive(10000))).toBe("ack:" + early)
            expect(tc.store.seq()).toBe(seq + 1)
            await c.close()
        }
        pass("resume-init-tamper")
    })
    test("tampered RESUME_RESP: the device refuses it and keeps its ticket", async () => {
        rr = await client(RR, true)
        await step("resume-resp-tamper")
        const r = await fails(rr)
        expect(r.code).toBe(0)
        has(r.msg, "bad RESUME_RESP")
        expect(rr.store.seq()).toBe(0)
        expect(hex(rr.store.current().ticket)).toBe(oobTicket(RR))
        pass("resume-resp-tamper")
    })
    test("tampered TICKET record, DATA record down and up: the receiver closes", async () => {
        const tc = await client(RT, true)
        await step("ticket-tamper")
        // the session exists; its first record brings the (tampered) TICKET, which ends it
        const c0 = await tc.client.connect()
        expect(c0.resumed).toBe(true)
        await c0.send(Buffer.from("rt-ticket"))
        await endsWithoutPlaintext(c0)
        // the tampered ticket was not stored: still the out-of-band one
        expect(tc.store.seq()).toBe(0)
        expect(hex(tc.store.current().ticket)).toBe(oobTicket(RT))

        await step("data-tamper-down")
        const c = await tc.client.connect()
        expect(c.resumed).toBe(true)
        await c.send(Buffer.from("rt-down"))
        await endsWithoutPlaintext(c) // the tampered "ack:rt-down"

        await step("data-tamper-up")
        const c2 = await tc.client.connect()
        await c2.send(Buffer.from("rt-up-secret"))
        await endsWithoutPlaintext(c2) // the gateway closed without a word
        pass("record-tamper")
    })
    test("garbage instead of a frame: valid length, then oversized length", async () => {
        const tc = await client(GB, true)
        await step("garbage-valid-length")
        const r = await fails(tc)
        expect(r.code).toBe(0)
        has(r.msg, "bad RESUME_RESP")
        expect(tc.store.seq()).toBe(0)
        await step("garbage-oversized-length")
        const r2 = await fails(tc)
        expect(r2.code).toBe(0)
        has(r2.msg, "bad frame length")
        expect(tc.store.seq()).toBe(0)
        expect(hex(tc.store.current().ticket)).toBe(oobTicket(GB))
        pass("garbage")
    })
    test("a frame of the wrong type at each step", async () => {
        const full = await client(WT, false)
        const res = await client(WT, true)
        await step("record-for-hs-resp")
        has((await fails(full)).msg, "unexpected frame 16")
        expect(full.store.current()).toBe(undefined)

        await step("hs-resp-for-resume-resp")
        has((await fails(res)).msg, "unexpected frame 2")
        expect(res.store.seq()).toBe(0)

        await step("resume-resp-in-session")
        const c = await res.client.connect()
        expect(c.resumed).toBe(true)
        await c.send(Buffer.from("wt-ping"))
        await endsWithoutPlaintext(c) // "ack:wt-ping" arrived as a RESUME_RESP

        // the other way: the gateway refuses a RECORD for HS_INIT, and HS_INIT in a session
        await step("record-for-hs-init")
        expect((await fails(full)).code).toBe(Code.PROTOCOL_ERROR)
        expect(full.store.current()).toBe(undefined)

        await step("hs-init-in-session")
        const c2 = await res.client.connect()
        await c2.send(Buffer.from("wt-late"))
        await endsWithoutPlaintext(c2)
        pass("wrong-type")
    })
    test("a truncated HS_RESP: a clean error", async () => {
        const tc = await client(TR, false)
        await step("truncated-hs-resp")
        const r = await fails(tc)
        has(r.msg, "closed inside a frame")
        expect(tc.store.current()).toBe(undefined)
        pass("truncated")
    })
    test("after all that, the gateway serves a new device and the attacked ones", async () => {
        await step("clean")
        const tc = await client(OK, false)
        const c = await tc.client.connect()
        expect(c.resumed).toBe(false)
        await c.send(Buffer.from("ok-after"))
        expect(text(await c.receive(10000))).toBe("ack:ok-after")
        await c.close()
        // the device whose HS_INIT was tampered with: a full handshake
        const c2 = await hi.client.connect()
        expect(c2.resumed).toBe(false)
        await c2.send(Buffer.from("hi-after"))
        expect(text(await c2.receive(10000))).toBe("ack:hi-after")
        await c2.close()
        // the device whose RESUME_RESP was tampered with resumes with the ticket it kept
        const c3 = await rr.client.connect()
        expect(c3.resumed).toBe(true)
        await c3.send(Buffer.from("rr-after"))
        expect(text(await c3.receive(10000))).toBe("ack:rr-after")
        await c3.close()
        pass("still-serving")
    })
})
