// End to end, the fabric with the device in the simulator: the device link (src/link.ts, run by
// test/e2e/device/mqtt-fabric.ts in the DeviceScript simulator) against the real
// `tether-gateway serve --mqtt URL --sink-stdout` (a child process on a state `init` and `pair`
// made), over loopback TCP through a relay this test cuts, an aedes broker in-process (MQTT
// 3.1.1, the JSON envelope) and an MQTT subscriber of our own (the mqtt client):
//
// - 200 telemetry messages through 20 dropped connections and one SIGKILL of the gateway (a new
//   `serve` on the same state and port): the subscriber receives every one, in order, with at
//   most one duplicate for the crash, each named by its (stream, id); the stdout sink printed
//   them with their payloads, the ordinary log lines never;
// - 50 commands published on the broker while the device is offline (the relay refuses it):
//   queued by the gateway, they arrive at the device in order, once each, when it is back;
// - the broker stopped for 10 s during a stream (its listener closed and every connection cut,
//   then listening again on the same port): nothing is lost once it is back.
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import net, { type AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { freePort } from "tether-gateway/peer"
import { Aedes } from "aedes"
import { connectAsync, type MqttClient } from "mqtt"
import { cli, devicePassed, readSettings, runDevice, serveProcess, sleep, type DeviceRun, type Serve } from "./harness.js"

const NAME = "mqtt-dev"
const N_VOLUME = 200
const N_CMD = 50
const N_OUTAGE = 120
const OUTAGE_MS = 10000

/** aedes on a port whose listener can be closed (every connection cut) and opened again. */
async function startBroker() {
    const aedes = await Aedes.createBroker()
    const sockets = new Set<net.Socket>()
    let server: net.Server | undefined
    const listen = (port: number) =>
        new Promise<number>((resolve, reject) => {
            const s = net.createServer(sock => {
                sockets.add(sock)
                sock.on("close", () => sockets.delete(sock))
                aedes.handle(sock)
            })
            s.once("error", reject)
            s.listen(port, "127.0.0.1", () => resolve((s.address() as AddressInfo).port))
            server = s
        })
    const port = await listen(0)
    const stop = async () => {
        const s = server
        server = undefined
        if (s === undefined) return
        const closed = new Promise(r => s.close(r))
        for (const sock of sockets) sock.destroy()
        await closed
    }
    return {
        url: `mqtt://127.0.0.1:${port}`,
        stop,
        start: () => listen(port),
        close: async () => {
            await stop()
            await new Promise<void>(r => aedes.close(() => r()))
        },
    }
}

/** The radio between device and gateway: cut() drops every connection, `refuse` keeps it off. */
async function startRelay(target: number) {
    const sockets = new Set<net.Socket>()
    const relay = {
        port: 0,
        refuse: false,
        connections: 0,
        cuts: 0,
        cut() {
            if (sockets.size > 0) relay.cuts++
            for (const s of sockets) s.destroy()
        },
        close: () => new Promise<void>(r => (relay.cut(), server.close(() => r()))),
    }
    const server = net.createServer(device => {
        if (relay.refuse) return void device.destroy()
        relay.connections++
        const gateway = net.connect(target, "127.0.0.1")
        for (const s of [device, gateway]) {
            sockets.add(s)
            s.on("error", () => {})
            s.on("close", () => {
                sockets.delete(s)
                device.destroy()
                gateway.destroy()
            })
        }
        device.pipe(gateway)
        gateway.pipe(device)
    })
    await new Promise<void>(r => server.listen(0, "127.0.0.1", r))
    relay.port = (server.address() as AddressInfo).port
    return relay
}

/** One device message as the subscriber got it (the JSON envelope, PROTOCOL.md 12.3). */
interface Seen {
    topic: string
    stream: number
    id: number
    payload: string
}

/**
 * What the subscriber got on one topic is "<p>-1".."<p>-n" of one stream in order; anything else
 * is a duplicate of a message already seen, under the same (stream, id). @returns the duplicates
 */
function checkStream(got: readonly Seen[], prefix: string, n: number): number {
    const mine = got.filter(e => e.payload.startsWith(prefix + "-"))
    const seen = new Map<string, string>()
    let next = 1
    let dups = 0
    for (const e of mine) {
        const k = `${e.stream}:${e.id}`
        const before = seen.get(k)
        if (before !== undefined) {
            assert.equal(e.payload, before, `the duplicate ${k} is the same message`)
            dups++
            continue
        }
        assert.equal(e.payload, `${prefix}-${next}`, `in order: ${prefix}-${next} expected, got ${e.payload} (${k})`)
        seen.set(k, e.payload)
        next++
    }
    assert.equal(next - 1, n, `all ${n} of ${prefix} arrived (${next - 1})`)
    return dups
}

describe("the fabric with the device in the simulator: serve --mqtt, aedes, a subscriber", () => {
    let dir: string
    let broker: Awaited<ReturnType<typeof startBroker>>
    let relay: Awaited<ReturnType<typeof startRelay>>
    let sub: MqttClient
    const got: Seen[] = []
    const serves: Serve[] = []
    let run: DeviceRun
    let killedAt = 0
    let outageMs = 0
    let queuedBeforeBack = 0
    const steps: Promise<void>[] = []

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "tether-e2e-fabric-"))
        const state = join(dir, "state")
        const port = await freePort()
        cli(["init", "--state", state])
        cli(["pair", NAME, "--state", state, "--out", join(dir, "device.env"), "--port", String(port)])
        const s = readSettings(join(dir, "device.env"))
        broker = await startBroker()
        writeFileSync(join(dir, "config.json"), JSON.stringify({ mqtt: { publishTimeoutMs: 3000 } }))
        const args = ["--state", state, "--port", String(port), "--config", join(dir, "config.json"), "--mqtt", broker.url, "--sink-stdout"]
        const startServe = async () => {
            const sv = await serveProcess(args)
            serves.push(sv)
            for (let i = 0; i < 400 && !sv.lines.some(l => l["event"] === "mqtt" && l["outcome"] === "connected"); i++) await sleep(25)
            assert.ok(
                sv.lines.some(l => l["event"] === "mqtt" && l["outcome"] === "connected"),
                "serve connected to the broker"
            )
            return sv
        }
        await startServe()
        relay = await startRelay(port)
        sub = await connectAsync(broker.url, {
            clientId: `fabric-sub-${randomBytes(4).toString("hex")}`,
            clean: false,
            reconnectPeriod: 200,
        })
        sub.on("error", () => {})
        sub.on("message", (topic, payload) => {
            const e = JSON.parse(payload.toString()) as { stream: number; id: number; payload: string }
            got.push({ topic, stream: e.stream, id: e.id, payload: Buffer.from(e.payload, "base64").toString() })
        })
        await sub.subscribeAsync([`tether/${NAME}/v`, `tether/${NAME}/o`], { qos: 1 })

        const current = () => serves[serves.length - 1]!
        const onLine = (line: string) => {
            const sent = /SENT v-(\d+)/.exec(line)
            if (sent) {
                const i = Number(sent[1])
                if (i % 10 === 5) relay.cut()
                if (i === 112 && killedAt === 0) {
                    killedAt = i
                    // the gateway dies with whatever it was doing; a new one on the same state
                    const dying = current()
                    steps.push(
                        (async () => {
                            dying.child.kill("SIGKILL")
                            await dying.exit
                            await startServe()
                        })()
                    )
                }
            }
            if (line.includes("E2E-STEP offline")) {
                relay.refuse = true
                relay.cut()
                steps.push(
                    (async () => {
                        const pub = await connectAsync(broker.url, { clientId: "fabric-pub" })
                        for (let i = 1; i <= N_CMD; i++) await pub.publishAsync(`tether/${NAME}/cmd/c`, `c-${i}`, { qos: 1 })
                        await pub.endAsync()
                        const queued = () => current().lines.filter(l => l["outcome"] === "command-queued").length
                        for (let i = 0; i < 400 && queued() < N_CMD; i++) await sleep(25)
                        queuedBeforeBack = queued()
                        relay.refuse = false
                    })()
                )
            }
            if (line.includes("E2E-STEP outage"))
                steps.push(
                    (async () => {
                        await sleep(1500) // a stream is flowing
                        const t0 = Date.now()
                        await broker.stop()
                        await sleep(OUTAGE_MS)
                        await broker.start()
                        outageMs = Date.now() - t0
                    })()
                )
        }
        run = await runDevice(
            "test/e2e/device/mqtt-fabric.ts",
            {
                PORT: relay.port,
                TT_ID: s["TT_ID"]!,
                TT_SK: s["TT_SK"]!,
                TT_GW_PK: s["TT_GW_PK"]!,
                TT_PSK: s["TT_PSK"]!,
                TT_TICKET: s["TT_TICKET"]!,
                TT_RSECRET: s["TT_RSECRET"]!,
                N_VOLUME,
                N_CMD,
                N_OUTAGE,
            },
            { timeoutMs: 300000, onLine }
        )
        await Promise.allSettled(steps)
        // the subscriber may still be taking the last messages from the broker
        for (let i = 0; i < 200 && new Set(got.filter(e => e.payload.startsWith("o-")).map(e => e.id)).size < N_OUTAGE; i++) await sleep(25)
        for (const l of run.out.split("\n"))
            if (/VOLUME|COMMANDS|OUTAGE|E2E-FAIL/.test(l)) console.log(l.replace(/^.*?(VOLUME|COMMANDS|OUTAGE|E2E)/, "$1"))
        console.log(
            `RELAY connections=${relay.connections} cuts=${relay.cuts}; broker away ${outageMs} ms; serve processes ${serves.length}`
        )
    })
    after(async () => {
        for (const s of serves) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL")
        await sub?.endAsync()
        await relay?.close()
        await broker?.close()
        if (dir) rmSync(dir, { recursive: true, force: true })
    })

    test(`${N_VOLUME} messages through 20 dropped connections and a gateway SIGKILL: every one on the broker, in order, at most one duplicate`, () => {
        assert.ok(devicePassed(run, "volume"), run.out.split("\n").slice(-40).join("\n"))
        assert.equal(killedAt, 112, "the gateway was killed once")
        assert.equal(serves.length, 2)
        assert.ok(relay.cuts >= 20, `${relay.cuts} dropped connections`)
        const dups = checkStream(got, "v", N_VOLUME)
        console.log(`VOLUME duplicates at the broker: ${dups} (one crash)`)
        assert.ok(dups <= 1, `at most one duplicate for the one crash, got ${dups}`)
        assert.ok(got.every(e => e.topic === `tether/${NAME}/${e.payload.split("-")[0]}`))
    })
    test("the stdout sink printed each message with its ids and payload; the log lines carry none", () => {
        const lines = serves.flatMap(s => s.lines)
        const sunk = lines.filter(l => l["event"] === "publish")
        const v = new Set(sunk.filter(l => String(l["text"]).startsWith("v-")).map(l => `${l["stream"]}:${l["id"]}:${l["text"]}`))
        assert.equal(v.size, N_VOLUME, "every telemetry message, each (stream, id) once with its payload")
        assert.ok(sunk.every(l => l["device"] === NAME && typeof l["payload"] === "string"))
        const logs = lines.filter(l => l["event"] !== "publish")
        assert.ok(logs.some(l => l["event"] === "app" && l["outcome"] === "publish"))
        assert.doesNotMatch(JSON.stringify(logs), /v-17"|"payload"|"text"/)
        const errors = lines.filter(
            l => l["outcome"] === "internal-error" || l["event"] === "unhandled" || l["outcome"] === "protocol-error"
        )
        assert.deepEqual(errors, [])
    })
    test(`${N_CMD} commands published while the device is offline arrive in order, exactly once`, () => {
        assert.equal(queuedBeforeBack, N_CMD, "the gateway queued all of them before the device came back")
        assert.ok(devicePassed(run, "commands"), run.out.split("\n").slice(-40).join("\n"))
        const cmds = run.out
            .split("\n")
            .map(l => /CMD (c-\d+)/.exec(l)?.[1])
            .filter(x => x !== undefined)
        assert.deepEqual(
            cmds,
            Array.from({ length: N_CMD }, (_, i) => `c-${i + 1}`)
        )
    })
    test("the broker stopped for 10 s during a stream: nothing lost after it returns", () => {
        assert.ok(outageMs >= OUTAGE_MS, `the broker was away ${outageMs} ms`)
        assert.ok(devicePassed(run, "outage"), run.out.split("\n").slice(-40).join("\n"))
        const dups = checkStream(got, "o", N_OUTAGE)
        console.log(`OUTAGE duplicates at the broker: ${dups}`)
        const lines = serves.flatMap(s => s.lines)
        assert.ok(lines.some(l => l["event"] === "mqtt" && l["outcome"] === "disconnected"))
        assert.ok(lines.filter(l => l["event"] === "mqtt" && l["outcome"] === "connected").length >= 3, "connected again")
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
