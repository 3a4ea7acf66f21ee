// End to end, device side of test/e2e/link.test.ts: the device link (src/link.ts) against the
// real gateway and its application layer, through a TCP proxy the Node side controls
// (PROTOCOL.md version 2).
//
// 1. basics: the first connection resumes with the out-of-band ticket and zero X25519 before
//    it is up, without early data (the out-of-band ticket's age is unknown, 6.2, 6.7: the
//    STREAM and the first messages go as the first record); publish; request round trips
//    (upstream 201, a refused route); a MESSAGE from the gateway answered with a PUBLISH; the
//    link states.
// 2. roaming: N_UP PUBLISHes "d-1".. from the device and N_DOWN MESSAGEs "g-1".. from the
//    gateway while the Node side cuts the connection at random points and restarts the
//    gateway. The device checks that the gateway's messages arrive exactly once and in
//    order, that some sessions carried 0-RTT data (tickets of this boot), and waits until the
//    gateway acknowledged all of its own; the Node side checks the other direction.
// 3. a rejected ticket: the full handshake on the same connection, two X25519 on its critical
//    path (ee, se: the static key, ss, the ephemeral and its es were computed while idle,
//    4.3), and the next ephemeral and its es computed after "up", while idle. If the roaming
//    phase took the slot to the resumption cap (32 resumed sessions, 6.9), the cap's full
//    handshake (no TICKET_REJECTED) is let happen first.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { startLink, Link, QueueFullError, RequestError } from "../../../src/link"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { CountingDh } from "../../../src/tether/client"
import { RESUME_CAP } from "../../../src/tether/wire"
import { linkSettings, newestSlot, pass, waitFor } from "./tether-common"
import { PORT, TT_GW_PK, TT_ID, TT_PSK, TT_RSECRET, TT_SK, TT_TICKET, N_UP, N_DOWN } from "./env.generated"

const settings = linkSettings(PORT, TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_TICKET, TT_RSECRET)

const dh = new CountingDh()
/** the ticket store's flash (tests read the slots) */
const storage = new MemoryStorage()
let link: Link = undefined
const states: string[] = []
let dhAtFirstUp = -1
// X25519 counts when the latest session came up (the state handler runs before any idle work)
let dhXAtUp = -1
let dhBaseAtUp = -1
/** sessions up so far: full handshakes, 0-RTT resumptions; when the latest came up */
let fullUps = 0
let earlyUps = 0
let lastUpAt = 0
// gateway -> device, checked here: "g-<i>" must arrive as i = 1, 2, 3, ...
let nextDown = 1
let downErrors = 0
let pings = 0

/**
 * Waits until the link is up, idle (nothing queued) and its idle key work is over: more than
 * IDLE_WAIT_MS (2 s) since the session came up, and no X25519 for a second.
 */
async function idleWorkDone(): Promise<void> {
    const end = ds.millis() + 30000
    for (;;) {
        const x = dh.x
        const base = dh.base
        await ds.sleep(1000)
        const st = link.status()
        if (x === dh.x && base === dh.base && st.state === "up" && st.queued === 0 && ds.millis() - lastUpAt > 3000) return
        expect(ds.millis() < end).toBe(true)
    }
}

describe("link", () => {
    test("basics: first connection from the out-of-band ticket, publish, request, message, states", async () => {
        link = await startLink({ settings, storage, dh, backoffMinMs: 50, backoffMaxMs: 1000 })
        link.onState((state, s) => {
            states.push(state)
            if (state === "up") {
                if (dhAtFirstUp < 0) dhAtFirstUp = dh.x + dh.base
                dhXAtUp = dh.x
                dhBaseAtUp = dh.base
                lastUpAt = ds.millis()
                if (!s.resumed) fullUps++
                if (s.earlyAccepted) earlyUps++
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
        // "connecting" from the start: not "down" before the first attempt
        expect(states.slice(0, 3).join(",")).toBe("connecting,handshaking,up")
        expect(dhAtFirstUp).toBe(0) // resumed from the out-of-band ticket: no X25519 at all
        expect(link.status().resumed).toBe(true)
        // PROTOCOL.md 6.2, 6.7: the out-of-band ticket's age is unknown, so no early data
        // (version 1 sent the STREAM and "hello" as 0-RTT here); they went as the first record
        expect(link.status().earlyAccepted).toBe(false)
        expect(link.status().x25519).toBe(0)
        expect(link.status().sessions).toBe(1) // no unexpected disconnect
        expect((await newestSlot(storage)).seq).toBe(1) // its first record brought the TICKET (6.3)
        pass("basics")
    })
    test("roaming: exactly once, in order, both ways, across dropped connections", async () => {
        const t0 = ds.millis()
        const early0 = earlyUps
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
        console.log(line + " x25519=" + (dh.x + dh.base) + " full=" + fullUps + " early=" + earlyUps)
        expect(ok).toBe(true)
        // tickets received in this boot have a known age: their resumptions carry the STREAM
        // and the first queued messages as 0-RTT data (6.2)
        expect(earlyUps > early0).toBe(true)
        expect(downErrors).toBe(0)
        expect(nextDown).toBe(N_DOWN + 1)
        link.publish("phase", Buffer.from("done"))
        expect(await waitFor(() => link.status().queued === 0, 30000)).toBe(true)
        pass("roam")
    })
    test("rejected ticket: full handshake with idle-prepared keys", async () => {
        // the idle work (static public key, ss, an ephemeral and its es) is done once every
        // X25519 is one of: ss and the static key (once each), an ephemeral and its es (one
        // pair per full handshake attempt, and one prepared), ee and se (per full handshake):
        // x - base = 2 per full handshake, exactly (4.3)
        await idleWorkDone()
        expect(dh.base >= 2).toBe(true)
        expect(dh.x - dh.base).toBe(2 * fullUps)
        if ((await newestSlot(storage)).resumed >= RESUME_CAP) {
            // 6.9: the slot reached the resumption cap during the roaming phase, so the next
            // connection is a full handshake without any TICKET_REJECTED: let it happen first
            const n = link.status().sessions
            link.dropConnection()
            expect(await waitFor(() => link.status().sessions > n && link.status().state === "up", 30000)).toBe(true)
            const c = link.status()
            expect(c.resumed).toBe(false)
            expect(c.fellBack).toBe(false)
            expect(c.x25519).toBe(2) // ee, se
            expect(c.sessions).toBe(n + 1) // on the first connection
            console.log("FULL resumption cap reached: full handshake ms=" + c.handshakeMs)
            await idleWorkDone()
            expect((await newestSlot(storage)).resumed).toBe(0) // its TICKET starts the count again
            expect(dh.x - dh.base).toBe(2 * fullUps)
        }
        const x0 = dh.x
        const base0 = dh.base
        const sessions = link.status().sessions
        link.publish("phase", Buffer.from("full")) // the gateway raises min_generation and cuts
        expect(await waitFor(() => link.status().sessions > sessions && link.status().fellBack, 30000)).toBe(true)
        const s = link.status()
        expect(s.sessions).toBe(sessions + 1) // on the same connection as the refused ticket
        expect(s.resumed).toBe(false)
        expect(s.x25519).toBe(2) // ee, se: the whole critical path (es was prepared while idle)
        expect(dhXAtUp - x0).toBe(2)
        // connect() does not generate the next ephemeral before "up": the link does it while
        // idle afterwards, on its own fiber, with its es
        expect(dhBaseAtUp - base0).toBe(0)
        expect(await waitFor(() => dh.base === base0 + 1 && dh.x === x0 + 3, 10000)).toBe(true)
        await idleWorkDone()
        expect(dh.base).toBe(base0 + 1)
        expect(dh.x).toBe(x0 + 3)
        console.log("FULL ms=" + s.handshakeMs)
        link.publish("after-full", Buffer.from("x"))
        expect(await waitFor(() => link.status().queued === 0, 30000)).toBe(true)
        await link.stop()
        expect(link.status().state).toBe("down")
        pass("full")
    })
})
