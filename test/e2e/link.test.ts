// End to end, the device link (src/link.ts, test/e2e/device/link-roam.ts in one simulator run)
// against the real gateway (startGateway + its application layer) on loopback, through a TCP
// proxy this test controls (PROTOCOL.md version 2):
//
// - basics: the first connection from the out-of-band ticket (no early data: its age is
//   unknown, 6.2, 6.7), publish, request round trips through the funnel to a local HTTP
//   upstream (201 and a refused route), a MESSAGE from the gateway answered by the device;
// - roaming: N_UP messages device -> gateway and N_DOWN gateway -> device while the
//   proxy cuts the connection at random points: inside the device's first frame
//   (mid-handshake), inside the gateway's TICKET record (between ticket send and store; the
//   TICKET is the gateway's next frame after RESUME_RESP, at once when it accepted the 0-RTT
//   data, else after the device's first record, 6.3), inside later records, or after a random
//   time; and the gateway is restarted mid-stream (same registry, ticket keys and stream store,
//   new process state). Every message must arrive exactly once and in order, both ways; the
//   device may meet the resumption cap (6.9: a full handshake after 32 resumed sessions);
// - a rejected ticket (min_generation raised as re-pairing does): the full handshake on the
//   same connection, with the static key, `ss`, the ephemeral and its `es` prepared while idle
//   (2 X25519 on the critical path, 4.3).
// Two more device runs, one after the other (device runs never overlap: they share the
// generated env module): a device restart mid-stream, and failover between gateway nodes.
// TETHER_ROAM_N=<n> runs the roaming phase with n messages each way (default 200).
import assert from "node:assert/strict"
import { createServer as createHttpServer, type Server as HttpServer } from "node:http"
import net from "node:net"
import { after, before, describe, test } from "node:test"
import {
    type AppGateway,
    deviceSettings,
    generateKeyPair,
    MemoryAppStateStore,
    MemoryOutbox,
    MemoryRegistry,
    pairDevice,
    type Paired,
    parseConfig,
    type ServerPolicy,
    startAppGateway,
    TicketKeySet,
} from "tether-gateway"
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
const TICKET_FRAME = 93 // header 3 + inner type 1 + ticket 33 + secret 32 + next pseudonym 8 + tag 16 (6.3)

function randInt(lo: number, hi: number): number {
    return lo + Math.floor(Math.random() * (hi - lo + 1))
}

/** Random cut points, weighted toward the places that matter. */
function randomPlan(): CutPlan {
    const r = Math.random()
    if (r < 0.2) return { kind: "up-bytes", at: randInt(1, 64), what: "mid-handshake (device's first frame)" }
    if (r < 0.4)
        return {
            kind: "down-bytes",
            at: randInt(RESUME_RESP_FRAME, RESUME_RESP_FRAME + TICKET_FRAME - 1),
            what: "between ticket send and store",
        }
    if (r < 0.55) return { kind: "down-bytes", at: randInt(1, RESUME_RESP_FRAME - 1), what: "mid-handshake (gateway's answer)" }
    if (r < 0.7)
        return { kind: "down-bytes", at: randInt(RESUME_RESP_FRAME + TICKET_FRAME + 1, 3000), what: "mid-record (gateway to device)" }
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
    const receiving = new MemoryAppStateStore()
    const outbox = new MemoryOutbox()
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
    /** the gateway's log lines, across its restart */
    const gwLogs: Record<string, unknown>[] = []

    async function startGw(): Promise<void> {
        gw = await startAppGateway({
            port: 0,
            registry,
            state: { identity, ticketKeys },
            log: l => gwLogs.push(l as Record<string, unknown>),
            app: {
                receiving,
                outbox,
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
                // restart the gateway mid-stream, with messages still unacknowledged: its queue
                // is in the store (PROTOCOL.md 12.1), the new process sends what is left
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
                ...deviceSettings(paired, identity.publicKey, "127.0.0.1", proxy.port),
                N_UP,
                N_DOWN,
            },
            { timeoutMs: 150000 }
        )
        for (const line of run.out.split("\n"))
            if (/LINK up|ROAM|ORDER|FULL/.test(line)) console.log(line.replace(/^.*?(LINK|ROAM|ORDER|FULL)/, "$1"))
        const kinds = new Map<string, number>()
        for (const d of proxy.drops) kinds.set(d, (kinds.get(d) ?? 0) + 1)
        console.log(`PROXY connections=${proxy.connections} drops=${proxy.drops.length} restarts=${restarts}`)
        for (const [k, n] of kinds) console.log(`PROXY drop ${n}x ${k}`)
        const outcomes = new Map<string, number>()
        for (const l of gwLogs) outcomes.set(`${l["event"]}:${l["outcome"]}`, (outcomes.get(`${l["event"]}:${l["outcome"]}`) ?? 0) + 1)
        console.log(`GW ${[...outcomes].map(([k, n]) => `${k}=${n}`).join(" ")}`)
    })
    after(async () => {
        await gw.close()
        await proxy.close()
        await new Promise<void>(resolve => http.close(() => resolve()))
    })

    test("basics: first connection from the out-of-band ticket (no 0-RTT), publish, request (201, refused), message and answer", () => {
        assert.ok(devicePassed(run, "basics"), run.out.split("\n").slice(-60).join("\n"))
        assert.equal(publishes.filter(p => p.topic === "hello").length, 1)
        assert.deepEqual(
            publishes.filter(p => p.topic === "pong").map(p => p.payload),
            ["p1"]
        )
    })
    test(`roaming: ${N_UP} messages each way, >= ${MIN_DROPS} drops, a gateway restart: exactly once, in order`, () => {
        assert.ok(devicePassed(run, "roam"), run.out.split("\n").slice(-60).join("\n"))
        const up = publishes.filter(p => p.topic === "d").map(p => p.payload)
        const want = Array.from({ length: N_UP }, (_, i) => `d-${i + 1}`)
        assert.deepEqual(up, want)
        assert.equal(sentDown, N_DOWN)
        assert.ok(proxy.drops.length >= MIN_DROPS, `only ${proxy.drops.length} drops`)
        assert.equal(restarts, 1)
        assert.deepEqual(
            publishes
                .filter(p => p.topic === "phase")
                .map(p => p.payload)
                .slice(0, 2),
            ["roam", "done"]
        )
    })
    test("the gateway's log: no protocol error, bad record, timeout or other refusal than TICKET_REJECTED", () => {
        // the proxy only cuts (it never alters a byte): every connection ends in a drop or a
        // close, and the only refusals are of tickets (the forced full handshake's, and any of
        // an older chain after a full handshake whose TICKET a cut swallowed, 6.3)
        const allowed = new Set([
            "connection:resumed",
            "connection:full-handshake",
            "connection:confirmed",
            "connection:peer-gone",
            "connection:closed-by-peer",
            "connection:reject",
            "app:publish",
            "app:request",
            "app:route-refused",
            "app:stream-restarted",
        ])
        assert.deepEqual(
            gwLogs.filter(l => !allowed.has(`${l["event"]}:${l["outcome"]}`)),
            []
        )
        const rejects = gwLogs.filter(l => l["outcome"] === "reject")
        assert.ok(rejects.length >= 1)
        assert.deepEqual(
            rejects.filter(l => l["code"] !== "TICKET_REJECTED"),
            []
        )
    })
    test("a rejected ticket: the full handshake with keys prepared while idle, then data", () => {
        assert.ok(devicePassed(run, "full"), run.out.split("\n").slice(-60).join("\n"))
        assert.deepEqual(
            publishes.filter(p => p.topic === "after-full").map(p => p.payload),
            ["x"]
        )
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})

// The device restarts mid-stream (test/e2e/device/link-restart.ts): a fresh link and
// application state, the same ticket store. PROTOCOL.md 12.1: the restarted device reports
// peer_stream_id 0, so the gateway starts a new stream with its unacknowledged messages
// renumbered from 1, and its own STREAM first.
describe("device link: restart mid-stream", () => {
    const registry = new MemoryRegistry()
    const receiving = new MemoryAppStateStore()
    const outbox = new MemoryOutbox()
    const identity = generateKeyPair()
    const ticketKeys = TicketKeySet.create(Math.floor(Date.now() / 1000))
    const N_BOOT1 = 10
    const N_TOTAL = 20
    let gw: AppGateway
    let paired: Paired
    let run: DeviceRun
    const publishes: { topic: string; payload: string }[] = []
    /** the highest gateway message id the device acknowledged before boot 2 connected */
    let ackedBeforeRestart = -1
    let acked = 0
    let boot1Sent: Promise<void> = Promise.resolve()
    const logs: Record<string, unknown>[] = []

    before(async () => {
        gw = await startAppGateway({
            port: 0,
            registry,
            state: { identity, ticketKeys },
            log: l => logs.push(l as Record<string, unknown>),
            app: { receiving, outbox, config: parseConfig({}) },
        })
        gw.app.events.on("acked", e => {
            acked = Math.max(acked, e.id)
        })
        gw.app.events.on("publish", e => {
            const payload = e.payload.toString()
            publishes.push({ topic: e.topic, payload })
            if (e.topic === "phase" && payload === "boot1") {
                boot1Sent = (async () => {
                    // g-1..g-7 to boot 1; g-8..g-10 once boot 1's session is gone (the device
                    // stops after g-7), so they are certainly unacknowledged when boot 2
                    // connects and are renumbered into the new stream, however slow the machine
                    for (let i = 1; i <= 7; i++) {
                        await gw.app.sendMessage("dev-r", "g", Buffer.from(`g-${i}`))
                        await sleep(10)
                    }
                    const id = paired.deviceId.toString("hex")
                    const deadline = Date.now() + 20000
                    while (gw.gateway.sessionsOf(id).length > 0 && Date.now() < deadline) await sleep(20)
                    for (let i = 8; i <= N_BOOT1; i++) await gw.app.sendMessage("dev-r", "g", Buffer.from(`g-${i}`))
                })()
            }
            if (e.topic === "phase" && payload === "boot2") {
                // the device's new STREAM was processed before this PUBLISH: boot 1's ACKs are in
                ackedBeforeRestart = acked
                void (async () => {
                    await boot1Sent // g-1..g-10 first: the gateway's stream stays in order
                    for (let i = N_BOOT1 + 1; i <= N_TOTAL; i++) await gw.app.sendMessage("dev-r", "g", Buffer.from(`g-${i}`))
                })()
            }
        })
        paired = await pairDevice({ registry, ticketKeys, name: "dev-r", now: Math.floor(Date.now() / 1000) })
        run = await runDevice(
            "test/e2e/device/link-restart.ts",
            {
                PORT: gw.gateway.port,
                ...deviceSettings(paired, identity.publicKey, "127.0.0.1", gw.gateway.port),
                N_DOWN_TOTAL: N_TOTAL,
            },
            { timeoutMs: 60000 }
        )
        for (const line of run.out.split("\n")) if (/RESTART/.test(line)) console.log(line.replace(/^.*?RESTART/, "RESTART"))
    })
    after(async () => {
        await gw.close()
    })

    test("gateway -> device: nothing acknowledged is delivered again, nothing is lost, delivery continues", async () => {
        assert.ok(devicePassed(run, "restart"), run.out.split("\n").slice(-60).join("\n"))
        const got = (boot: number) =>
            run.out
                .split("\n")
                .map(l => new RegExp(`GOT ${boot} g-(\\d+)`).exec(l))
                .filter((m): m is RegExpExecArray => m !== null)
                .map(m => Number(m[1]))
        const boot1 = got(1)
        const boot2 = got(2)
        assert.deepEqual(
            boot1,
            Array.from({ length: boot1.length }, (_, i) => i + 1),
            "boot 1: in order, once"
        )
        assert.ok(boot1.length >= 7)
        assert.ok(ackedBeforeRestart >= 5, `acked ${ackedBeforeRestart}`)
        const first = boot2[0] ?? 0
        // acknowledged ones never again; at most the ones delivered but not yet acknowledged
        assert.ok(first > ackedBeforeRestart, `boot 2 starts at g-${first}, g-${ackedBeforeRestart} was acknowledged`)
        assert.ok(first <= boot1.length + 1, `boot 2 starts at g-${first}: a message was lost`)
        assert.deepEqual(
            boot2,
            Array.from({ length: N_TOTAL - first + 1 }, (_, i) => first + i),
            "boot 2: the rest, in order, once"
        )
        assert.equal(await gw.app.queued(paired.deviceId.toString("hex")), 0)
        // the path taken: the gateway restarted its stream on boot 2's STREAM, with the
        // unacknowledged messages renumbered; no gap was ever seen by either side
        const restarted = logs.filter(l => l["event"] === "app" && l["outcome"] === "stream-restarted")
        assert.ok(
            restarted.some(l => Number(l["renumbered"]) >= 1),
            JSON.stringify(restarted)
        )
        assert.ok(!logs.some(l => l["outcome"] === "stream-lost" || l["outcome"] === "protocol-error"))
        assert.ok(!/GOT 2 g-\d+[\s\S]*tether: .*id \d+ after/.test(run.out))
    })
    test("device -> gateway: boot 1's acknowledged messages once, then boot 2's", () => {
        assert.deepEqual(
            publishes.filter(p => p.topic === "a" || p.topic === "b").map(p => p.payload),
            ["a-1", "a-2", "a-3", "a-4", "a-5", "b-1", "b-2", "b-3", "b-4", "b-5"]
        )
        assert.deepEqual(
            publishes.filter(p => p.topic === "phase").map(p => p.payload),
            ["boot1", "boot2"]
        )
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})

// Failover between the nodes of a cluster (issue 13, PROTOCOL.md 6.8, 6.9;
// test/e2e/device/link-failover.ts): the device is paired with four endpoints; the gateway
// nodes share the registry, the identity, the ticket keys and the application state (as the
// nodes of a cluster share their store). The first endpoint is a closed port (connection
// refused), the second a node whose handshake cap is 0 (every handshake is answered
// REJECT(BUSY)), the third and fourth serve. The link comes up on the third; once it has its
// TICKET, the third node shuts down (CLOSE(SHUTDOWN) to its sessions) and the link resumes on
// the fourth with the third's ticket.
describe("device link: failover between gateway nodes", () => {
    const registry = new MemoryRegistry()
    const receiving = new MemoryAppStateStore()
    const outbox = new MemoryOutbox()
    const identity = generateKeyPair()
    const ticketKeys = TicketKeySet.create(Math.floor(Date.now() / 1000))
    const nodes: AppGateway[] = []
    const logs: Record<string, unknown>[][] = [[], [], []]
    /** "node:payload" of every PUBLISH "where", in order */
    const where: string[] = []
    let refusedPort = 0
    let run: DeviceRun

    async function node(i: number, policy: Partial<ServerPolicy>): Promise<AppGateway> {
        const gw = await startAppGateway({
            port: 0,
            registry,
            state: { identity, ticketKeys },
            policy,
            log: l => logs[i]!.push(l as Record<string, unknown>),
            app: { receiving, outbox, config: parseConfig({}) },
        })
        gw.app.events.on("publish", e => {
            if (e.topic !== "where") return
            where.push(`${i}:${e.payload.toString()}`)
            if (i === 1) void gw.close() // the node the device is on shuts down
        })
        return gw
    }

    before(async () => {
        // a port nobody listens on: listen on any, close
        const s = net.createServer()
        await new Promise<void>(resolve => s.listen(0, "127.0.0.1", () => resolve()))
        refusedPort = (s.address() as net.AddressInfo).port
        await new Promise<void>(resolve => s.close(() => resolve()))
        nodes.push(await node(0, { maxConcurrentHandshakes: 0 }))
        nodes.push(await node(1, {}))
        nodes.push(await node(2, {}))
        const paired = await pairDevice({ registry, ticketKeys, name: "dev-f", now: Math.floor(Date.now() / 1000) })
        const [busy, third, fourth] = nodes.map(n => ({ host: "127.0.0.1", port: n.gateway.port }))
        const settings = deviceSettings(paired, identity.publicKey, "127.0.0.1", refusedPort, [busy!, third!, fourth!])
        run = await runDevice("test/e2e/device/link-failover.ts", { ...settings }, { timeoutMs: 60000 })
        for (const line of run.out.split("\n")) if (/FAILOVER/.test(line)) console.log(line.replace(/^.*?FAILOVER/, "FAILOVER"))
    })
    after(async () => {
        for (const n of nodes) await n.close()
    })

    test("refused, then BUSY: up on the third endpoint; CLOSE(SHUTDOWN) there: resumed on the fourth with the third's ticket", () => {
        assert.ok(devicePassed(run, "failover"), run.out.split("\n").slice(-60).join("\n"))
        // the BUSY node answered BUSY and established nothing
        const outcomes = (i: number) => logs[i]!.filter(l => l["event"] === "connection").map(l => `${l["outcome"]}:${l["code"] ?? ""}`)
        assert.ok(outcomes(0).includes("reject:BUSY"), outcomes(0).join())
        assert.ok(!outcomes(0).some(o => o.startsWith("resumed") || o.startsWith("full-handshake")), outcomes(0).join())
        // one session on each serving node, both resumptions (no full handshake anywhere)
        assert.equal(outcomes(1).filter(o => o.startsWith("resumed")).length, 1, outcomes(1).join())
        assert.equal(outcomes(2).filter(o => o.startsWith("resumed")).length, 1, outcomes(2).join())
        assert.ok(![...outcomes(1), ...outcomes(2)].some(o => o.startsWith("full-handshake") || o.startsWith("reject")))
        // the fourth node accepted the 0-RTT data of a ticket the third one issued
        const resumed = logs[2]!.find(l => l["outcome"] === "resumed")
        assert.equal(resumed?.["earlyAccepted"], true, JSON.stringify(resumed))
        // every message once, on the node the device was on
        assert.deepEqual(where, ["1:third", "2:fourth"])
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
