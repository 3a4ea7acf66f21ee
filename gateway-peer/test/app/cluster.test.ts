// Two gateway processes on one store (PROTOCOL.md 12.1): the receiving state and the gateway's
// stream are the store's, never cached per process, so a PUBLISH that reaches two nodes (two
// sessions of the device) is delivered once, a message queued on one node is sent by the node
// holding the device's session, and what is queued survives the process that queued it. Each
// on SQLite (two connections to one file) and PostgreSQL (two pools on one database).
import { test, after, before } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { AppKind, encodeApp } from "../../src/app/codec.js"
import { GatewayApp } from "../../src/app/gateway-app.js"
import { parseConfig } from "../../src/app/upstream.js"
import { SqliteRegistry } from "../../src/registry/sqlite.js"
import { PgAppStateStore, PgOutbox, PG_APP_SCHEMA } from "../../src/store/postgres-app.js"
import type { AppStateStore, Outbox, ReceiveState } from "../../src/store/types.js"
import { DeviceApp } from "../../peer/device-app.js"
import { startPostgres, type PostgresServer } from "../../peer/postgres.js"
import { AppPipe, FakeLink, sqliteStores } from "./app-helpers.js"

interface Stores {
    receiving: AppStateStore
    outbox: Outbox
    close(): Promise<void>
}

/** A backend: `open()` gives a new handle (connection, pool) on the same shared store. */
interface Backend {
    readonly name: string
    open(): Stores
}

let server: PostgresServer
let dir: string
const backends: Backend[] = []

before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tether-cluster-"))
    const path = join(dir, "registry.db")
    await new SqliteRegistry(path, { create: true }).close()
    backends.push({ name: "SQLite", open: () => sqliteStores(path) })
    server = await startPostgres()
    const setup = new pg.Pool({ connectionString: server.url })
    await setup.query(PG_APP_SCHEMA)
    await setup.end()
    backends.push({
        name: "PostgreSQL",
        open: () => {
            const pool = new pg.Pool({ connectionString: server.url, max: 4 })
            return { receiving: new PgAppStateStore(pool), outbox: new PgOutbox(pool), close: () => pool.end() }
        },
    })
})

after(async () => {
    await server?.destroy()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

let devices = 0
/** A device id not used by another test (the stores are shared by the whole file). */
function newDevice(): { id: string; name: string } {
    devices++
    return { id: devices.toString(16).padStart(16, "0"), name: `dev-${devices}` }
}

const app = (s: Stores, device: { id: string; name: string }) =>
    new GatewayApp({
        receiving: s.receiving,
        outbox: s.outbox,
        config: parseConfig({}),
        lookup: async n => (n === device.name ? device : undefined),
    })
const stream = (id = 31, peer = 0, delivered = 0) => encodeApp({ kind: AppKind.STREAM, streamId: id, peerStreamId: peer, delivered })
const pub = (id: number) => encodeApp({ kind: AppKind.PUBLISH, id, topic: "t", payload: Buffer.from(`p${id}`) })

for (const which of ["SQLite", "PostgreSQL"]) {
    const backend = () => backends.find(b => b.name === which) as Backend

    test(`${which}: two apps on one store receive the same PUBLISH from two sessions of the device: delivered once`, async () => {
        const device = newDevice()
        const sa = backend().open()
        const sb = backend().open()
        try {
            const a = app(sa, device)
            const b = app(sb, device)
            const got: string[] = []
            a.events.on("publish", e => got.push(`A:${e.id}`))
            b.events.on("publish", e => got.push(`B:${e.id}`))
            const la = new FakeLink()
            const lb = new FakeLink()
            // both sessions open (an old connection on node A not torn down yet, a new one on B)
            a.data(device, stream(), la)
            b.data(device, stream(), lb)
            await Promise.all([a.idle(), b.idle()])
            // the device resends PUBLISH 1 on the new session (its ACK on the old one was lost)
            a.data(device, pub(1), la)
            b.data(device, pub(1), lb)
            await Promise.all([a.idle(), b.idle()])
            assert.equal(got.length, 1, `delivered once: ${got.join(" ")}`)
            // and the next one is delivered on whichever session carries it, once
            a.data(device, pub(2), la)
            b.data(device, pub(2), lb)
            await Promise.all([a.idle(), b.idle()])
            assert.deepEqual(
                got.map(g => g.slice(2)),
                ["1", "2"]
            )
            assert.deepEqual([la.closed, lb.closed], [[], []])
            // both sessions acknowledged what the store counts, never more
            for (const l of [la, lb]) assert.ok(l.sent.filter(m => m.kind === AppKind.ACK).every(m => m.id <= 2))
            assert.deepEqual(await sa.receiving.get(device.id), { streamId: 31, delivered: 2 })
        } finally {
            await sa.close()
            await sb.close()
        }
    })

    test(`${which}: a message queued through app A is sent by app B, which holds the device's session, after wake`, async () => {
        const device = newDevice()
        const sa = backend().open()
        const sb = backend().open()
        try {
            const a = app(sa, device)
            const b = app(sb, device)
            const lb = new FakeLink()
            b.data(device, stream(), lb)
            await b.idle()
            const id = await a.sendMessage(device.name, "cmd", Buffer.from("from-a"))
            assert.equal(await b.queued(device.id), 1, "stored: B sees it")
            assert.ok(!lb.sent.some(m => m.kind === AppKind.MESSAGE), "B was not told yet")
            b.wake(device.id)
            await b.idle()
            b.wake(device.id) // a second wake sends nothing twice in one session
            await b.idle()
            const msgs = lb.sent.filter(m => m.kind === AppKind.MESSAGE)
            assert.equal(msgs.length, 1)
            const m = msgs[0]
            assert.ok(m?.kind === AppKind.MESSAGE && m.id === id && m.topic === "cmd" && m.payload.toString() === "from-a")
            const gwStream = lb.sent.find(x => x.kind === AppKind.STREAM)
            assert.ok(gwStream?.kind === AppKind.STREAM)
            // the device acknowledges on B; A sees the queue empty
            b.data(device, encodeApp({ kind: AppKind.ACK, id }), lb)
            await b.idle()
            assert.equal(await a.queued(device.id), 0)
        } finally {
            await sa.close()
            await sb.close()
        }
    })

    test(`${which}: 50 queued messages survive the app and its store; a new app delivers all, once, in order`, async () => {
        const device = newDevice()
        const s1 = backend().open()
        const a1 = app(s1, device)
        for (let i = 1; i <= 50; i++) assert.equal(await a1.sendMessage(device.name, "n", Buffer.from(`m${i}`)), i)
        await a1.idle()
        await s1.close()

        const s2 = backend().open()
        try {
            const a2 = app(s2, device)
            assert.equal(await a2.queued(device.id), 50)
            const dev = new DeviceApp()
            const got: string[] = []
            dev.events.on("message", m => got.push(m.payload.toString()))
            const pipe = new AppPipe()
            await pipe.run(a2, device, dev, dev.sessionStart())
            assert.deepEqual(
                got,
                Array.from({ length: 50 }, (_, i) => `m${i + 1}`)
            )
            assert.equal(await a2.queued(device.id), 0, "all acknowledged")
            // the next session gets nothing again
            dev.sessionEnd()
            await new AppPipe().run(a2, device, dev, dev.sessionStart())
            assert.equal(got.length, 50)
            assert.deepEqual(pipe.closed, [])
        } finally {
            await s2.close()
        }
    })

    test(`${which}: the receiving state's compare-and-set under a race: of two puts from the same prev, exactly one wins`, async () => {
        const sa = backend().open()
        const sb = backend().open()
        try {
            for (let round = 0; round < 10; round++) {
                const id = newDevice().id
                const first: ReceiveState = { streamId: 7, delivered: 0 }
                // no state yet: two first writers
                const created = await Promise.all([
                    sa.receiving.put(id, first, undefined),
                    sb.receiving.put(id, { streamId: 8, delivered: 0 }, undefined),
                ])
                assert.equal(created.filter(Boolean).length, 1, `round ${round}: one insert wins`)
                const prev = (await sa.receiving.get(id)) as ReceiveState
                assert.ok(prev.streamId === (created[0] ? 7 : 8))
                const next = [
                    { streamId: prev.streamId, delivered: 1 },
                    { streamId: prev.streamId, delivered: 2 },
                ]
                const won = await Promise.all([
                    sa.receiving.put(id, next[0] as ReceiveState, prev),
                    sb.receiving.put(id, next[1] as ReceiveState, prev),
                ])
                assert.equal(won.filter(Boolean).length, 1, `round ${round}: one update wins`)
                assert.deepEqual(await sb.receiving.get(id), next[won[0] ? 0 : 1])
                // a put from a stale prev changes nothing
                assert.equal(await sa.receiving.put(id, { streamId: 1, delivered: 9 }, prev), false)
                assert.deepEqual(await sa.receiving.get(id), next[won[0] ? 0 : 1])
            }
        } finally {
            await sa.close()
            await sb.close()
        }
    })
}
