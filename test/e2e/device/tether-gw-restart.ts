// End to end, device side of the "gateway process restart" scenario of test/e2e/restart.test.ts:
// the device, deployed with what `tether-gateway pair` wrote (its settings file), connects
// the first time with the out-of-band ticket, stores the ticket the gateway issues, and asks
// the test to kill the gateway process (`E2E-STEP restart-gateway`). It then reconnects until
// the new gateway process answers: the ticket issued by the killed process resumes, with zero
// X25519 on the device.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { Connection } from "../../../src/tether/client"
import { makeClient, pairing, pass } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_PUB, TT_RSECRET, TT_SK, TT_TICKET } from "./env.generated"

describe("tether: gateway process restart", () => {
    test("out-of-band ticket, gateway killed and started again, the new ticket resumes", async () => {
        const tc = await makeClient(PORT, await pairing(TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_PUB), TT_TICKET, TT_RSECRET)
        tc.dh.reset()
        const c1 = await tc.client.connect()
        expect(c1.resumed).toBe(true)
        expect(tc.store.seq()).toBe(2)
        await c1.close()
        pass("first-connection-oob")

        console.log("E2E-STEP restart-gateway")
        await ds.sleep(500)
        let c2: Connection = undefined
        let attempts = 0
        const deadline = ds.millis() + 20000
        while (c2 === undefined && ds.millis() < deadline) {
            attempts++
            try {
                c2 = await tc.client.connect()
            } catch (e) {
                await ds.sleep(250) // the new gateway process is not listening yet
            }
        }
        console.log("reconnected after " + attempts + " attempts")
        expect(c2 === undefined).toBe(false)
        expect(c2.resumed).toBe(true)
        expect(c2.fellBack).toBe(false)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        expect(tc.store.seq()).toBe(3)
        await c2.close()
        pass("gateway-restart")
    })
})
