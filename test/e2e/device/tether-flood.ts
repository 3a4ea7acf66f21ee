// Device side of test/e2e/flood.test.ts: a device keeps its session, exchanges records and
// resumes, ROUNDS times, while the Node side floods the same gateway with garbage connections.
// It prints `E2E-STEP flood` once connected so the flood starts while its session is live.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { makeClient, pairing, pass, text } from "./tether-common"
import { DEV_ID, DEV_PRIV, DEV_PUB, GW_PUB, PORT, PSK, ROUNDS } from "./env.generated"

describe("tether under a garbage flood", () => {
    test("records and resumptions keep working", async () => {
        const p = await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB)
        const c = await makeClient(PORT, p)
        let conn = await c.client.connect()
        expect(conn.resumed).toBe(false)
        console.log("E2E-STEP flood")
        for (let r = 0; r < ROUNDS; r++) {
            for (let i = 0; i < 5; i++) {
                const m = "m" + r + "-" + i
                await conn.send(Buffer.from(m))
                expect(text(await conn.receive(10000))).toBe("ack:" + m)
            }
            await ds.sleep(700) // spread the rounds over the flood
            conn.drop() // the radio drops; the next connection resumes from the stored ticket
            c.dh.reset()
            conn = await c.client.connect()
            expect(conn.resumed).toBe(true)
            expect(c.dh.x + c.dh.base).toBe(0)
        }
        await conn.close()
        console.log("E2E-STEP done")
        pass("flood")
    })
})
