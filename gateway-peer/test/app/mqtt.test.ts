// The MQTT bridge (PROTOCOL.md 12.3) with a real broker (aedes in-process, MQTT 3.1.1) and the
// real mqtt client: gateway nodes (startNode on SQLite, what `serve` runs) and the Node twin of
// the device. Device PUBLISHes reach a subscriber in order through dropped connections, a node
// restart and a broker outage; the device is acknowledged only after the broker's PUBACK;
// commands published on the broker are queued durably and reach the device in order, once;
// credentials come from files and never reach a log line.
import { after, before, test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connectAsync } from "mqtt"
import { generateKeyPair } from "../../src/crypto/x25519.js"
import { randomBytes } from "../../src/crypto/random.js"
import { parseConfig, ConfigError } from "../../src/app/upstream.js"
import { startNode, type GatewayNode } from "../../src/app/node.js"
import { commandFilter, parseCommand, parseMqttConfig, topicFor, type MqttConfig } from "../../src/app/mqtt-config.js"
import { startMqttBridge } from "../../src/app/mqtt.js"
import { newDevice } from "../../src/registry/registry.js"
import type { LogLine } from "../../src/server.js"
import { initStore } from "../../src/store/open.js"
import { StoreUnavailable, type GatewayStore } from "../../src/store/types.js"
import { Code } from "../../src/wire.js"
import { MemoryTicketStore, TetherClient, type Pairing } from "../../peer/initiator.js"
import { AppClient, DeviceApp } from "../../peer/device-app.js"
import { until } from "./app-helpers.js"
import { EventEmitter } from "node:events"
import type { Io } from "../../src/cli/common.js"
import { init } from "../../src/cli/init.js"
import { serve } from "../../src/cli/serve.js"
import { checkStream, sleep, startBroker, subscriber, type Broker } from "./mqtt-helpers.js"

let work: string
before(() => {
    work = mkdtempSync(join(tmpdir(), "tether-mqtt-"))
})
after(() => rmSync(work, { recursive: true, force: true }))

let n = 0
const stateDir = () => join(work, `state${++n}`)

function mqttConfig(url: string, extra: Record<string, unknown> = {}): MqttConfig & { url: string } {
    return { ...parseMqttConfig({ publishTimeoutMs: 3000, ...extra }), url }
}

interface RunningNode {
    node: GatewayNode
    lines: LogLine[]
}

async function node(store: GatewayStore, mqtt: MqttConfig & { url: string }, port = 0): Promise<RunningNode> {
    const lines: LogLine[] = []
    const g = await startNode({ store, node: "A", host: "127.0.0.1", port, config: parseConfig({}), log: l => lines.push(l), mqtt })
    return { node: g, lines }
}

async function pair(store: GatewayStore, name: string): Promise<Pairing> {
    const s = generateKeyPair()
    const deviceId = randomBytes(8)
    const psk = randomBytes(32)
    const now = Math.floor(Date.now() / 1000)
    await store.registry.putDevice(newDevice({ id: deviceId.toString("hex"), name, publicKey: s.publicKey, psk, now }))
    return { deviceId, s, psk, gatewayPublic: (await store.loadIdentity()).publicKey }
}

/** A device that stays connected: after every end of a session (a drop, BUSY) it connects again. */
class Device {
    readonly app = new DeviceApp()
    readonly tickets = new MemoryTicketStore()
    current: AppClient | undefined
    closes: number[] = []
    #running = true
    #loop: Promise<void> | undefined
    constructor(
        readonly pairing: Pairing,
        public port: () => number
    ) {}
    client(): AppClient {
        return new AppClient(
            new TetherClient({ pairing: this.pairing, store: this.tickets, host: "127.0.0.1", port: this.port(), timeoutMs: 3000 }),
            this.app
        )
    }
    start(): void {
        this.#loop = (async () => {
            while (this.#running) {
                const c = this.client()
                try {
                    const conn = await c.connect()
                    this.current = c
                    await c.ended()
                    if (conn.closeCode !== undefined) this.closes.push(conn.closeCode)
                } catch {
                    // the gateway is away: try again
                }
                this.current = undefined
                await sleep(50)
            }
        })()
    }
    publish(topic: string, payload: string): void {
        this.app.publish(topic, Buffer.from(payload))
        this.current?.flush()
    }
    async drop(): Promise<void> {
        await this.current?.drop()
    }
    async stop(): Promise<void> {
        this.#running = false
        await this.current?.close()
        await this.#loop
    }
}

const payloadOf = (id: number) => `reading-${id}`
const errors = (r: RunningNode) => r.lines.filter(l => l["outcome"] === "error" || l["outcome"] === "internal-error")

test("config: the mqtt section is checked, unknown keys and bad values refused", () => {
    const ok = parseConfig({ mqtt: { url: "mqtt://127.0.0.1:1883", protocolVersion: 5 } })
    assert.equal(ok.mqtt?.envelope, "raw")
    assert.equal(ok.mqtt?.qos, 1)
    assert.equal(parseConfig({ mqtt: {} }).mqtt?.envelope, "json")
    for (const [bad, re] of [
        [{ mqtt: { urll: "x" } }, /unknown key urll/],
        [{ mqtt: { url: "http://x" } }, /mqtt:\/\/ or mqtts:\/\//],
        [{ mqtt: { url: "mqtt://u:pw@x" } }, /passwordFile/],
        [{ mqtt: { qos: 0 } }, /qos must be 1 or 2/],
        [{ mqtt: { protocolVersion: 3 } }, /protocolVersion/],
        [{ mqtt: { envelope: "xml" } }, /envelope/],
        [{ mqtt: { topicTemplate: "tether/{topic}" } }, /needs \{device\}/],
        [{ mqtt: { topicTemplate: "tether/+/{device}/{topic}" } }, /\+ or #/],
        [{ mqtt: { commandTemplate: "tether/{topic}/{device}" } }, /end with \{topic\}/],
        [{ mqtt: { shareGroup: "a/b" } }, /shareGroup/],
        [{ mqtt: { publishTimeoutMs: 0 } }, /publishTimeoutMs/],
        [{ mqtt: [] }, /must be an object/],
    ] as const)
        assert.throws(
            () => parseConfig(bad),
            (e: Error) => e instanceof ConfigError && re.test(e.message),
            JSON.stringify(bad)
        )
})

test("topics: the template, percent-encoding of + # % NUL, the command filter and its parse", () => {
    assert.equal(topicFor("tether/{device}/{topic}", "dev", "a/b"), "tether/dev/a/b")
    assert.equal(topicFor("tether/{device}/{topic}", "d/+#", "x+#%"), "tether/d%2F%2B%23/x%2B%23%25")
    assert.equal(commandFilter("tether/{device}/cmd/{topic}", null), "tether/+/cmd/#")
    assert.equal(commandFilter("tether/{device}/cmd/{topic}", "tether"), "$share/tether/tether/+/cmd/#")
    assert.deepEqual(parseCommand("tether/{device}/cmd/{topic}", "tether/d%2F%2B/cmd/x/y%23"), { device: "d/+", topic: "x/y#" })
    assert.equal(parseCommand("tether/{device}/cmd/{topic}", "tether/dev/cmd"), undefined)
    assert.equal(parseCommand("tether/{device}/cmd/{topic}", "other/dev/cmd/x"), undefined)
})

test("200 PUBLISHes through dropped connections and a node restart: a subscriber sees every one, in order", async () => {
    const broker = await startBroker()
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const sub = await subscriber(broker.url)
    let a = await node(store, mqttConfig(broker.url))
    const port = a.node.gateway.port
    const p = await pair(store, "meter")
    const dev = new Device(p, () => port)
    try {
        await a.node.mqtt!.ready()
        dev.start()
        for (let i = 1; i <= 200; i++) {
            dev.publish("power", payloadOf(i))
            if (i % 25 === 0) await dev.drop()
            if (i === 120) {
                // the node goes away with messages in flight, and comes back on the same store
                await a.node.close()
                a = await node(store, mqttConfig(broker.url), port)
            }
            await sleep(2)
        }
        assert.ok(await until(() => dev.app.send.unacked === 0, 20000), `the device was acknowledged (unacked ${dev.app.send.unacked})`)
        assert.ok(await until(() => new Set(sub.got.map(e => e.id)).size >= 200, 5000), `got ${sub.got.length}`)
        const dups = checkStream(sub.got, 200, payloadOf)
        assert.ok(dups <= 5, `${dups} duplicates`)
        assert.equal(sub.got[0]!.mqttTopic, "tether/meter/power")
        assert.equal(sub.got[0]!.device, "meter")
        assert.equal(sub.got[0]!.deviceId, p.deviceId.toString("hex"))
        assert.deepEqual(errors(a), [])
    } finally {
        await dev.stop()
        await a.node.close()
        await sub.close()
        await store.close()
        await broker.close()
    }
})

test("50 commands published while the device is offline arrive in order once it connects, exactly once", async () => {
    const broker = await startBroker()
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const a = await node(store, mqttConfig(broker.url))
    const p = await pair(store, "valve")
    const pub = await connectAsync(broker.url, { clientId: "operator", protocolVersion: 4 })
    const dev = new Device(p, () => a.node.gateway.port)
    const got: { id: number; topic: string; payload: string }[] = []
    dev.app.events.on("message", m => got.push({ id: m.id, topic: m.topic, payload: m.payload.toString() }))
    try {
        await a.node.mqtt!.ready()
        await sleep(100) // the subscription is in place
        // each resolves at the broker's PUBACK to the publisher
        for (let i = 0; i < 50; i++) await pub.publishAsync(`tether/valve/cmd/set/${i % 3}`, `open-${i}`, { qos: 1 })
        assert.ok(await until(async () => (await store.outbox.count(p.deviceId.toString("hex"))) === 50, 5000), "all 50 stored")
        dev.start()
        assert.ok(await until(() => got.length >= 50, 10000), `got ${got.length}`)
        await sleep(300)
        assert.deepEqual(
            got.map(m => m.payload),
            Array.from({ length: 50 }, (_, i) => `open-${i}`)
        )
        assert.deepEqual(
            got.map(m => m.topic),
            Array.from({ length: 50 }, (_, i) => `set/${i % 3}`)
        )
        assert.deepEqual(
            got.map(m => m.id),
            Array.from({ length: 50 }, (_, i) => i + 1)
        )
        assert.ok(await until(async () => (await store.outbox.count(p.deviceId.toString("hex"))) === 0, 5000), "acknowledged by the device")
        // the log names the command, never its payload
        const queued = a.lines.filter(l => l["outcome"] === "command-queued")
        assert.equal(queued.length, 50)
        assert.ok(!JSON.stringify(a.lines).includes("open-1"))
    } finally {
        await dev.stop()
        await a.node.close()
        await pub.endAsync()
        await store.close()
        await broker.close()
    }
})

test("commands the gateway cannot take are logged, acknowledged and dropped; the rest go through", async () => {
    const broker = await startBroker()
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const a = await node(store, mqttConfig(broker.url, { publishTimeoutMs: 1000 }))
    const p = await pair(store, "lamp")
    await pair(store, "gone")
    await store.registry.revoke("gone")
    const pub = await connectAsync(broker.url, { clientId: "operator2", protocolVersion: 4 })
    try {
        await a.node.mqtt!.ready()
        await sleep(100)
        await pub.publishAsync("tether/nobody/cmd/x", "secret-a", { qos: 1 })
        await pub.publishAsync("tether/gone/cmd/x", "secret-b", { qos: 1 })
        await pub.publishAsync(`tether/lamp/cmd/${"t".repeat(300)}`, "secret-c", { qos: 1 })
        await pub.publishAsync("tether/lamp/cmd/ok", "fine", { qos: 1 })
        assert.ok(await until(async () => (await store.outbox.count(p.deviceId.toString("hex"))) === 1, 5000))
        const dropped = a.lines.filter(l => l["outcome"] === "command-dropped").map(l => l["reason"])
        assert.deepEqual(dropped, ["unknown-device", "revoked", "too-long"])
        assert.ok(!/secret-/.test(JSON.stringify(a.lines)), "no payload in the log")
    } finally {
        await a.node.close()
        await pub.endAsync()
        await store.close()
        await broker.close()
    }
})

test("the broker stopped for 10 s during a stream: nothing is lost once it returns", async () => {
    const broker = await startBroker()
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const sub = await subscriber(broker.url)
    const a = await node(store, mqttConfig(broker.url))
    const p = await pair(store, "probe")
    const dev = new Device(p, () => a.node.gateway.port)
    try {
        await a.node.mqtt!.ready()
        dev.start()
        const N = 120
        for (let i = 1; i <= N; i++) {
            dev.publish("t", payloadOf(i))
            if (i === 40) {
                await broker.stop()
                const t0 = Date.now()
                // the device keeps publishing into its own queue; the gateway acknowledges none
                const acked = dev.app.send.unacked
                for (let j = 41; j <= 80; j++) {
                    dev.publish("t", payloadOf(j))
                    await sleep(100)
                }
                i = 80
                await sleep(Math.max(0, 10000 - (Date.now() - t0)))
                assert.ok(dev.app.send.unacked >= acked + 40, "nothing acknowledged while the broker is down")
                await broker.start()
            }
            await sleep(5)
        }
        assert.ok(await until(() => dev.app.send.unacked === 0, 40000), `acknowledged (unacked ${dev.app.send.unacked})`)
        assert.ok(await until(() => new Set(sub.got.map(e => e.id)).size >= N, 10000), `got ${sub.got.length}`)
        checkStream(sub.got, N, payloadOf)
        assert.ok(dev.closes.includes(Code.BUSY), `the device was told BUSY (${dev.closes.join(",")})`)
        const states = a.lines.filter(l => l["event"] === "mqtt").map(l => l["outcome"])
        assert.ok(states.includes("disconnected") && states.lastIndexOf("connected") > states.indexOf("disconnected"), states.join(","))
        // one line per change of state, not one per retry
        assert.ok(states.length < 12, states.join(","))
    } finally {
        await dev.stop()
        await a.node.close()
        await sub.close()
        await store.close()
        await broker.close()
    }
})

test("a PUBLISH is not acknowledged before the broker's PUBACK; without one in time the session ends with BUSY", async () => {
    let hold = false
    const held: (() => void)[] = []
    const broker: Broker = await startBroker({
        // the broker acknowledges a PUBLISH only after this callback
        authorizePublish: (_client, _packet, done) => {
            if (hold) held.push(() => done(null))
            else done(null)
        },
    })
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const sub = await subscriber(broker.url)
    const a = await node(store, mqttConfig(broker.url, { publishTimeoutMs: 1500 }))
    const p = await pair(store, "slow")
    const dev = new Device(p, () => a.node.gateway.port)
    try {
        await a.node.mqtt!.ready()
        dev.start()
        assert.ok(await until(() => dev.current !== undefined))
        hold = true
        dev.publish("t", payloadOf(1))
        await sleep(800)
        assert.equal(held.length, 1, "the broker has it, not yet acknowledged")
        assert.equal(dev.app.send.unacked, 1, "the gateway did not acknowledge it")
        assert.equal(sub.got.length, 0)
        assert.ok(await until(() => dev.closes.includes(Code.BUSY), 3000), "the wait is bounded: CLOSE(BUSY)")
        assert.equal(dev.app.send.unacked, 1)
        hold = false
        for (const h of held.splice(0)) h()
        assert.ok(await until(() => dev.app.send.unacked === 0, 10000), "acknowledged after the device resent it")
        assert.ok(await until(() => sub.got.length >= 1))
        await sleep(300)
        // the resent message may reach the broker twice: the same ids
        checkStream(sub.got, 1, payloadOf)
        assert.ok(a.lines.some(l => l["outcome"] === "sink-unavailable"))
    } finally {
        hold = false
        for (const h of held.splice(0)) h()
        await dev.stop()
        await a.node.close()
        await sub.close()
        await store.close()
        await broker.close()
    }
})

test("credentials come from files and never reach the log; a wrong password is refused and not logged", async () => {
    const broker = await startBroker({
        authenticate: (_client, username, password, done) => done(null, username === "gw" && password?.toString() === "s3cret-pw"),
    })
    const dir = stateDir()
    const store = await initStore({ stateDir: dir, env: {} })
    writeFileSync(join(work, "user"), "gw\n")
    writeFileSync(join(work, "pw"), "s3cret-pw\n")
    writeFileSync(join(work, "bad"), "wrong-pw\n")
    const a = await node(store, mqttConfig(broker.url, { usernameFile: join(work, "user"), passwordFile: join(work, "pw") }))
    const lines: LogLine[] = []
    const b = startMqttBridge({
        config: mqttConfig(broker.url.replace("mqtt://", "mqtt://gw:wrong-pw@"), { clientId: "b" }),
        store,
        node: "B",
        log: l => lines.push(l),
    })
    const c = startMqttBridge({
        config: mqttConfig(broker.url, { clientId: "c", usernameFile: join(work, "user"), passwordFile: join(work, "bad") }),
        store,
        node: "C",
        log: l => lines.push(l),
    })
    try {
        await a.node.mqtt!.ready()
        assert.ok(a.node.mqtt!.connected)
        assert.ok(await until(() => lines.filter(l => l["outcome"] === "error").length >= 2, 5000), JSON.stringify(lines))
        assert.ok(!b.connected && !c.connected)
        const all = JSON.stringify([...a.lines, ...lines])
        assert.ok(!all.includes("s3cret-pw") && !all.includes("wrong-pw"), all)
        assert.ok(all.includes("mqtt://gw:***@127.0.0.1"), "the URL is logged redacted")
        assert.throws(
            () =>
                startMqttBridge({ config: mqttConfig(broker.url, { passwordFile: join(work, "none") }), store, node: "D", log: () => {} }),
            /cannot read the password file .*none: ENOENT/
        )
    } finally {
        await b.close()
        await c.close()
        await a.node.close()
        await store.close()
        await broker.close()
    }
})

test("a command the store cannot take is not acknowledged: the broker redelivers it, in order, once stored", async () => {
    const broker = await startBroker()
    const store = await initStore({ stateDir: stateDir(), env: {} })
    const p = await pair(store, "pump")
    const id = p.deviceId.toString("hex")
    let failures = 1
    const flaky: GatewayStore = Object.create(store) as GatewayStore
    const outbox = Object.create(store.outbox) as GatewayStore["outbox"]
    outbox.enqueue = (...args) => {
        if (failures > 0) {
            failures--
            return Promise.reject(new StoreUnavailable("down"))
        }
        return store.outbox.enqueue(...args)
    }
    Object.defineProperty(flaky, "outbox", { value: outbox })
    const lines: LogLine[] = []
    const bridge = startMqttBridge({
        config: mqttConfig(broker.url, { clientId: "flaky" }),
        store: flaky,
        node: "F",
        log: l => lines.push(l),
    })
    const pub = await connectAsync(broker.url, { clientId: "operator3", protocolVersion: 4 })
    try {
        await bridge.ready()
        await sleep(100)
        for (let i = 0; i < 5; i++) await pub.publishAsync("tether/pump/cmd/c", `m${i}`, { qos: 1 })
        assert.ok(await until(async () => (await store.outbox.count(id)) === 5, 10000), JSON.stringify(lines))
        await sleep(500)
        const q = await store.outbox.pending(id)
        assert.deepEqual(
            q.messages.map(m => (m.kind === "message" ? m.payload.toString() : "")),
            ["m0", "m1", "m2", "m3", "m4"]
        )
        assert.ok(lines.some(l => l["outcome"] === "command-not-stored"))
    } finally {
        await bridge.close()
        await pub.endAsync()
        await store.close()
        await broker.close()
    }
})

test("serve: --mqtt is checked, wins over the file's url, is logged without its password; SIGTERM ends the MQTT client", async () => {
    const broker = await startBroker({ authenticate: (_c, u, p, done) => done(null, u === "gw" && p?.toString() === "hunter2-pw") })
    const dir = join(work, `serve${++n}`)
    const quiet: Io = { out: () => {}, err: () => {}, cwd: work }
    await init(["--state", dir], quiet)
    const lines: Record<string, unknown>[] = []
    const io: Io = { out: l => lines.push(JSON.parse(l) as Record<string, unknown>), err: () => {}, cwd: work }
    const cfg = (o: unknown) => {
        const f = join(work, `cfg${++n}.json`)
        writeFileSync(f, JSON.stringify(o))
        return f
    }
    const proc = new EventEmitter()
    await assert.rejects(
        serve(["--state", dir, "--port", "0", "--mqtt", "http://127.0.0.1:1"], io, proc),
        /--mqtt must be mqtt:\/\/ or mqtts:\/\//
    )
    await assert.rejects(serve(["--state", dir, "--port", "0", "--config", cfg({ mqtt: { qos: 1 } })], io, proc), /needs a "url"/)
    writeFileSync(join(work, "pw-file"), "hunter2-pw\n")
    await assert.rejects(
        serve(["--state", dir, "--port", "0", "--config", cfg({ mqtt: { url: broker.url, passwordFile: "no-such-file" } })], io, proc),
        (e: Error) => /cannot read the password file .*no-such-file: ENOENT/.test(e.message)
    )
    // the file's url is not used: --mqtt's is (with credentials in it)
    const running = serve(
        [
            "--state",
            dir,
            "--port",
            "0",
            "--config",
            cfg({ mqtt: { url: "mqtt://127.0.0.1:1" } }),
            "--mqtt",
            broker.url.replace("mqtt://", "mqtt://gw:hunter2-pw@"),
        ],
        io,
        proc
    )
    try {
        assert.ok(await until(() => lines.some(l => l["event"] === "mqtt" && l["outcome"] === "connected"), 5000), JSON.stringify(lines))
        const s = lines.find(l => l["event"] === "serve")
        assert.equal(s?.["mqtt"], broker.url.replace("mqtt://", "mqtt://gw:***@") + "")
    } finally {
        proc.emit("SIGTERM")
        await running
        await broker.close()
    }
    assert.ok(
        lines.some(l => l["event"] === "mqtt" && l["outcome"] === "closed"),
        "the client ended before serve returned"
    )
    assert.ok(!JSON.stringify(lines).includes("hunter2-pw"))
})
