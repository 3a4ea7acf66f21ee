// End to end, the device link (src/link.ts, test/e2e/device/link-roam.ts in one simulator run)
// against the real gateway (startGateway + its application layer) on loopback, through a TCP
// proxy this test controls:
//
// - basics: publish, request round trips through the funnel to a local HTTP upstream (201 and
//   a refused route), a MESSAGE from the gateway answered by the device;
// - roaming (issue 7): N_UP messages device -> gateway and N_DOWN gateway -> device while the
//   proxy cuts the connection at random points: inside the device's first frame
//   (mid-handshake), inside the gateway's TICKET record (between ticket send and store),
//   inside later records, or after a random time; and the gateway is restarted mid-stream
//   (same registry, ticket keys and stream store, new process state). Every message must
//   arrive exactly once and in order, both ways;
// - a rejected ticket (min_generation raised as re-pairing does): the full handshake on the
//   same connection, with the static key, `ss` and the ephemeral prepared while idle.
// TETHER_ROAM_N=<n> runs the roaming phase with n messages each way (default 200).
import assert from "node:assert/strict"
import { createServer as createHttpServer, type Server as HttpServer } from "node:http"
import net from "node:net"
import { after, before, describe, test } from "node:test"
import { startAppGateway, type AppGateway } from "tether-gateway/app/serve"
import { MemoryAppStateStore } from "tether-gateway/app/store"
import { parseConfig } from "tether-gateway/app/upstream"
import { pairDevice, type Paired } from "tether-gateway/cli/pair"
import { generateKeyPair } from "tether-gateway/crypto/x25519"
import { MemoryRegistry } from "tether-gateway/registry/memory"
import { TicketKeySet } from "tether-gateway/tickets"
import { devicePassed, runDevice, sleep, type DeviceRun } from "./harness.js"

const N_UP = Number(process.env["TETHER_ROAM_N"] ?? 200)
const N_DOWN = N_UP
const MIN_DROPS = 20

/** Where and how the proxy cuts one connection. */
type CutPlan =
    | { kind: "none" }
    | { kind: "up-bytes"; at: number; what: string }
    | { kind: "down-bytes"; at: number; what: string }
    | { kind: "time"; ms: number; what: string }

const RESUME_RESP_FRAME = 32 // header 3 + nonce_r 12 + flags 1 + tag 16
const TICKET_FRAME = 85 // header 3 + inner type 1 + ticket 33 + secret 32 + tag 16

function randInt(lo: number, hi: number): number {
    return lo + Math.floor(Math.random() * (hi - lo + 1))
}

/** Random cut points, weighted toward the places that matter. */
function randomPlan(): CutPlan {
    const r = Math.random()
    if (r < 0.2) return { kind: "up-bytes", at: randInt(1, 64), what: "mid-handshake (device's first frame)" }
    if (r < 0.4) return { kind: "down-bytes", at: randInt(RESUME_RESP_FRAME, RESUME_RESP_FRAME + TICKET_FRAME - 1), what: "between ticket send and store" }
    if (r < 0.55) return { kind: "down-bytes", at: randInt(1, RESUME_RESP_FRAME - 1), what: "mid-handshake (gateway's answer)" }
    if (r < 0.7) return { kind: "down-bytes", at: randInt(RESUME_RESP_FRAME + TICKET_FRAME + 1, 3000), what: "mid-record (gateway to device)" }
    if (r < 0.85) return { kind: "up-bytes", at: randInt(100, 3000), what: "mid-record (device to gateway)" }
    return { kind: "time", ms: randInt(100, 1500), what: "after a random time" }
}

/** A TCP proxy: device -> proxy -> gateway (whatever port `target` says now). */
class CutProxy {
    server!: net.Server
    port = 0
    target = 0
    cutting = false
    connections = 0
    drops: string[] = []
    private live = new Set<net.Socket>()

    async start(): Promise<void> {
        this.server = net.createServer(dev => this.accept(dev))
        await new Promise<void>(resolve => this.server.listen(0, "127.0.0.1", () => resolve()))
        this.port = (this.server.address() as net.AddressInfo).port
    }

    private accept(dev: net.Socket) {
        this.connections++
        dev.setNoDelay(true)
        const gw = net.connect(this.target, "127.0.0.1")
        gw.setNoDelay(true)
        this.live.add(dev)
        this.live.add(gw)
        // every other connection only ends after a while, so the streams make progress
        // between cuts; any connection ends after 2 s at the latest
        const plan: CutPlan = !this.cutting
            ? { kind: "none" }
            : this.connections % 2 === 0
              ? randomPlan()
              : { kind: "time", ms: randInt(300, 1500), what: "after a random time" }
        let up = 0
        let down = 0
        let cut = false
        const kill = (why: string) => {
            if (cut) return
            cut = true
            this.drops.push(why)
            dev.destroy()
            gw.destroy()
        }
        const forward = (from: net.Socket, to: net.Socket, dir: "up-bytes" | "down-bytes") => {
            from.on("data", (d: Buffer) => {
                if (cut) return
                const sofar = dir === "up-bytes" ? up : down
                if (plan.kind === dir && sofar + d.length >= plan.at) {
                    to.write(d.subarray(0, plan.at - sofar))
                    cut = true // nothing more crosses; the sockets go once the partial write is out
                    this.drops.push(plan.what)
                    setTimeout(() => {
                        dev.destroy()
                        gw.destroy()
                    }, 5)
                    return
                }
                if (dir === "up-bytes") up += d.length
                else down += d.length
                to.write(d)
            })
        }
        forward(dev, gw, "up-bytes")
        forward(gw, dev, "down-bytes")
        if (plan.kind === "time") setTimeout(() => kill(plan.what), plan.ms)
        else if (plan.kind !== "none") setTimeout(() => kill("after 2 s (byte cut not reached)"), 2000)
        const end = () => {
            this.live.delete(dev)
            this.live.delete(gw)
            dev.destroy()
            gw.destroy()
        }
        dev.on("close", end)
        gw.on("close", end)
        dev.on("error", () => {})
        gw.on("error", () => {})
    }

    /** Cuts every live connection now. */
    dropAll(why: string): void {
        if (this.live.size > 0) this.drops.push(why)
        for (const s of this.live) s.destroy()
    }

    async close(): Promise<void> {
        for (const s of this.live) s.destroy()
        await new Promise<void>(resolve => this.server.close(() => resolve()))
    }
}

describe("device link end to end", () => {
    const registry = new MemoryRegistry()
    const store = new MemoryAppStateStore()
    const identity = generateKeyPair()
    const ticketKeys = TicketKeySet.create(Math.floor(Date.now() / 1000))
    const proxy = new CutProxy()
    let http: HttpServer
    let httpPort = 0
    let gw: AppGateway
    let paired: Paired
    let run: DeviceRun
    const publishes: { topic: string; payload: string }[] = []
    let restarts = 0
    let sentDown = 0

    async function startGw(): Promise<void> {
        gw = await startAppGateway({
            port: 0,
            registry,
            state: { identity, ticketKeys },
            log: () => {},
            app: {
                store,
                config: parseConfig({ routes: { echo: { url: `http://127.0.0.1:${httpPort}/echo`, devices: ["*"] } } }),
            },
        })
        proxy.target = gw.gateway.port
        gw.app.events.on("publish", e => {
            const payload = e.payload.toString()
            publishes.push({ topic: e.topic, payload })
            if (e.topic === "hello") void gw.app.sendMessage("dev", "ping", Buffer.from("p1"))
            if (e.topic === "phase" && payload === "roam") void roam()
            if (e.topic === "phase" && payload === "done") proxy.cutting = false
            if (e.topic === "phase" && payload === "full") void forceFull()
        })
    }

    /** The roaming phase on the Node side: cuts on, the gateway's messages, one restart. */
    async function roam(): Promise<void> {
        proxy.cutting = true
        proxy.dropAll("at the start of the roaming phase")
        while (sentDown < N_DOWN) {
            if (sentDown === Math.floor(N_DOWN / 2) && restarts === 0) {
                // restart the gateway mid-stream; its own queue lives in RAM, so let the
                // device acknowledge what it was sent first (the device's stream is not drained)
                const end = Date.now() + 60000
                while (gw.app.queued(paired.deviceId.toString("hex")) > 0 && Date.now() < end) await sleep(20)
                await gw.close()
                restarts++
                await sleep(300)
                await startGw()
            }
            // spread the stream over at least MIN_DROPS drops
            if (proxy.drops.length < Math.floor((sentDown * (MIN_DROPS + 4)) / N_DOWN)) {
                await sleep(20)
                continue
            }
            try {
                await gw.app.sendMessage("dev", "g", Buffer.from(`g-${sentDown + 1}`))
                sentDown++
            } catch {
                await sleep(50) // the gateway's queue for the device is full
            }
            await sleep(15)
        }
    }

    /** Re-pairing's effect on tickets: every outstanding one is below min_generation. */
    async function forceFull(): Promise<void> {
        const id = paired.deviceId.toString("hex")
        const d = await registry.getDevice(id)
        if (d === undefined) throw new Error("device gone")
        await registry.putDevice({ ...d, min_generation: d.issued_generation + 1 })
        proxy.dropAll("to force a full handshake")
    }

    before(async () => {
        http = createHttpServer((req, res) => {
            const chunks: Buffer[] = []
            req.on("data", c => chunks.push(c))
            req.on("end", () => {
                res.writeHead(201, { "content-type": "text/plain" })
                res.end(`echo:${Buffer.concat(chunks).toString()}`)
            })
        })
        await new Promise<void>(resolve => http.listen(0, "127.0.0.1", () => resolve()))
        httpPort = (http.address() as net.AddressInfo).port
        await proxy.start()
        paired = await pairDevice({ registry, ticketKeys, name: "dev", now: Math.floor(Date.now() / 1000) })
        await startGw()
        run = await runDevice(
            "test/e2e/device/link-roam.ts",
            {
                PORT: proxy.port,
                TT_ID: paired.deviceId.toString("hex"),
                TT_SK: paired.s.privateKey.toString("hex"),
                TT_GW_PK: identity.publicKey.toString("hex"),
                TT_PSK: paired.psk.toString("hex"),
                TT_TICKET: paired.ticket.ticket.toString("hex"),
                TT_RSECRET: paired.ticket.secret.toString("hex"),
                N_UP,
                N_DOWN,
            },
            { timeoutMs: 150000 }
        )
        for (const line of run.out.split("\n")) if (/LINK up|ROAM|ORDER|FULL/.test(line)) console.log(line.replace(/^.*?(LINK|ROAM|ORDER|FULL)/, "$1"))
        const kinds = new Map<string, number>()
        for (const d of proxy.drops) kinds.set(d, (kinds.get(d) ?? 0) + 1)
        console.log(`PROXY connections=${proxy.connections} drops=${proxy.drops.length} restarts=${restarts}`)
        for (const [k, n] of kinds) console.log(`PROXY drop ${n}x ${k}`)
    })
    after(async () => {
        await gw.close()
        await proxy.close()
        await new Promise<void>(resolve => http.close(() => resolve()))
    })

    test("basics: 0-RTT first connection, publish, request (201, refused), message and answer", () => {
        assert.ok(devicePassed(run, "basics"), run.out.split("\n").slice(-60).join("\n"))
        assert.equal(publishes.filter(p => p.topic === "hello").length, 1)
        assert.deepEqual(publishes.filter(p => p.topic === "pong").map(p => p.payload), ["p1"])
    })
    test(`roaming: ${N_UP} messages each way, >= ${MIN_DROPS} drops, a gateway restart: exactly once, in order`, () => {
        assert.ok(devicePassed(run, "roam"), run.out.split("\n").slice(-60).join("\n"))
        const up = publishes.filter(p => p.topic === "d").map(p => p.payload)
        const want = Array.from({ length: N_UP }, (_, i) => `d-${i + 1}`)
        assert.deepEqual(up, want)
        assert.equal(sentDown, N_DOWN)
        assert.ok(proxy.drops.length >= MIN_DROPS, `only ${proxy.drops.length} drops`)
        assert.equal(restarts, 1)
        assert.deepEqual(publishes.filter(p => p.topic === "phase").map(p => p.payload).slice(0, 2), ["roam", "done"])
    })
    test("a rejected ticket: the full handshake with keys prepared while idle, then data", () => {
        assert.ok(devicePassed(run, "full"), run.out.split("\n").slice(-60).join("\n"))
        assert.deepEqual(publishes.filter(p => p.topic === "after-full").map(p => p.payload), ["x"])
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
