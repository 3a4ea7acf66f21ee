#!/usr/bin/env node
// The main job: a gateway and a device in the DeviceScript simulator, and what happens between
// them, step by step, as it happens.
//
//   npm start       runs the scenario, then keeps the link running (telemetry) until Ctrl-C
//   npm run demo    runs the same scenario and exits 0 when every step succeeded, 1 otherwise
//
// The first run initialises a gateway and pairs a device named "demo-device" with the CLI, in
// .tether/demo (git-ignored); later runs reuse both, as a deployed device keeps its flash. The
// device is the real firmware (src/main.ts) in the simulator outside test mode, in its own
// working directory, so its flash (.tether/demo/device/.devicescript/flash/sim.bin) persists:
// its settings are written there first by a provisioning program, as `devs` deploys .env.local
// to a board. Between device and gateway sits a TCP relay that counts every frame's bytes and
// can cut the connection (the radio dropping).
//
// The gateway runs in this process through the library (createGateway, as a program embedding it
// would), bridged to an MQTT broker embedded here too (aedes, a free port): a consumer of our own
// (the mqtt client) subscribes to the device's telemetry on the broker and publishes a command to
// it, as any MQTT client could. The operator's steps run the CLI, each command printed first.
//
// Scenario: (1) the device connects: on the very first run it resumes from the out-of-band
// ticket minted by pairing, later from the ticket in its flash; (2) telemetry records flow
// device → gateway → MQTT broker → our subscriber; (3) a command published on the broker
// reaches the device; (4) the relay drops the connection and the device resumes with no X25519;
// (5) the operator expires the device's tickets (the CLI), the relay drops it again and the
// device falls back to the full handshake (two X25519 on its critical path: es is prepared while
// idle); (6) the operator queues a command (`send`) and the device makes an upstream HTTP request
// through the gateway.
//
// A step that succeeds after a hidden failure is not a success: the scenario fails on any
// PROTOCOL_ERROR in a gateway log line and on any "LINK down" of the device that the scenario
// did not cause itself (each cut of the relay accounts for one; the firmware boots "connecting":
// no LINK down before its first attempt).
import { existsSync, mkdirSync, rmSync } from "node:fs"
import http from "node:http"
import net from "node:net"
import { join } from "node:path"
import {
    assertBuilt,
    buildIn,
    cli,
    onCleanup,
    provision,
    readEnv,
    root,
    run,
    runProgram,
    say,
    scripted,
    sleep,
    startDevtoolsStandIn,
    step,
    untilInterrupted,
    UP,
    waiter,
    Watch,
} from "./lib/demo-common.mjs"
import { startConsumer, startEmbeddedBroker } from "./lib/mqtt-demo.mjs"

// TETHER_DEMO_DIR moves the demo's state elsewhere (the end-to-end test runs it in a temp dir)
const DEMO = process.env.TETHER_DEMO_DIR || join(root, ".tether", "demo")
const STATE = join(DEMO, "gateway")
const DEVICE_DIR = join(DEMO, "device")
const ENV_FILE = join(DEMO, "device.env")
const NAME = "demo-device"

/** What the scenario did not cause: each cut of the relay accounts for one "LINK down". */
const watch = new Watch()

// ---- the relay: counts frame bytes per connection and can cut it -------------------------

// The gateway's wire module: sizes, frame types and its frame decoder (undefined while the gateway
// is not built; main() says so before anything needs it).
const wire = await import("tether-gateway/wire").catch(() => undefined)
const FRAME_NAMES = wire ? Object.fromEntries(Object.entries(wire.FrameType).map(([name, type]) => [type, name])) : {}

function startRelay(targetPort) {
    const conns = new Set()
    const server = net.createServer(device => {
        const upstream = net.connect(targetPort, "127.0.0.1")
        const conn = { device, upstream, frames: [] }
        conns.add(conn)
        const tally = dir => {
            const decoder = new wire.FrameDecoder()
            let broken = false
            return chunk => {
                if (broken) return
                try {
                    for (const f of decoder.push(chunk)) conn.frames.push({ dir, type: f.type, bytes: wire.HEADER_LEN + f.body.length })
                } catch (e) {
                    // a length field no Tether peer sends: recorded, and shown in the summary of the step
                    broken = true
                    conn.frames.push({ dir, type: `bad framing (${e.message})`, bytes: 0 })
                }
            }
        }
        const up = tally("→")
        const down = tally("←")
        device.on("data", d => {
            up(d)
            upstream.write(d)
        })
        upstream.on("data", d => {
            down(d)
            device.write(d)
        })
        const end = () => {
            device.destroy()
            upstream.destroy()
            conns.delete(conn)
        }
        for (const s of [device, upstream]) {
            s.on("error", end)
            s.on("close", end)
        }
    })
    return new Promise(resolve =>
        server.listen(0, "127.0.0.1", () =>
            resolve({
                port: server.address().port,
                latest: () => [...conns].pop(),
                cut: () => {
                    for (const c of conns) {
                        c.device.destroy()
                        c.upstream.destroy()
                    }
                    conns.clear()
                },
                close: () => server.close(),
            })
        )
    )
}

/** The handshake of a connection as the relay saw it: frames and their bytes. */
function describeHandshake(conn) {
    if (!conn) return "no connection seen"
    const hs = []
    let down = 0
    let handshake = 0
    for (const f of conn.frames) {
        if (f.type === wire.FrameType.RECORD) {
            // the gateway's first record is the TICKET, sent once the device is present (its
            // first record, or accepted early data: PROTOCOL.md 6.3)
            if (f.dir === "←" && ++down === 1) hs.push(`TICKET record ${f.bytes} B`)
            continue
        }
        // RESUME_INIT without early data is RESUME_INIT_MIN_FRAME_LEN (65) bytes; anything
        // beyond is the 0-RTT early data riding in it
        const early = f.type === wire.FrameType.RESUME_INIT ? f.bytes - wire.RESUME_INIT_MIN_FRAME_LEN : 0
        hs.push(`${f.dir} ${FRAME_NAMES[f.type] || f.type} ${f.bytes - early} B${early ? ` + ${early} B early data` : ""}`)
        handshake += f.bytes - early
    }
    return `${handshake} B of handshake on the wire, framing included (${hs.join(", ")})`
}

// ---- the scenario ---------------------------------------------------------------------------

/** An operator's command: printed as typed, then run (the CLI, a process of its own). */
function operator(args) {
    say("OPERATOR", `$ tether-gateway ${args.join(" ")}`)
    const out = cli(args)
    if (out) say("", out)
    return out
}

async function main() {
    assertBuilt(wire !== undefined)
    mkdirSync(DEVICE_DIR, { recursive: true })

    // 0. gateway identity and pairing, first run only
    if (!existsSync(join(STATE, "identity.json"))) {
        say("SETUP", `a new gateway, and a new device ${NAME} paired with it:`)
        operator(["init", "--state", STATE])
        operator(["pair", NAME, "--state", STATE, "--out", ENV_FILE, "--host", "127.0.0.1", "--port", "4433"])
        rmSync(join(DEVICE_DIR, ".devicescript"), { recursive: true, force: true }) // a new device: empty flash
    } else say("SETUP", `reusing the gateway in ${STATE} and ${NAME}'s flash in ${DEVICE_DIR}`)

    // an upstream the device may reach through the gateway, and nothing else
    const upstream = http.createServer((req, res) => {
        res.setHeader("content-type", "application/json")
        res.end(JSON.stringify({ city: "Lisbon", temp: 19.5, via: req.headers["user-agent"] || "gateway" }))
    })
    await new Promise(r => upstream.listen(0, "127.0.0.1", r))
    const routes = {
        routes: {
            weather: {
                url: `http://127.0.0.1:${upstream.address().port}/weather`,
                method: "GET",
                timeoutMs: 3000,
                maxResponseBytes: 993,
                devices: ["*"],
            },
        },
    }

    // the MQTT broker, and a consumer of the device's data on it
    const broker = await startEmbeddedBroker()
    onCleanup(() => broker.close())
    say(
        "MQTT",
        `broker (aedes, embedded) on ${broker.url}; from another terminal: npx mqtt sub -h 127.0.0.1 -p ${broker.port} -t 'tether/#' -v`
    )
    const fromBroker = []
    const consumer = await startConsumer(broker.url, `tether/${NAME}/telemetry`, (topic, e) => {
        fromBroker.push(e)
        say("MQTT", `${topic} stream=${e.stream} id=${e.id} ${e.payload}`)
    })
    onCleanup(() => consumer.close())

    // the gateway, in this process through the library, on the state directory `init` and
    // `pair` made (as `tether-gateway serve --state STATE --mqtt URL` would run it)
    const { createGateway } = await import("tether-gateway")
    const log = l => {
        watch.gateway(l)
        if (l.event === "connection" || l.event === "route" || (l.event === "mqtt" && l.outcome !== "command-queued"))
            say(
                "GATEWAY",
                Object.entries(l)
                    .filter(([k, v]) => k !== "ts" && v !== undefined)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" ")
            )
    }
    const g = await createGateway({
        store: { stateDir: STATE },
        node: "demo",
        host: "127.0.0.1",
        port: 0,
        routes: routes.routes,
        mqtt: { url: broker.url },
    })
    g.on("log", log)
    onCleanup(() => g.close())
    const published = []
    g.on("publish", e => published.push(e))
    await Promise.race([g.mqtt.ready(), sleep(10000)])
    if (!g.mqtt.connected) throw new Error("the gateway did not connect to the MQTT broker")
    say("GATEWAY", `connected to the broker: device PUBLISH → tether/${NAME}/<topic>, tether/${NAME}/cmd/<topic> → device`)
    const relay = await startRelay(g.port)
    say("GATEWAY", `listening on 127.0.0.1:${g.port}; the device reaches it through a relay on ${relay.port}`)

    // the device: settings into flash, then the firmware
    const settings = readEnv(ENV_FILE)
    settings.TT_GW_HOST = "127.0.0.1"
    settings.TT_GW_PORT = relay.port
    const devtools = await startDevtoolsStandIn()
    await provision(DEVICE_DIR, settings)
    say("DEVICE", `settings of ${NAME} written to its simulated flash (ids and keys, never printed)`)
    buildIn(DEVICE_DIR, join(root, "src", "main.ts"))
    const w = waiter()
    const device = runProgram(DEVICE_DIR, line => {
        if (/^(LINK|TELEMETRY|COMMAND|RESPONSE)/.test(line)) say("DEVICE", line)
        watch.device(line)
        w.line(line)
    })
    /** The radio drops: the one kind of LINK down the scenario causes. */
    const cut = () => {
        watch.expectDowns(1)
        relay.cut()
    }
    const cleanup = async () => {
        device.kill("SIGKILL")
        devtools.close()
        relay.close()
        await g.close()
        upstream.close()
    }

    try {
        await step(watch, "the device connects (out-of-band ticket on a new device, else its stored ticket)", async () => {
            const m = await w.wait(UP, 60000, "the link to come up")
            say(
                "RESULT",
                `${m[1] === "1" ? "resumed" : "full handshake"} in ${m[2]} ms of device time with ${m[4]} X25519; ${describeHandshake(relay.latest())}`
            )
        })
        await step(watch, "telemetry flows device → gateway → MQTT broker → our subscriber", async () => {
            const t0 = published.length
            const m0 = fromBroker.length
            for (let i = 0; i < 80 && fromBroker.length < m0 + 2; i++) await sleep(250)
            if (published.length < t0 + 2) throw new Error("no telemetry reached the gateway")
            if (fromBroker.length < m0 + 2) throw new Error("the gateway got telemetry but none arrived from the MQTT broker")
            const last = fromBroker[fromBroker.length - 1]
            say(
                "RESULT",
                `the subscriber got ${fromBroker.length - m0} messages from the broker, each acknowledged to the device only after the broker's PUBACK; last: ${last.payload} (stream ${last.stream}, id ${last.id})`
            )
        })
        await step(watch, "a command published on the MQTT broker reaches the device", async () => {
            const topic = `tether/${NAME}/cmd/led`
            say("MQTT", `publish ${topic} "on" (QoS 1), as \`npx mqtt pub -h 127.0.0.1 -p ${broker.port} -q 1 -t ${topic} -m on\` would`)
            const got = w.wait(/COMMAND led=on/, 30000, "the command from the broker at the device")
            await consumer.publish(topic, "on")
            await got
            say("RESULT", "broker → gateway (stored in the device's queue before the broker's PUBACK) → device, exactly once")
        })
        await step(watch, "the radio drops: the device resumes with zero X25519", async () => {
            cut()
            const m = await w.wait(UP, 60000, "the link to come back")
            if (m[1] !== "1") throw new Error("expected a resumption")
            if (m[4] !== "0") throw new Error(`the resumption made ${m[4]} X25519 operations`)
            say("RESULT", `resumed in ${m[2]} ms of device time with 0 X25519; ${describeHandshake(relay.latest())}`)
        })
        await step(watch, "the operator expires the device's tickets: the next connection is a full handshake", async () => {
            operator(["expire-tickets", NAME, "--state", STATE])
            cut()
            const m = await w.wait(UP, 90000, "the full handshake")
            if (m[1] !== "0" || m[3] !== "1") throw new Error("expected a fallback to the full handshake")
            if (m[4] !== "2") throw new Error(`the full handshake made ${m[4]} X25519 operations, not 2`)
            say(
                "RESULT",
                `TICKET_REJECTED, then Noise KKpsk2 in ${m[2]} ms of device time with 2 X25519 (ee, se; es prepared while idle); ${describeHandshake(relay.latest())}`
            )
        })
        await step(watch, "the operator commands an upstream request: device → gateway → HTTP → device", async () => {
            const m0 = w.wait(/RESPONSE route=weather (status=(\d+)|error=(\d+))/, 30000, "the response")
            operator(["send", NAME, "request", "weather", "--state", STATE])
            const m = await m0
            if (m[2] !== "200") throw new Error(`upstream answered ${m[1]}`)
            say("RESULT", `the device got HTTP ${m[2]} from the allow-listed route "weather"; it has no other way out`)
        })
        // a late failure (a CLOSE answered to the last step's traffic) counts too
        await sleep(1000)
        watch.check()
        watch.checkAccounted()
        console.log("")
        say("DONE", "every step succeeded")
        if (!scripted) {
            say("LIVE", "the link keeps running (telemetry every 5 s); Ctrl-C to stop")
            await untilInterrupted()
        }
    } finally {
        await cleanup()
    }
}

run("demo", main)
