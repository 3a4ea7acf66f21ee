// End to end, full handshake: the device (test/e2e/device/tether-handshake.ts, one simulator
// run) against the real gateway (startGateway, a real state directory, devices paired with
// pairDevice) on loopback, through a recording proxy: two X25519 on the device's critical
// path (PROTOCOL.md 4.3), records both ways, the TICKET only after the device's first record
// (6.3), a tampered record from the gateway closes the connection without an answer; a wrong
// gateway key, a wrong device key and an unknown device (an unknown pseudonym) are refused
// with their codes, the unknown one before any X25519 on the gateway.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import { generateKeyPair, type Paired, randomBytes } from "tether-gateway"
import { FrameType } from "tether-gateway/wire"
import { devicePassed, runDevice, type DeviceRun } from "./harness.js"
import { benchLines, FrameProxy, startRealGateway, type RealGateway } from "./tether-fixture.js"

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

describe("tether: full handshake end to end (real gateway)", () => {
    let g: RealGateway
    let proxy: FrameProxy
    let dev: Paired
    let run: DeviceRun
    before(async () => {
        g = await startRealGateway({
            // "tamper-me": the proxy flips a byte in the next record to the device
            onData: (gw, device, content) => {
                if (content !== "tamper-me") return false
                let armed = true
                proxy.hook = f => {
                    if (!armed || f.dir !== "down" || f.type !== FrameType.RECORD) return undefined
                    armed = false
                    const raw = Buffer.from(f.raw)
                    raw[5] = (raw[5] as number) ^ 0x01
                    return { action: "pass", replace: raw }
                }
                gw.gw.send(device.id, Buffer.from("tampered"))
                return true
            },
        })
        proxy = await FrameProxy.start(g.port)
        dev = await g.pair("hs-device")
        run = await runDevice(
            "test/e2e/device/tether-handshake.ts",
            {
                PORT: proxy.port,
                DEV_ID: dev.deviceId.toString("hex"),
                DEV_PRIV: dev.s.privateKey.toString("hex"),
                DEV_PUB: dev.s.publicKey.toString("hex"),
                GW_PUB: g.state.identity.publicKey.toString("hex"),
                PSK: dev.psk.toString("hex"),
                OTHER_PRIV: generateKeyPair().privateKey.toString("hex"),
                UNKNOWN_ID: randomBytes(8).toString("hex"),
                UNKNOWN_PSK: randomBytes(32).toString("hex"),
            },
            { timeoutMs: 60000 }
        )
        for (const line of benchLines(run)) console.log(line)
    })
    after(async () => {
        await proxy?.close()
        await g?.close()
    })

    test("handshake with 2 X25519 on the device, TICKET after its first record, records both ways, tampered record closes the connection", () => {
        assertDevice(run, "records-and-tamper")
        assert.deepEqual(g.delivered.map(d => d.content).slice(0, 4), ["rec-0", "rec-1", "rec-2", "tamper-me"])
        const full = g.outcomes("full-handshake", "hs-device")
        assert.equal(full.length, 1)
        // the device answered nothing to the tampered record: the gateway saw the socket go,
        // no bad record and no CLOSE from it
        assert.equal(g.outcomes("bad-record").length, 0)
        assert.equal(g.outcomes("closed-by-peer", "hs-device").length, 0)
        assert.equal(g.outcomes("peer-gone", "hs-device").length, 1)
        // the handshake frames on the wire: 60 + 51 bytes
        const up = proxy.of(0, "up")
        const down = proxy.of(0, "down")
        assert.equal(up[0]!.type, FrameType.HS_INIT)
        assert.equal(down[0]!.type, FrameType.HS_RESP)
        assert.equal(up[0]!.raw.length + down[0]!.raw.length, 111)
        // the device never sends its id: HS_INIT names it by a pseudonym (4.4)
        for (const f of up) assert.equal(f.raw.indexOf(dev.deviceId), -1, "the device id on the wire")
        // the gateway's second frame is the TICKET (93 B), after the device's first record
        assert.equal(down[1]!.type, FrameType.RECORD)
        assert.equal(down[1]!.raw.length, 93)
        assert.ok(proxy.frames.indexOf(down[1]!) > proxy.frames.indexOf(up[1]!), "the TICKET came after the device's first record")
    })
    test("wrong gateway key, wrong device key, unknown device: refused with their codes", () => {
        assertDevice(run, "rejects")
        const rejects = g.logs.filter(l => l["outcome"] === "reject")
        assert.deepEqual(
            rejects.map(l => l["code"]),
            ["HANDSHAKE_FAILED", "HANDSHAKE_FAILED", "UNKNOWN_DEVICE"]
        )
        // "unknown or revoked -> REJECT(UNKNOWN_DEVICE), before any X25519 operation"
        const i = g.logs.indexOf(rejects[2]!)
        assert.equal(g.logs[i]!.dh, g.logs[i - 1]!.dh)
        assert.equal(g.outcomes("full-handshake").length, 1)
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
