// A gateway node (startNode, what `serve` runs) on a real store, with the system clock: its live
// view records and releases sessions, a revocation from another process closes the session, and
// (PostgreSQL) a newer session of the device on another node closes the older one. Every node's
// log is checked for errors: a live-view write that fails is logged, not thrown, so only the log
// shows it (the SQLite sessions table once refused every row, the clock being fractional).
import { after, before, test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { generateKeyPair } from "../../src/crypto/x25519.js"
import { randomBytes } from "../../src/crypto/random.js"
import { parseConfig } from "../../src/app/upstream.js"
import { startNode, type GatewayNode } from "../../src/app/node.js"
import { newDevice } from "../../src/registry/registry.js"
import type { LogLine } from "../../src/server.js"
import { initStore, openStore, type StoreSpec } from "../../src/store/open.js"
import type { GatewayStore } from "../../src/store/types.js"
import { Code } from "../../src/wire.js"
import { MemoryTicketStore, TetherClient, type Pairing } from "../../peer/initiator.js"
import { AppClient, DeviceApp } from "../../peer/device-app.js"
import { startPostgres, type PostgresServer } from "../../peer/postgres.js"
import { until } from "../app/app-helpers.js"

const KEK = "22".repeat(32)
let server: PostgresServer
let work: string

before(async () => {
    server = await startPostgres()
    work = mkdtempSync(join(tmpdir(), "tether-node-"))
})

after(async () => {
    await server?.destroy()
    rmSync(work, { recursive: true, force: true })
})

let n = 0
async function pgSpec(): Promise<StoreSpec> {
    const name = `node${++n}`
    const c = new pg.Client({ connectionString: server.url })
    await c.connect()
    await c.query(`CREATE DATABASE ${name}`)
    await c.end()
    return { stateDir: join(work, "unused"), url: server.url.replace(/\/[^/]+$/, `/${name}`), env: { TETHER_KEK: KEK } }
}
const sqliteSpec = (): StoreSpec => ({ stateDir: join(work, `state${++n}`), env: {} })

interface RunningNode {
    node: GatewayNode
    lines: LogLine[]
}

async function node(store: GatewayStore, name: string): Promise<RunningNode> {
    const lines: LogLine[] = []
    const g = await startNode({ store, node: name, host: "127.0.0.1", port: 0, config: parseConfig({}), log: l => lines.push(l) })
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

const errors = (r: RunningNode) => r.lines.filter(l => l["outcome"] === "error" || l["outcome"] === "internal-error")

for (const [backend, makeSpec] of [
    ["SQLite", async () => sqliteSpec()],
    ["PostgreSQL", pgSpec],
] as const) {
    test(`node on ${backend}: the live view records a session and releases it; a revocation from another process closes it`, async () => {
        const spec = await makeSpec()
        const store = await initStore(spec)
        const cliStore = await openStore(spec) // another process's handle (the CLI)
        const a = await node(store, "A")
        try {
            const p = await pair(cliStore, "dev")
            const tickets = new MemoryTicketStore()
            const app = new DeviceApp()
            const on = () =>
                new AppClient(
                    new TetherClient({ pairing: p, store: tickets, host: "127.0.0.1", port: a.node.gateway.port, timeoutMs: 3000 }),
                    app
                )
            const first = on()
            const c = await first.connect()
            first.publish("t", Buffer.from("hello"))
            await first.settled()
            assert.ok(
                await until(async () => (await cliStore.sessions.list()).length === 1),
                `the session is in the live view; node log: ${JSON.stringify(a.lines)}`
            )
            const [row] = await cliStore.sessions.list()
            assert.equal(row?.node, "A")
            assert.equal(row?.deviceId, p.deviceId.toString("hex"))
            assert.equal(row?.remote, "127.0.0.1")
            assert.ok(Number.isInteger(row?.since) && Math.abs((row?.since ?? 0) - Date.now()) < 60_000)
            assert.ok(!c.resumed)
            await first.close()
            assert.ok(await until(async () => (await cliStore.sessions.list()).length === 0), "released when it ended")

            const second = on()
            const again = await second.connect()
            assert.ok(again.resumed && again.earlyAccepted)
            assert.ok(await until(async () => (await cliStore.sessions.list()).length === 1))
            const t0 = Date.now()
            assert.equal(await cliStore.registry.revoke("dev"), true)
            await second.ended()
            assert.equal(again.closeCode, Code.REVOKED)
            assert.ok(Date.now() - t0 < 1000, `closed ${Date.now() - t0} ms after the revocation`)
            assert.deepEqual(errors(a), [])
        } finally {
            await a.node.close()
            await cliStore.close()
            await store.close()
        }
    })
}

test("nodes on PostgreSQL: a newer session on node B closes the device's session on node A (one per cluster)", async () => {
    const spec = await pgSpec()
    const sa = await initStore(spec)
    const sb = await openStore(spec)
    const a = await node(sa, "A")
    const b = await node(sb, "B")
    try {
        const p = await pair(sa, "roamer")
        const tickets = new MemoryTicketStore()
        const app = new DeviceApp()
        const on = (port: number) =>
            new AppClient(new TetherClient({ pairing: p, store: tickets, host: "127.0.0.1", port, timeoutMs: 3000 }), app)
        const onA = on(a.node.gateway.port)
        const ca = await onA.connect()
        onA.publish("t", Buffer.from("on A"))
        await onA.settled()
        assert.ok(await until(async () => (await sb.sessions.list()).some(s => s.node === "A")))
        const onB = on(b.node.gateway.port)
        const cb = await onB.connect()
        assert.ok(cb.resumed && cb.earlyAccepted, "node B resumes node A's ticket")
        await onA.ended()
        assert.equal(ca.closeCode, Code.SUPERSEDED, "the session on A ends")
        assert.ok(await until(async () => (await sa.sessions.list()).map(s => s.node).join() === "B"))
        assert.ok(cb.isOpen(), "the newer session stays")
        // A's notification of its (older) claim arrives late at B: the store's row is B's, so B keeps its session
        const deviceId = p.deviceId.toString("hex")
        sb.events.emit("claimed", deviceId, "A", "1")
        sb.events.emit("claimed", deviceId, "B", "0")
        await new Promise(r => setTimeout(r, 300))
        assert.ok(cb.isOpen(), "a late notification of an older claim closes nothing")
        assert.equal((await sa.sessions.get(deviceId))?.node, "B")
        await onB.close()
        assert.deepEqual([...errors(a), ...errors(b)], [])
    } finally {
        await a.node.close()
        await b.node.close()
        await sa.close()
        await sb.close()
    }
})
