// The library entry point (README "The gateway as a library"): createGateway on a real state
// directory, driven by the Node twin of the device over loopback TCP; the events carry what the
// device sent, send() reaches it, a revocation from another process (the CLI's store handle)
// closes its session, and a closed gateway refuses further use.
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createGateway, type SessionEvent } from "../../src/app/create-gateway.js"
import type { PublishEvent } from "../../src/app/gateway-app.js"
import { pairDevice } from "../../src/cli/pair.js"
import { initStore, openStore } from "../../src/store/open.js"
import { Code } from "../../src/wire.js"
import { AppClient } from "../../peer/device-app.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"
import { until } from "./app-helpers.js"

test("createGateway: publish and session events, send() to the device, revocation from another process, close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-lib-"))
    const stateDir = join(dir, "state")
    try {
        const setup = await initStore({ stateDir, env: {} })
        const p = await pairDevice({
            registry: setup.registry,
            ticketKeys: await setup.loadTicketKeys(),
            name: "lib-dev",
            now: Math.floor(Date.now() / 1000),
        })
        const gatewayPublic = (await setup.loadIdentity()).publicKey
        await setup.close()

        const gw = await createGateway({ store: { stateDir, env: {} }, node: "lib-node", port: 0 })
        const published: PublishEvent[] = []
        const sessions: SessionEvent[] = []
        gw.on("publish", m => published.push(m))
        gw.on("session", s => sessions.push(s))
        const logs: string[] = []
        gw.on("log", l => logs.push(JSON.stringify(l)))

        const device = new AppClient(
            new TetherClient({
                pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic },
                store: new MemoryTicketStore(p.ticket),
                host: "127.0.0.1",
                port: gw.port,
                timeoutMs: 5000,
            })
        )
        const got: string[] = []
        device.app.events.on("message", m => got.push(`${m.topic}=${m.payload.toString()}`))
        const conn = await device.connect()
        device.publish("temp", Buffer.from("21.5"))
        await device.settled()
        assert.ok(await until(() => published.length === 1))
        assert.equal(published[0]?.device, "lib-dev")
        assert.equal(published[0]?.topic, "temp")
        assert.equal(published[0]?.payload.toString(), "21.5")
        assert.deepEqual(
            sessions.map(s => [s.state, s.device, s.node, s.resumed]),
            [["up", "lib-dev", "lib-node", true]],
            "the out-of-band ticket resumed"
        )
        assert.deepEqual(
            gw.sessions().map(s => s.deviceName),
            ["lib-dev"]
        )

        assert.equal(await gw.send("lib-dev", "cmd/led", "on"), 1)
        assert.ok(await until(() => got.length === 1))
        assert.deepEqual(got, ["cmd/led=on"])
        await assert.rejects(gw.send("nobody", "t", "x"), /no device named nobody/)

        // the operator revokes it from another process: the gateway closes the session
        const cli = await openStore({ stateDir, env: {} })
        await cli.registry.revoke("lib-dev")
        await cli.close()
        await device.ended()
        assert.equal(conn.closeCode, Code.REVOKED)
        assert.ok(await until(() => sessions.some(s => s.state === "down")))

        await gw.close()
        assert.throws(() => gw.port, /not running/)
        await gw.close() // twice is fine
        for (const l of logs) assert.doesNotMatch(l, new RegExp(p.psk.toString("hex")))
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("createGateway: a missing state directory is a clear error, and nothing is left open", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-lib-"))
    try {
        await assert.rejects(createGateway({ store: { stateDir: join(dir, "nothing"), env: {} }, port: 0 }), /nothing|init/)
        await assert.rejects(
            createGateway({ store: { stateDir: join(dir, "nothing"), env: {} }, port: 0, routes: { w: { url: 7 } } }),
            /url/
        )
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
