// End to end, device side of the restart case in test/e2e/link.test.ts: the device program
// restarts mid-stream. In test mode a restart is simulated in the same program: the link is
// stopped and a fresh one started with fresh application state (a new AppLayer: both
// streams' RAM state is gone) and the same ticket store, as after ds.restart() with tickets
// in flash.
//
// Version 2 (PROTOCOL.md 6.2): neither boot's first connection carries early data, boot 1's
// because the out-of-band ticket's age is unknown, boot 2's because the ticket's receipt time
// was in RAM; both send their STREAM as the first record, which brings the TICKET (6.3).
//
// Boot 1 publishes a-1..a-5 and waits for their ACKs; the gateway sends g-1..g-7; the
// device restarts as soon as it has handled g-7, and the gateway queues g-8..g-10 once boot 1's
// session is gone.
// Boot 2 publishes b-1..b-5 and receives the gateway's unacknowledged messages, renumbered
// in a new stream (PROTOCOL.md 12.1), then g-11..g-20. Each delivery is printed as
// "GOT <boot> <payload>"; the Node side checks that nothing the gateway saw acknowledged is
// delivered again and nothing is lost.
// @timeout 60000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { startLink, Link } from "../../../src/link"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { linkSettings, newestSlot, pass, waitFor } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_RSECRET, TT_SK, TT_TICKET, N_DOWN_TOTAL } from "./env.generated"

const settings = linkSettings(PORT, TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_TICKET, TT_RSECRET)

/** The ticket store survives the restart (flash); everything else is new. */
const storage = new MemoryStorage()

/** The number in "g-<n>". */
function num(text: string): number {
    return parseInt(text.slice(2))
}

describe("link restart", () => {
    test("restart mid-stream: acknowledged messages stay delivered once, the rest continue", async () => {
        // boot 1
        let last1 = 0
        let orderErrors = 0
        const link1: Link = await startLink({ settings, storage, backoffMinMs: 50, backoffMaxMs: 500 })
        link1.onMessage((topic, payload) => {
            const text = payload.toString()
            console.log("GOT 1 " + text)
            if (num(text) !== last1 + 1) orderErrors++
            last1 = num(text)
        })
        link1.publish("phase", Buffer.from("boot1"))
        for (let i = 1; i <= 5; i++) link1.publish("a", Buffer.from("a-" + i))
        expect(await waitFor(() => link1.status().queued === 0, 20000)).toBe(true)
        expect(await waitFor(() => last1 >= 7, 20000)).toBe(true)
        expect(link1.status().sessions).toBe(1) // no unexpected disconnect
        expect(link1.status().resumed).toBe(true) // the out-of-band ticket
        expect(link1.status().earlyAccepted).toBe(false) // its age is unknown (6.2, 6.7)
        await link1.stop() // the restart: link and application state gone
        // the TICKET of boot 1's session is in flash: boot 2 resumes with it, not the out-of-band one
        expect((await newestSlot(storage)).seq).toBe(1)
        expect(link1.status().state).toBe("down")
        await ds.sleep(800) // a reboot takes time: the gateway queues g-8.. meanwhile

        // boot 2: a fresh link and application layer, the same ticket store
        let first2 = 0
        let last2 = 0
        const link2: Link = await startLink({ settings, storage, backoffMinMs: 50, backoffMaxMs: 500 })
        link2.onMessage((topic, payload) => {
            const text = payload.toString()
            console.log("GOT 2 " + text)
            const n = num(text)
            if (first2 === 0) first2 = n
            else if (n !== last2 + 1) orderErrors++
            last2 = n
        })
        link2.publish("phase", Buffer.from("boot2"))
        for (let i = 1; i <= 5; i++) link2.publish("b", Buffer.from("b-" + i))
        const ok = await waitFor(() => last2 === N_DOWN_TOTAL && link2.status().queued === 0, 30000)
        console.log("RESTART boot1-last=" + last1 + " boot2-first=" + first2 + " boot2-last=" + last2 + " orderErrors=" + orderErrors)
        expect(ok).toBe(true)
        expect(orderErrors).toBe(0)
        expect(link2.status().resumed).toBe(true) // the ticket from boot 1's session
        expect(link2.status().sessions).toBe(1)
        // PROTOCOL.md 6.2: after the restart the ticket's age is unknown, so no 0-RTT: the STREAM
        // and b-1.. went as the first record
        expect(link2.status().earlyAccepted).toBe(false)
        expect((await newestSlot(storage)).seq).toBe(2)
        // nothing lost: boot 2 starts at or before the first message boot 1 did not handle
        expect(first2 >= 1 && first2 <= last1 + 1).toBe(true)
        await link2.stop()
        pass("restart")
    })
})
