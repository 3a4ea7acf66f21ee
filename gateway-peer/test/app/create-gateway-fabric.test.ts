// The library entry point with what a program embeds it for: createGateway with the MQTT bridge
// (a real aedes broker in-process) and a durable sink of its own, driven by the Node twin of the
// device over loopback TCP; and the watching it includes: a ticket key rotated by another
// process on the same state (as `tether-gateway rotate-ticket-key` does) is taken into the
// running key set, and the device's next ticket is minted under it.
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connectAsync } from "mqtt"
import { createGateway } from "../../src/app/create-gateway.js"
import type { SinkMessage } from "../../src/app/gateway-app.js"
import { pairDevice, type Paired } from "../../src/cli/pair.js"
import type { LogLine } from "../../src/server.js"
import { initStore, openStore } from "../../src/store/open.js"
import { AppClient } from "../../peer/device-app.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"
import { until } from "./app-helpers.js"
import { startBroker, subscriber } from "./mqtt-helpers.js"

async function setup(dir: string): Promise<{ stateDir: string; p: Paired; gatewayPublic: Buffer }> {
    const stateDir = join(dir, "state")
    const s = await initStore({ stateDir, env: {} })
    const p = await pairDevice({
        registry: s.registry,
        ticketKeys: await s.loadTicketKeys(),
        name: "lib-dev",
        now: Math.floor(Date.now() / 1000),
    })
    const gatewayPublic = (await s.loadIdentity()).publicKey
    await s.close()
    return { stateDir, p, gatewayPublic }
}

function device(p: Paired, gatewayPublic: Buffer, port: number, store = new MemoryTicketStore(p.ticket)): AppClient {
    return new AppClient(
        new TetherClient({
            pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic },
            store,
            host: "127.0.0.1",
            port,
            timeoutMs: 5000,
        })
    )
}

test("createGateway with mqtt and a sink of its own: telemetry on the broker, a command from it to the device", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-lib-mqtt-"))
    const broker = await startBroker()
    try {
        const { stateDir, p, gatewayPublic } = await setup(dir)
        const sunk: SinkMessage[] = []
        const gw = await createGateway({
            store: { stateDir, env: {} },
            node: "lib",
            port: 0,
            mqtt: { url: broker.url, publishTimeoutMs: 2000 },
            sinks: [async batch => void sunk.push(...batch)],
        })
        try {
            await gw.mqtt!.ready()
            const sub = await subscriber(broker.url, "tether/lib-dev/telemetry")
            const d = device(p, gatewayPublic, gw.port)
            const got: string[] = []
            d.app.events.on("message", m => got.push(`${m.topic}=${m.payload.toString()}`))
            await d.connect()
            for (let i = 1; i <= 3; i++) d.publish("telemetry", Buffer.from(`{"n":${i}}`))
            await d.settled()
            assert.ok(await until(() => sub.got.length === 3))
            assert.deepEqual(
                sub.got.map(e => [e.mqttTopic, e.id, e.payload]),
                [1, 2, 3].map(i => ["tether/lib-dev/telemetry", i, `{"n":${i}}`])
            )
            assert.deepEqual(
                sunk.map(m => [m.id, m.stream]),
                sub.got.map(e => [e.id, e.stream]),
                "the sink had the same messages, the same ids"
            )
            const pub = await connectAsync(broker.url, { clientId: "lib-pub" })
            await pub.publishAsync("tether/lib-dev/cmd/led", "on", { qos: 1 })
            await pub.endAsync()
            assert.ok(await until(() => got.length === 1, 5000))
            assert.deepEqual(got, ["led=on"])
            await d.close()
            await sub.close()
        } finally {
            await gw.close()
        }
        await assert.rejects(createGateway({ store: { stateDir, env: {} }, port: 0, mqtt: { url: "http://x" } }), /mqtt:\/\/ or mqtts:\/\//)
    } finally {
        await broker.close()
        rmSync(dir, { recursive: true, force: true })
    }
})

test("createGateway follows a ticket-key rotation made by another process: the next ticket is under the new key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-lib-rot-"))
    try {
        const { stateDir, p, gatewayPublic } = await setup(dir)
        const gw = await createGateway({ store: { stateDir, env: {} }, node: "lib", port: 0 })
        const logs: LogLine[] = []
        gw.on("log", l => logs.push(l))
        try {
            const tickets = new MemoryTicketStore(p.ticket)
            const d1 = device(p, gatewayPublic, gw.port, tickets)
            await d1.connect()
            d1.publish("t", Buffer.from("1"))
            await d1.settled()
            await d1.close()
            const before = tickets.current()!.ticket[0]
            // the operator's rotate-ticket-key, from another process on the same state directory
            const cli = await openStore({ stateDir, env: {} })
            const fresh = await cli.updateTicketKeys(keys => keys.rotate(Math.floor(Date.now() / 1000), { kind: "session" }))
            await cli.close()
            assert.notEqual(fresh.id, before)
            assert.ok(
                await until(
                    () => logs.some(l => l["event"] === "ticket-key" && l["outcome"] === "rotated" && l["keyId"] === fresh.id),
                    15000
                ),
                JSON.stringify(logs)
            )
            const d2 = device(p, gatewayPublic, gw.port, tickets)
            await d2.connect()
            d2.publish("t", Buffer.from("2"))
            await d2.settled()
            assert.ok(await until(() => tickets.current()!.ticket[0] === fresh.id), "the new ticket's key_id is the rotated key's")
            await d2.close()
        } finally {
            await gw.close()
        }
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
