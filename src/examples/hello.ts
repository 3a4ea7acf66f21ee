// The smallest Tether firmware: the link from the paired settings, a "hello" published every
// five seconds, and every message from the gateway printed. Run it in the simulator against
// your own gateway: `npm run sim -- src/examples/hello.ts` (README, "Your own firmware").
import * as ds from "@devicescript/core"
import { startLink } from "../link"

const link = await startLink() // reads the TT_* settings `tether-gateway pair` wrote

link.onState((state, s) => {
    console.log("LINK " + state + (state === "down" ? " reason=" + s.lastError : ""))
})

link.onMessage((topic, payload) => {
    console.log("GOT " + topic + " " + payload.toString())
})

let n = 0
while (true) {
    n++
    try {
        // queued while the link is down, delivered once and in order when it is up
        const id = link.publish("hello", Buffer.from("hello #" + n))
        console.log("SENT hello #" + n + " id=" + id)
    } catch (e) {
        console.log("DROPPED hello #" + n + ": " + (e as Error).message) // the queue is full
    }
    await ds.sleep(5000)
}
