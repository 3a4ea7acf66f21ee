// End to end, resumption: the device (test/e2e/device/tether-resume.ts, one simulator run)
// against a gateway built from the gateway package's modules (tether-peer.ts): full
// handshake, drop, resumption with 0-RTT data delivered exactly once and zero X25519 on the
// device, data both ways; a first connection from an out-of-band ticket minted with the
// gateway's tickets module; an expired ticket falls back to the full handshake.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import { keyPairFromPrivate } from "tether-gateway/crypto/x25519"
import { randomBytes } from "tether-gateway/crypto/random"
import { mintTicket } from "tether-gateway/tickets"
import { Code, OOB_TICKET_LIFETIME } from "tether-gateway/wire"
import { devicePassed, runDevice, DeviceRun } from "./harness.js"
import { startTetherPeer, TetherPeer } from "./tether-peer.js"

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

const count = (xs: string[], x: string) => xs.filter(y => y === x).length

describe("tether: resumption end to end", () => {
    let peer: TetherPeer
    let run: DeviceRun
    before(async () => {
        const now = Math.floor(Date.now() / 1000)
        const gw = keyPairFromPrivate(randomBytes(32))
        const dev = keyPairFromPrivate(randomBytes(32))
        const oob = keyPairFromPrivate(randomBytes(32))
        const d = { id: randomBytes(8), publicKey: dev.publicKey, psk: randomBytes(32), issued: 0, accepted: 0 }
        const o = { id: randomBytes(8), publicKey: oob.publicKey, psk: randomBytes(32), issued: 1, accepted: 0 }
        peer = await startTetherPeer(gw, [d, o])
        // pairing mints the out-of-band ticket (PROTOCOL.md 6.7): generation 1
        const oobTicket = mintTicket({ deviceId: o.id, generation: 1, expiresAt: now + OOB_TICKET_LIFETIME, keySet: peer.keySet })
        const expired = mintTicket({ deviceId: d.id, generation: 1, expiresAt: now - 60, keySet: peer.keySet })
        run = await runDevice(
            "test/e2e/device/tether-resume.ts",
            {
                PORT: peer.port,
                DEV_ID: d.id.toString("hex"),
                DEV_PRIV: dev.privateKey.toString("hex"),
                GW_PUB: gw.publicKey.toString("hex"),
                PSK: d.psk.toString("hex"),
                OOB_DEV_ID: o.id.toString("hex"),
                OOB_DEV_PRIV: oob.privateKey.toString("hex"),
                OOB_PSK: o.psk.toString("hex"),
                OOB_TICKET: oobTicket.ticket.toString("hex"),
                OOB_SECRET: oobTicket.resumptionSecret.toString("hex"),
                EXP_TICKET: expired.ticket.toString("hex"),
                EXP_SECRET: expired.resumptionSecret.toString("hex"),
            },
            { timeoutMs: 60000 }
        )
        for (const line of run.out.split("\n")) if (line.includes("BENCH")) console.log(line.replace(/^.*BENCH/, "BENCH"))
    })
    after(async () => {
        await peer.close()
    })

    test("full handshake, drop, resumption with 0-RTT delivered once, zero X25519, data both ways", () => {
        assertDevice(run, "full-then-resume")
        assert.equal(count(peer.log.delivered, "early-1"), 1)
        assert.equal(count(peer.log.delivered, "ping-2"), 1)
        assert.equal(count(peer.log.delivered, "ping-3"), 1)
    })
    test("first connection from an out-of-band ticket", () => {
        assertDevice(run, "oob-ticket")
        assert.equal(count(peer.log.delivered, "oob-early"), 1)
    })
    test("expired ticket: TICKET_REJECTED, then the full handshake, early data sent once as a record", () => {
        assertDevice(run, "expired-ticket")
        assert.ok(peer.log.rejects.includes(Code.TICKET_REJECTED))
        assert.equal(count(peer.log.delivered, "after-expiry"), 1)
        assert.equal(peer.log.fullHandshakes, 2)
        assert.equal(peer.log.resumptions, 3)
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
