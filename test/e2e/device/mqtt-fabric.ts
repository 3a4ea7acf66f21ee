// End to end, device side of test/e2e/mqtt-device.test.ts: the device link (src/link.ts, the
// firmware's own link) in the simulator against the real `tether-gateway serve --mqtt`, through
// a TCP relay the Node side controls, with an aedes broker and an MQTT subscriber there.
//
// 1. volume: N_VOLUME PUBLISHes "v-1".. on topic "v", one at a time (each waits for the
//    gateway's ACK, so that a record carries one new message and a gateway crash can cause at
//    most one duplicate at the broker), each announced as "SENT v-<i>": the Node side cuts the
//    relay at every tenth and SIGKILLs the gateway once;
// 2. commands: "E2E-STEP offline": the Node side takes the device off the network, publishes
//    N_CMD commands "c-1".. on tether/<device>/cmd/c, and lets the device back once the gateway
//    queued them all: they must arrive here in order, each once ("CMD c-<i>");
// 3. outage: "E2E-STEP outage": N_OUTAGE PUBLISHes "o-1".. on topic "o", one every 100 ms
//    (waiting when the link's queue is full) while the Node side stops the broker for 10 s;
//    then until the gateway acknowledged every one.
// @timeout 300000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { startLink, Link, QueueFullError } from "../../../src/link"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { linkSettings, pass, waitFor } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_RSECRET, TT_SK, TT_TICKET, N_VOLUME, N_CMD, N_OUTAGE } from "./env.generated"

const settings = linkSettings(PORT, TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_TICKET, TT_RSECRET)
const storage = new MemoryStorage()
let link: Link = undefined
let cmds = 0
let cmdErrors = 0

/** Publishes, waiting while the link's queue is full. */
async function publish(topic: string, text: string): Promise<void> {
    for (;;) {
        try {
            link.publish(topic, Buffer.from(text))
            return
        } catch (e) {
            if (!(e instanceof QueueFullError)) throw e
            await ds.sleep(50)
        }
    }
}

describe("mqtt fabric", () => {
    test("volume: one message at a time through dropped connections and a gateway crash", async () => {
        link = await startLink({ settings, storage, backoffMinMs: 50, backoffMaxMs: 500 })
        link.onMessage((topic, payload) => {
            if (topic !== "c") return
            const text = payload.toString()
            cmds++
            if (text !== "c-" + cmds) cmdErrors++
            console.log("CMD " + text)
        })
        for (let i = 1; i <= N_VOLUME; i++) {
            await publish("v", "v-" + i)
            console.log("SENT v-" + i)
            expect(await waitFor(() => link.status().queued === 0, 60000)).toBe(true)
        }
        console.log("VOLUME sessions=" + link.status().sessions)
        pass("volume")
    })
    test("commands published while the device is offline", async () => {
        console.log("E2E-STEP offline")
        const ok = await waitFor(() => cmds >= N_CMD, 120000)
        await ds.sleep(2000) // a duplicate would come right behind
        console.log("COMMANDS got=" + cmds + " orderErrors=" + cmdErrors)
        expect(ok).toBe(true)
        expect(cmds).toBe(N_CMD)
        expect(cmdErrors).toBe(0)
        pass("commands")
    })
    test("the broker away for 10 s during a stream", async () => {
        console.log("E2E-STEP outage")
        const t0 = ds.millis()
        for (let i = 1; i <= N_OUTAGE; i++) {
            await publish("o", "o-" + i)
            await ds.sleep(100)
        }
        const ok = await waitFor(() => link.status().queued === 0, 120000)
        console.log("OUTAGE sent=" + N_OUTAGE + " ms=" + (ds.millis() - t0) + " sessions=" + link.status().sessions)
        expect(ok).toBe(true)
        await link.stop()
        pass("outage")
    })
})
