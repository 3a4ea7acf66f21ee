// End to end, device side of test/e2e/link.test.ts: the device link (src/link.ts) against the
// real gateway and its application layer, through a TCP proxy the Node side controls.
//
// 1. basics: the first connection resumes with the out-of-band ticket and zero X25519 before
//    it is up; publish; request round trips (upstream 201, a refused route); a MESSAGE from
//    the gateway answered with a PUBLISH; the link states.
// 2. roaming: N_UP PUBLISHes "d-1".. from the device and N_DOWN MESSAGEs "g-1".. from the
//    gateway while the Node side cuts the connection at random points and restarts the
//    gateway. The device checks that the gateway's messages arrive exactly once and in
//    order, and waits until the gateway acknowledged all of its own; the Node side checks
//    the other direction.
// 3. a rejected ticket: the full handshake on the same connection, three X25519 on its
//    critical path (the static key, ss and the ephemeral were computed while idle), and the
//    next ephemeral computed after "up", while idle.
// @timeout 150000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { startLink, Link, QueueFullError, RequestError } from "../../../src/link"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { CountingDh } from "../../../src/tether/client"
import { linkSettings, pass, waitFor } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_RSECRET, TT_SK, TT_TICKET, N_UP, N_DOWN } from "./env.generated"

const settings = linkSettings(PORT, TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_TICKET, TT_RSECRET)

const dh = new CountingDh()
let link: Link = undefined
const states: string[] = []
let dhAtFirstUp = -1
// X25519 counts when the latest session came up (the state handler runs before any idle work)
let dhXAtUp = -1
let dhBaseAtUp = -1
// gateway -> device, checked here: "g-<i>" must arrive as i = 1, 2, 3, ...
let nextDown = 1
let downErrors = 0
let pings = 0

describe("link", () => {
    test("basics: 0-RTT first connection, publish, request, message, states", async () => {
        link = await startLink({ settings, storage: new MemoryStorage(), dh, backoffMinMs: 50, backoffMaxMs: 1000 })
        link.onState((state, s) => {
            states.push(state)
            if (state === "up") {
                if (dhAtFirstUp < 0) dhAtFirstUp = dh.x + dh.base
                dhXAtUp = dh.x
                dhBaseAtUp = dh.base
                console.log(
                    "LINK up resumed=" +
                        (s.resumed ? 1 : 0) +
                        " ms=" +
                        s.handshakeMs +
                        " fallback=" +
                        (s.fellBack ? 1 : 0) +
                        " early=" +
                        (s.earlyAccepted ? 1 : 0)
                )
            }
        })
        link.onMessage((topic, payload) => {
            const text = payload.toString()
            if (topic === "ping") {
                pings++
                link.publish("pong", payload)
            } else if (topic === "g") {
                if (text === "g-" + nextDown) nextDown++
                else {
                    downErrors++
                    console.log("ORDER expected g-" + nextDown + " got " + text)
                }
            }
        })
        link.publish("hello", Buffer.from("world"))
        const r = await link.request("echo", Buffer.from("abc"), { timeoutMs: 10000 })
        expect(r.status).toBe(201)
        expect(r.payload.toString()).toBe("echo:abc")
        let code = 0
        try {
            await link.request("forbidden", Buffer.alloc(0), { timeoutMs: 10000 })
        } catch (e) {
            code = e instanceof RequestError ? (e as RequestError).code : -1
        }
        expect(code).toBe(1) // ROUTE_REFUSED
        expect(await waitFor(() => pings === 1, 10000)).toBe(true)
        expect(states.slice(0, 4).join(",")).toBe("down,connecting,handshaking,up")
        expect(dhAtFirstUp).toBe(0) // resumed from the out-of-band ticket: no X25519 at all
        expect(link.status().resumed).toBe(true)
        expect(link.status().earlyAccepted).toBe(true)
        pass("basics")
    })
    test("roaming: exactly once, in order, both ways, across dropped connections", async () => {
        const t0 = ds.millis()
        link.publish("phase", Buffer.from("roam"))
        let queueFull = 0
        for (let i = 1; i <= N_UP; i++) {
            for (;;) {
                try {
                    link.publish("d", Buffer.from("d-" + i))
                    break
                } catch (e) {
                    if (!(e instanceof QueueFullError)) throw e
                    queueFull++
                    await ds.sleep(50) // back-pressure: wait for ACKs
                }
            }
            // spread the stream over many sessions (the Node side cuts connections)
            while (link.status().sessions < 2 + Math.floor((i * 12) / N_UP)) await ds.sleep(20)
        }
        const ok = await waitFor(() => nextDown > N_DOWN && link.status().queued === 0, 120000)
        const s = link.status()
        // (the compiler's console.log takes a limited number of concatenated parts)
        let line = "ROAM up=" + N_UP + " down=" + (nextDown - 1) + " orderErrors=" + downErrors
        line += " sessions=" + s.sessions + " queueFull=" + queueFull
        line += " duplicatesDropped=" + link.appLayer().duplicates + " ms=" + (ds.millis() - t0)
        console.log(line + " x25519=" + (dh.x + dh.base))
        expect(ok).toBe(true)
        expect(downErrors).toBe(0)
        expect(nextDown).toBe(N_DOWN + 1)
        link.publish("phase", Buffer.from("done"))
        expect(await waitFor(() => link.status().queued === 0, 30000)).toBe(true)
        pass("roam")
    })
    test("rejected ticket: full handshake with idle-prepared keys", async () => {
        // by now the idle work is done: static public key, ss, the first ephemeral
        expect(dh.base).toBe(2)
        expect(dh.x).toBe(1)
        const sessions = link.status().sessions
        link.publish("phase", Buffer.from("full")) // the gateway raises min_generation and cuts
        expect(await waitFor(() => link.status().sessions > sessions && link.status().fellBack, 30000)).toBe(true)
        const s = link.status()
        expect(s.resumed).toBe(false)
        expect(dhXAtUp).toBe(1 + 3) // es, ee, se: the whole critical path
        // connect() no longer generates the next ephemeral before "up": the link does it
        // while idle afterwards, on its own fiber
        expect(dhBaseAtUp).toBe(2)
        expect(await waitFor(() => dh.base === 2 + 1, 10000)).toBe(true)
        expect(dh.x).toBe(1 + 3)
        console.log("FULL ms=" + s.handshakeMs)
        link.publish("after-full", Buffer.from("x"))
        expect(await waitFor(() => link.status().queued === 0, 30000)).toBe(true)
        await link.stop()
        expect(link.status().state).toBe("down")
        pass("full")
    })
})
