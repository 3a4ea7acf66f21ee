// Device side of test/e2e/inject.test.ts: ten connections of one device whose every
// resumption an on-path attacker turns into REJECT(TICKET_REJECTED) (the test's proxy spoils
// RESUME_INIT, so the gateway's own answer is that REJECT). PROTOCOL.md 6.9's fallback cap: the
// device falls back to the full handshake on the r-th rejection only if r <= 2 or r % 8 == 0,
// so 3 of the 10 connections are full handshakes (version 1: all 10). It prints one
// `INJECT r=<n> full=<0|1> x25519=<n>` line per connection, the X25519 inside connect() only.
import { describe, test, expect } from "@devicescript/test"
import { RejectedError } from "../../../src/tether/client"
import { Code } from "../../../src/tether/wire"
import { makeClient, pairing, pass, text } from "./tether-common"
import { DEV_ID, DEV_PRIV, DEV_PUB, GW_PUB, PORT, PSK, SECRET, TICKET } from "./env.generated"

describe("an injected TICKET_REJECTED on every connection", () => {
    test("the device falls back on 3 of 10 connections, keeps its ticket otherwise", async () => {
        const p = await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB)
        const tc = await makeClient(PORT, p, TICKET, SECRET)
        let fullHandshakes = 0
        let critical = 0
        for (let r = 1; r <= 10; r++) {
            await tc.client.prepare() // idle work between connections, off the critical path
            tc.dh.reset()
            const before = tc.store.current().ticket.toString("hex")
            let full = 0
            try {
                const c = await tc.client.connect()
                expect(c.fellBack).toBe(true)
                full = 1
                await c.send(Buffer.from("inject-" + r)) // brings the TICKET
                expect(text(await c.receive(10000))).toBe("ack:inject-" + r)
                await c.close()
            } catch (e) {
                // past the cap: the connection ends with the REJECT, the ticket kept (9.5)
                expect(e instanceof RejectedError).toBe(true)
                expect((e as RejectedError).code).toBe(Code.TICKET_REJECTED)
                expect(tc.store.current().ticket.toString("hex")).toBe(before)
            }
            const x = tc.dh.x + tc.dh.base
            console.log("INJECT r=" + r + " full=" + full + " x25519=" + x)
            expect(x).toBe(full === 1 ? 2 : 0)
            fullHandshakes += full
            critical += x
        }
        expect(fullHandshakes).toBe(3)
        expect(critical).toBe(6)
        pass("inject")
    })
})
