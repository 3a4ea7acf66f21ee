// End to end, device side of test/e2e/link.test.ts's failover: the device link (src/link.ts)
// paired with four endpoints (the settings as the gateway's deviceSettings() writes them,
// decoded by the device's own decodeSettings, PROTOCOL.md 6.8) against real gateway nodes
// that share the registry and the keys: the first endpoint refuses the connection, the
// second is a node that answers REJECT(BUSY), the third serves. The link comes up on the
// third, resuming with the out-of-band ticket, and stores the node's TICKET; that node then
// shuts down (CLOSE(SHUTDOWN)) and the link goes on to the fourth, resuming there with the
// third node's ticket, its STREAM as accepted 0-RTT data (a ticket of this boot).
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { startLink, Link } from "../../../src/link"
import { decodeSettings } from "../../../src/tether/pairing-settings"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { newestSlot, pass, waitFor } from "./tether-common"
import {
    TT_GW_HOST,
    TT_GW_HOST2,
    TT_GW_HOST3,
    TT_GW_HOST4,
    TT_GW_PK,
    TT_GW_PORT,
    TT_GW_PORT2,
    TT_GW_PORT3,
    TT_GW_PORT4,
    TT_ID,
    TT_PSK,
    TT_RSECRET,
    TT_SK,
    TT_TICKET,
} from "./env.generated"

const storage = new MemoryStorage()
let link: Link = undefined
/** "endpoint:port:resumed:early" of each session, in order */
const ups: string[] = []

describe("link failover", () => {
    test("past a refused endpoint and a BUSY node; CLOSE(SHUTDOWN): on to the next node with the ticket of the last", async () => {
        const settings = decodeSettings({
            TT_ID: TT_ID,
            TT_SK: TT_SK,
            TT_GW_PK: TT_GW_PK,
            TT_PSK: TT_PSK,
            TT_GW_HOST: TT_GW_HOST,
            TT_GW_PORT: TT_GW_PORT,
            TT_GW_HOST2: TT_GW_HOST2,
            TT_GW_PORT2: TT_GW_PORT2,
            TT_GW_HOST3: TT_GW_HOST3,
            TT_GW_PORT3: TT_GW_PORT3,
            TT_GW_HOST4: TT_GW_HOST4,
            TT_GW_PORT4: TT_GW_PORT4,
            TT_TICKET: TT_TICKET,
            TT_RSECRET: TT_RSECRET,
        })
        expect(settings.endpoints.length).toBe(4)
        link = await startLink({ settings, storage, backoffMinMs: 50, backoffMaxMs: 1000 })
        link.onState((state, s) => {
            if (state === "up") {
                ups.push(s.endpoint + ":" + s.port + ":" + (s.resumed ? 1 : 0) + ":" + (s.earlyAccepted ? 1 : 0))
                console.log(
                    "FAILOVER up endpoint=" + s.endpoint + " host=" + s.host + " port=" + s.port + " resumed=" + (s.resumed ? 1 : 0)
                )
            } else if (state === "down") console.log("FAILOVER down next=" + s.endpoint + " reason=" + (s.lastError || "none"))
        })
        // refused (endpoint 0), BUSY (1): up on 2, from the out-of-band ticket (age unknown: no 0-RTT)
        expect(await waitFor(() => ups.length === 1, 20000)).toBe(true)
        expect(ups[0]).toBe("2:" + TT_GW_PORT3 + ":1:0")
        expect(link.status().failures).toBe(0)
        expect(link.status().host).toBe(TT_GW_HOST3)
        // that node's TICKET (after the STREAM record, 6.3) in the store before it goes away
        expect(await waitFor(() => link.status().queued === 0, 10000)).toBe(true)
        const end = ds.millis() + 10000
        while ((await newestSlot(storage)).seq < 1 && ds.millis() < end) await ds.sleep(20)
        expect((await newestSlot(storage)).seq).toBe(1)
        expect(ups.length).toBe(1)
        link.publish("where", Buffer.from("third")) // the Node side shuts this node down on it
        // CLOSE(SHUTDOWN): the next endpoint, resumed with the shut-down node's ticket, 0-RTT
        expect(await waitFor(() => ups.length === 2, 20000)).toBe(true)
        expect(ups[1]).toBe("3:" + TT_GW_PORT4 + ":1:1")
        expect(link.status().sessions).toBe(2)
        link.publish("where", Buffer.from("fourth"))
        expect(await waitFor(() => link.status().queued === 0, 10000)).toBe(true)
        await link.stop()
        expect(ups.length).toBe(2)
        pass("failover")
    })
})
