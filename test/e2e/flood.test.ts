// End to end under attack traffic: the device in the simulator keeps its session,
// its records and its resumptions working while the same gateway is flooded with garbage
// connections from this process: random bytes, oversized length fields, half frames left
// open, and connections that say nothing. The gateway closes every garbage connection itself
// (handshake timeout, bad length, protocol error) and is left with no connection slots in use.
import assert from "node:assert/strict"
import net from "node:net"
import { after, before, describe, test } from "node:test"
import { type Paired, randomBytes } from "tether-gateway"
import { devicePassed, runDevice, sleep, type DeviceRun } from "./harness.js"
import { startRealGateway, type RealGateway } from "./tether-fixture.js"

const ROUNDS = 6
const FLOOD_CONNECTIONS = 1500

/** One garbage connection of kind `k`; resolves when the gateway closed it. */
function garbage(port: number, k: number): Promise<void> {
    return new Promise(resolve => {
        const s = net.connect(port, "127.0.0.1")
        s.on("error", () => resolve())
        s.on("close", () => resolve())
        s.on("data", () => {})
        s.on("connect", () => {
            if (k === 0)
                s.write(randomBytes(64)) // noise
            else if (k === 1)
                s.write(Buffer.from([0xff, 0xff, 0x01])) // oversized length
            else if (k === 2) s.write(Buffer.from([0x00, 0x3c, 0x01, 0x01])) // half an HS_INIT, then silence
            // k === 3: silence until the handshake timeout
        })
    })
}

describe("tether: a device keeps working through a garbage flood (real gateway)", () => {
    let g: RealGateway
    let dev: Paired
    let run: DeviceRun
    let flood: Promise<void> | undefined
    let floodDone = false
    let closedByGateway = 0
    let floodRunningAtDone = false
    before(async () => {
        // short handshake timeout so silent connections are reaped within the test; a per-source
        // limit high enough that the device (same loopback address) is not refused by it
        g = await startRealGateway({ policy: { handshakeTimeoutMs: 1500, perSourceAttempts: 100000 } })
        dev = await g.pair("flood-device")
        run = await runDevice(
            "test/e2e/device/tether-flood.ts",
            {
                PORT: g.port,
                DEV_ID: dev.deviceId.toString("hex"),
                DEV_PRIV: dev.s.privateKey.toString("hex"),
                DEV_PUB: dev.s.publicKey.toString("hex"),
                GW_PUB: g.state.identity.publicKey.toString("hex"),
                PSK: dev.psk.toString("hex"),
                ROUNDS,
            },
            {
                timeoutMs: 90000,
                onLine: line => {
                    if (line.includes("E2E-STEP done")) floodRunningAtDone = flood !== undefined && !floodDone
                    if (!line.includes("E2E-STEP flood") || flood) return
                    // 1,500 garbage connections, 150 at a time, while the device works
                    flood = (async () => {
                        for (let i = 0; i < FLOOD_CONNECTIONS; i += 150) {
                            await Promise.all(Array.from({ length: 150 }, (_, j) => garbage(g.port, (i + j) % 4)))
                            closedByGateway += 150
                        }
                        floodDone = true
                    })()
                },
            }
        )
        if (flood) await flood
    })
    after(async () => {
        await g.close()
    })

    test("the flood ran while the device was connected", () => {
        assert.ok(flood, "the device never signalled the start of the flood")
        assert.ok(floodDone)
        assert.ok(floodRunningAtDone, "the device finished its rounds while the flood was still running")
        assert.equal(closedByGateway, FLOOD_CONNECTIONS)
    })

    test(`the device exchanged records and resumed ${ROUNDS} times with no X25519`, () => {
        assert.ok(devicePassed(run, "flood"), run.out.split("\n").slice(-60).join("\n"))
        const mine = g.delivered.filter(d => d.device === "flood-device").map(d => d.content)
        assert.equal(mine.length, ROUNDS * 5, "every record delivered once")
        assert.equal(new Set(mine).size, mine.length)
    })

    test("the gateway closed every garbage connection and holds no slot afterwards", async () => {
        await sleep(200)
        const s = g.gw.stats
        assert.equal(s.connections, 0, JSON.stringify(s))
        assert.equal(s.handshakes, 0, JSON.stringify(s))
        const outcomes = new Set(g.logs.map(l => String(l.outcome)))
        assert.ok(outcomes.has("handshake-timeout") && outcomes.has("bad-frame-length"), [...outcomes].join(","))
    })
})
