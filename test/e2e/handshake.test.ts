// End to end, full handshake: the device (test/e2e/device/tether-handshake.ts, one simulator
// run) against a gateway built from the gateway package's modules (tether-peer.ts) on
// loopback: records both ways, a tampered record closes, a wrong gateway key, a wrong device
// key and an unknown device are refused with their codes.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import { keyPairFromPrivate } from "tether-gateway/crypto/x25519"
import { randomBytes } from "tether-gateway/crypto/random"
import { Code } from "tether-gateway/wire"
import { devicePassed, runDevice, DeviceRun } from "./harness.js"
import { startTetherPeer, TetherPeer } from "./tether-peer.js"

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

describe("tether: full handshake end to end", () => {
    let peer: TetherPeer
    let run: DeviceRun
    before(async () => {
        const gw = keyPairFromPrivate(randomBytes(32))
        const dev = keyPairFromPrivate(randomBytes(32))
        const id = randomBytes(8)
        const psk = randomBytes(32)
        peer = await startTetherPeer(gw, [{ id, publicKey: dev.publicKey, psk, issued: 0, accepted: 0 }])
        run = await runDevice(
            "test/e2e/device/tether-handshake.ts",
            {
                PORT: peer.port,
                DEV_ID: id.toString("hex"),
                DEV_PRIV: dev.privateKey.toString("hex"),
                GW_PUB: gw.publicKey.toString("hex"),
                PSK: psk.toString("hex"),
                OTHER_PRIV: randomBytes(32).toString("hex"),
                UNKNOWN_ID: randomBytes(8).toString("hex"),
            },
            { timeoutMs: 60000 }
        )
        for (const line of run.out.split("\n")) if (line.includes("BENCH")) console.log(line.replace(/^.*BENCH/, "BENCH"))
    })
    after(async () => {
        await peer.close()
    })

    test("handshake, records both ways, tampered record closes the connection", () => {
        assertDevice(run, "records-and-tamper")
        assert.deepEqual(peer.log.delivered.slice(0, 4), ["rec-0", "rec-1", "rec-2", "tamper-me"])
        assert.equal(peer.log.badRecords, 0, "the device answered nothing to the tampered record")
    })
    test("wrong gateway key, wrong device key, unknown device: refused with their codes", () => {
        assertDevice(run, "rejects")
        assert.deepEqual(peer.log.rejects, [Code.HANDSHAKE_FAILED, Code.HANDSHAKE_FAILED, Code.UNKNOWN_DEVICE])
        assert.equal(peer.log.fullHandshakes, 1)
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
