// End to end, PROTOCOL.md 9.5 and 6.9: an on-path attacker answers every resumption of one
// device with REJECT(TICKET_REJECTED) (here: the proxy spoils a byte of each RESUME_INIT's
// ticket MAC, so the real gateway itself refuses it and keeps the connection open for HS_INIT,
// as it would after an injected REJECT). Version 1 made every such connection a full handshake
// (10 of 10, 31 X25519 on the device); the fallback cap makes it 3 of 10 (r = 1, 2, 8), 2 X25519
// each on the critical path, and the other connections end with the REJECT, the device's
// ticket kept.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import type { Paired } from "tether-gateway"
import { FrameType } from "tether-gateway/wire"
import { devicePassed, runDevice, type DeviceRun } from "./harness.js"
import { FrameProxy, startRealGateway, type RealGateway } from "./tether-fixture.js"

const hexOf = (b: Buffer) => b.toString("hex")

describe("tether: injected TICKET_REJECTED, the fallback cap (real gateway, device in the simulator)", () => {
    let g: RealGateway
    let proxy: FrameProxy
    let dev: Paired
    let run: DeviceRun
    before(async () => {
        g = await startRealGateway()
        proxy = await FrameProxy.start(g.port)
        proxy.hook = f => {
            if (f.dir !== "up" || f.type !== FrameType.RESUME_INIT) return undefined
            const raw = Buffer.from(f.raw)
            raw[3 + 1 + 33 - 1] = (raw[3 + 1 + 33 - 1] as number) ^ 0x01 // the ticket MAC's last byte
            return { action: "pass", replace: raw }
        }
        dev = await g.pair("inject-device")
        run = await runDevice(
            "test/e2e/device/tether-inject.ts",
            {
                PORT: proxy.port,
                DEV_ID: hexOf(dev.deviceId),
                DEV_PRIV: hexOf(dev.s.privateKey),
                DEV_PUB: hexOf(dev.s.publicKey),
                GW_PUB: hexOf(g.state.identity.publicKey),
                PSK: hexOf(dev.psk),
                TICKET: hexOf(dev.ticket.ticket),
                SECRET: hexOf(dev.ticket.secret),
            },
            { timeoutMs: 120000 }
        )
        for (const line of run.out.split("\n")) if (/INJECT r=/.test(line)) console.log(line.replace(/^.*?INJECT/, "INJECT"))
    })
    after(async () => {
        await proxy?.close()
        await g?.close()
    })

    test("10 refused resumptions: full handshakes on r = 1, 2, 8 only, 6 X25519 on the critical path in all", () => {
        assert.ok(devicePassed(run, "inject"), run.out.split("\n").slice(-60).join("\n"))
        const lines = [...run.out.matchAll(/INJECT r=(\d+) full=(\d) x25519=(\d+)/g)].map(m => [Number(m[1]), Number(m[2]), Number(m[3])])
        assert.deepEqual(
            lines.filter(l => l[1] === 1).map(l => l[0]),
            [1, 2, 8]
        )
        assert.equal(
            lines.reduce((a, l) => a + l[2]!, 0),
            6
        )
        // the gateway saw 10 refused resumptions and 3 full handshakes, each confirmed
        assert.equal(g.outcomes("reject", "inject-device").filter(l => l["code"] === "TICKET_REJECTED").length, 10)
        assert.equal(g.outcomes("full-handshake", "inject-device").length, 3)
        assert.equal(g.outcomes("confirmed", "inject-device").length, 3)
        assert.deepEqual(
            g.delivered.filter(d => d.device === "inject-device").map(d => d.content),
            ["inject-1", "inject-2", "inject-8"]
        )
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
