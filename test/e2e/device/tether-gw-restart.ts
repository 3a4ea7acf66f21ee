// End to end, device side of the "gateway process restart" scenario of test/e2e/restart.test.ts:
// the device, deployed with what `tether-gateway pair` wrote (its settings file), connects
// the first time with the out-of-band ticket (no early data: its age is unknown, PROTOCOL.md
// 6.2, 6.7), sends its STREAM as the first record (12.1), which brings the gateway's STREAM and
// the TICKET (6.3), stores the ticket, and asks the test to kill the gateway process
// (`E2E-STEP restart-gateway`). It then reconnects until the new gateway process answers: the
// ticket issued by the killed process resumes, with zero X25519 on the device and its STREAM
// as 0-RTT data (a ticket of this boot: its age is known), accepted by the new process.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { AppKind, decodeData, encodeStream } from "../../../src/app/codec"
import { Connection, RecvKind, RejectedError } from "../../../src/tether/client"
import { makeClient, pairing, pass } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_PUB, TT_RSECRET, TT_SK, TT_TICKET } from "./env.generated"

/** The device's stream id (PROTOCOL.md 12.1: random, non-zero; fixed here). */
const STREAM_ID = 0x5ea1ed01

/** The gateway's STREAM, its first message on the session (12.1); its stream id. */
async function gatewayStream(c: Connection): Promise<number> {
    const r = await c.receive(10000)
    expect(r.kind).toBe(RecvKind.Data)
    if (r.kind !== RecvKind.Data) return 0
    const m = decodeData(r.data)[0]
    expect(m.kind).toBe(AppKind.STREAM)
    expect(m.peerStreamId).toBe(STREAM_ID) // the answer to this device's STREAM
    return m.streamId
}

describe("tether: gateway process restart", () => {
    test("out-of-band ticket, gateway killed and started again, the new ticket resumes", async () => {
        const tc = await makeClient(PORT, await pairing(TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_PUB), TT_TICKET, TT_RSECRET)
        tc.dh.reset()
        const c1 = await tc.client.connect(encodeStream(STREAM_ID, 0, 0))
        expect(c1.resumed).toBe(true)
        expect(c1.earlyAccepted).toBe(false) // the out-of-band ticket's age is unknown (6.2)
        const gwStream = await gatewayStream(c1)
        // the TICKET came before the gateway's STREAM, after the device's first record
        expect(tc.store.seq()).toBe(1)
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
                c2 = await tc.client.connect(encodeStream(STREAM_ID, gwStream, 0))
            } catch (e) {
                // the new gateway process is not listening yet; an answer that refuses is a failure
                if (e instanceof RejectedError) throw e
                console.log("attempt " + attempts + ": " + (e as Error).message)
                await ds.sleep(250)
            }
        }
        console.log("reconnected after " + attempts + " attempts")
        expect(c2 === undefined).toBe(false)
        expect(c2.resumed).toBe(true)
        expect(c2.fellBack).toBe(false)
        // a ticket received in this boot: its age is known, so the STREAM rode as 0-RTT data,
        // and the new process accepted it (its generation is newer in the SQLite registry)
        expect(c2.earlyAccepted).toBe(true)
        expect(tc.dh.x + tc.dh.base).toBe(0)
        expect(tc.client.rejections).toBe(0)
        await gatewayStream(c2)
        expect(tc.store.seq()).toBe(2)
        await c2.close()
        pass("gateway-restart")
    })
})
