// End to end, the MQTT bridge of a cluster (PROTOCOL.md 12.3, "A cluster"): two `serve --store
// postgres://… --mqtt URL` nodes on one real PostgreSQL, both subscribed to the command topics
// through one shared subscription on a real Mosquitto (MQTT 5; aedes has no shared
// subscriptions), the device (the Node twin) connected to node B. Commands published on the
// broker are split by the broker between the two nodes; each is queued by exactly one of them
// and reaches the device once, whichever node took it. Without the shared subscription each node
// would queue every command (the test checks the count of queued lines, not only what the
// device got). Skipped, with the reason printed, where mosquitto is not installed.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { connectAsync } from "mqtt"
import { AppClient, DeviceApp, startPostgres, TetherClient } from "tether-gateway/peer"
import { cli, deviceFrom, type Serve, serveProcess, sleep } from "./harness.js"
import { mosquittoMissing, startMosquitto } from "./mosquitto.js"

const USER = "tether-gw"
const PASSWORD = `pw-${randomBytes(6).toString("hex")}`
const COMMANDS = 40

test("a cluster's nodes share one command subscription: each command queued by one node, delivered once", async t => {
    const missing = mosquittoMissing()
    if (missing !== undefined) {
        console.log(`# ${missing}`)
        t.skip(missing)
        return
    }
    const work = mkdtempSync(join(tmpdir(), "tether-e2e-mqtt-cluster-"))
    const pg = await startPostgres()
    const broker = await startMosquitto(work, USER, PASSWORD)
    const nodes: Serve[] = []
    let client: AppClient | undefined
    try {
        const kek = join(work, "kek")
        const store = ["--store", pg.url, "--kek-file", kek]
        writeFileSync(join(work, "user"), USER + "\n")
        writeFileSync(join(work, "password"), PASSWORD + "\n", { mode: 0o600 })
        const config = join(work, "config.json")
        writeFileSync(
            config,
            JSON.stringify({
                mqtt: { protocolVersion: 5, usernameFile: join(work, "user"), passwordFile: join(work, "password") },
            })
        )
        cli(["init", ...store])
        for (const name of ["A", "B"]) {
            const s = await serveProcess([...store, "--node", name, "--port", "0", "--config", config, "--mqtt", broker.url])
            nodes.push(s)
            for (let i = 0; i < 200 && !s.lines.some(l => l["event"] === "mqtt" && l["outcome"] === "connected"); i++) await sleep(25)
            const connected = s.lines.find(l => l["event"] === "mqtt" && l["outcome"] === "connected")
            assert.ok(connected, `node ${name} connected to the broker: ${JSON.stringify(s.lines)}`)
            // a PostgreSQL store subscribes through the shared subscription by default
            assert.match(String(connected["subscription"]), /^\$share\/tether\//)
        }
        const [a, b] = nodes as [Serve, Serve]

        const out = join(work, "sensor.env")
        cli(["pair", "sensor", ...store, "--out", out, "--port", String(b.port)])
        const { pairing, store: tickets } = deviceFrom(out)
        const app = new DeviceApp()
        const got: string[] = []
        app.events.on("message", m => got.push(m.payload.toString()))
        client = new AppClient(
            new TetherClient({
                pairing,
                store: tickets,
                host: "127.0.0.1",
                port: b.port,
                timeoutMs: 5000,
            }),
            app
        )
        await client.connect()

        const pub = await connectAsync(broker.url, {
            clientId: `e2e-pub-${randomBytes(4).toString("hex")}`,
            protocolVersion: 5,
            username: USER,
            password: PASSWORD,
        })
        for (let i = 1; i <= COMMANDS; i++) await pub.publishAsync("tether/sensor/cmd/led", `c-${i}`, { qos: 1 })
        await pub.endAsync()

        for (let i = 0; i < 500 && got.length < COMMANDS; i++) await sleep(20)
        await sleep(500) // a duplicate would come after the last one
        const queued = (s: Serve) => s.lines.filter(l => l["event"] === "mqtt" && l["outcome"] === "command-queued").length
        const byA = queued(a)
        const byB = queued(b)
        assert.equal(byA + byB, COMMANDS, `each command queued once in the cluster (A ${byA}, B ${byB})`)
        assert.ok(byA > 0 && byB > 0, `the broker shared the subscription between the nodes (A ${byA}, B ${byB})`)
        assert.equal(got.length, COMMANDS, `the device got ${got.length} messages`)
        assert.deepEqual(
            [...got].sort((x, y) => Number(x.slice(2)) - Number(y.slice(2))),
            Array.from({ length: COMMANDS }, (_, i) => `c-${i + 1}`),
            "every command exactly once"
        )
        // order: each node queues in the order the broker hands it commands, but two nodes race
        // (PROTOCOL.md 12.3), so only what happened is reported
        const late = got.filter((m, i) => i > 0 && Number(m.slice(2)) < Number(got[i - 1]!.slice(2))).length
        t.diagnostic(`commands queued by A ${byA}, by B ${byB}; ${late} arrived after a later one`)
        const errors = nodes.flatMap(s => s.lines).filter(l => l["outcome"] === "error" || l["outcome"] === "internal-error")
        assert.deepEqual(errors, [])
    } catch (err) {
        throw new Error(`${(err as Error).message}\nmosquitto: ${broker.stderr()}`, { cause: err })
    } finally {
        await client?.close().catch(() => {})
        for (const s of nodes) s.child.kill("SIGTERM")
        await Promise.all(nodes.map(s => s.exit))
        broker.stop()
        await pg.destroy()
        rmSync(work, { recursive: true, force: true })
    }
})
