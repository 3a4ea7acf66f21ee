// The Outbox contract (src/store/types.ts), run against every implementation: in memory, SQLite
// (two connections to one file) and PostgreSQL (two pools on one database). `a` and `b` are two
// handles on the same store, as two nodes of a cluster would hold them.
import { test, after, before } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { SqliteRegistry } from "../../src/registry/sqlite.js"
import { MemoryOutbox } from "../../src/store/memory-app.js"
import { PgOutbox, PG_APP_SCHEMA } from "../../src/store/postgres-app.js"
import { QueueFull, type OutboundMessage, type Outbox } from "../../src/store/types.js"
import { startPostgres, type PostgresServer } from "../../peer/postgres.js"
import { sqliteStores } from "./app-helpers.js"

interface Pair {
    a: Outbox
    b: Outbox
    close(): Promise<void>
}

let server: PostgresServer
let dir: string
const impls = new Map<string, () => Pair>()

before(async () => {
    const mem = new MemoryOutbox()
    impls.set("memory", () => ({ a: mem, b: mem, close: async () => {} }))
    dir = mkdtempSync(join(tmpdir(), "tether-outbox-"))
    const path = join(dir, "registry.db")
    await new SqliteRegistry(path, { create: true }).close()
    impls.set("SQLite", () => {
        const x = sqliteStores(path)
        const y = sqliteStores(path)
        return {
            a: x.outbox,
            b: y.outbox,
            close: async () => {
                await x.close()
                await y.close()
            },
        }
    })
    server = await startPostgres()
    const setup = new pg.Pool({ connectionString: server.url })
    await setup.query(PG_APP_SCHEMA)
    await setup.end()
    impls.set("PostgreSQL", () => {
        const p1 = new pg.Pool({ connectionString: server.url, max: 4 })
        const p2 = new pg.Pool({ connectionString: server.url, max: 4 })
        return {
            a: new PgOutbox(p1),
            b: new PgOutbox(p2),
            close: async () => {
                await p1.end()
                await p2.end()
            },
        }
    })
})

after(async () => {
    await server?.destroy()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

let n = 0
const dev = () => (++n).toString(16).padStart(16, "a")
const msg = (topic: string, payload = topic): OutboundMessage => ({ kind: "message", topic, payload: Buffer.from(payload) })
const resp = (requestId: number, status = 200): OutboundMessage => ({
    kind: "response",
    requestId,
    status,
    payload: Buffer.from(`r${requestId}`),
})

async function using(name: string, fn: (p: Pair) => Promise<void>): Promise<void> {
    const p = (impls.get(name) as () => Pair)()
    try {
        await fn(p)
    } finally {
        await p.close()
    }
}

for (const name of ["memory", "SQLite", "PostgreSQL"]) {
    test(`${name}: enqueue numbers 1, 2, 3 in one stream; pending returns them in order, as stored`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            assert.deepEqual(await a.pending(d), { streamId: 0, nextId: 1, messages: [] }, "no stream yet")
            assert.equal(await a.count(d), 0)
            const q1 = await a.enqueue(d, msg("t1", "p1"), 10)
            const q2 = await b.enqueue(d, resp(77, 503), 10)
            const q3 = await a.enqueue(d, msg("t3", ""), 10)
            assert.deepEqual([q1.id, q2.id, q3.id], [1, 2, 3])
            assert.ok(q1.streamId !== 0 && q1.streamId === q2.streamId && q2.streamId === q3.streamId)
            assert.ok(Number.isInteger(q1.streamId) && q1.streamId > 0 && q1.streamId < 2 ** 32)
            const p = await b.pending(d)
            assert.equal(p.streamId, q1.streamId)
            assert.equal(p.nextId, 4)
            assert.deepEqual(p.messages, [
                { kind: "message", id: 1, topic: "t1", payload: Buffer.from("p1") },
                { kind: "response", id: 2, requestId: 77, status: 503, payload: Buffer.from("r77") },
                { kind: "message", id: 3, topic: "t3", payload: Buffer.alloc(0) },
            ])
            assert.deepEqual(
                (await a.pending(d, 1)).messages.map(m => m.id),
                [2, 3]
            )
            assert.deepEqual((await a.pending(d, 3)).messages, [])
            assert.equal(await b.count(d), 3)
            assert.equal(await b.count(dev()), 0, "another device has none")
        }))

    test(`${name}: the cap: enqueue past max throws QueueFull and stores nothing; an ACK makes room`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            for (let i = 0; i < 3; i++) await a.enqueue(d, msg(`t${i}`), 3)
            await assert.rejects(b.enqueue(d, msg("over"), 3), (e: unknown) => e instanceof QueueFull && e.deviceId === d)
            assert.equal(await a.count(d), 3)
            assert.equal((await a.pending(d)).nextId, 4, "no id was used")
            const { streamId } = await a.pending(d)
            assert.equal(await b.ack(d, streamId, 1, true), 1)
            assert.equal((await a.enqueue(d, msg("t3"), 3)).id, 4)
        }))

    test(`${name}: enqueueAll stores, in order and in one stream, as many as fit; the rest not at all`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            assert.equal(await a.enqueueAll(d, [], 5), 0)
            assert.equal((await a.pending(d)).streamId, 0, "an empty batch makes no stream")
            await a.enqueue(d, msg("m1"), 5)
            assert.equal(await b.enqueueAll(d, [resp(1), resp(2), resp(3), resp(4), resp(5), resp(6)], 5), 4)
            const p = await a.pending(d)
            assert.equal(p.nextId, 6, "ids for the stored ones only")
            assert.deepEqual(
                p.messages.map(m => (m.kind === "response" ? `${m.id}:r${m.requestId}` : `${m.id}:${m.topic}`)),
                ["1:m1", "2:r1", "3:r2", "4:r3", "5:r4"]
            )
            assert.equal(await a.enqueueAll(d, [resp(7)], 5), 0, "full: nothing stored")
            assert.equal(await b.count(d), 5)
            const before = await a.total()
            const fresh = dev()
            assert.equal(await b.enqueueAll(fresh, [resp(8), msg("m9")], 5), 2, "a device without a stream gets one")
            assert.equal(await b.total(), before + 2, "total counts every device's messages")
            const f = await a.pending(fresh)
            assert.ok(f.streamId > 0)
            assert.deepEqual(
                f.messages.map(m => m.id),
                [1, 2]
            )
        }))

    test(`${name}: ack: cumulative; strict refuses an id never sent; non-strict clamps; another stream's ACK releases nothing`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            for (let i = 1; i <= 5; i++) await a.enqueue(d, msg(`t${i}`), 10)
            const { streamId } = await a.pending(d)
            assert.equal(await a.ack(d, streamId ^ 1 || 1, 5, true), 0, "not the current stream")
            assert.equal(await a.ack(d, streamId, 2, true), 2)
            assert.equal(await b.ack(d, streamId, 2, true), 0, "again: nothing more")
            await assert.rejects(a.ack(d, streamId, 6, true), RangeError)
            assert.equal(await a.count(d), 3, "a refused ACK released nothing")
            assert.equal(await b.ack(d, streamId, 99, false), 3, "non-strict: up to the last sent")
            assert.equal(await a.count(d), 0)
            assert.equal((await a.enqueue(d, msg("t6"), 10)).id, 6, "numbering goes on")
            assert.equal(await a.ack(dev(), streamId, 1, false), 0, "a device without a stream")
        }))

    test(`${name}: restart: a fresh stream id, the unacknowledged renumbered from 1; with dropResponses the RESPONSEs go first`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            await a.enqueue(d, msg("m1"), 10)
            await a.enqueue(d, resp(1), 10)
            await a.enqueue(d, msg("m3"), 10)
            await a.enqueue(d, resp(2), 10)
            await a.enqueue(d, msg("m5"), 10)
            const s0 = (await a.pending(d)).streamId
            assert.equal(await a.ack(d, s0, 1, true), 1)
            const r1 = await b.restart(d, false)
            assert.notEqual(r1.streamId, s0)
            assert.equal(r1.dropped, 0)
            assert.deepEqual(
                r1.messages.map(m => [m.id, m.kind]),
                [
                    [1, "response"],
                    [2, "message"],
                    [3, "response"],
                    [4, "message"],
                ]
            )
            assert.equal(r1.nextId, 5)
            assert.deepEqual(await a.pending(d), { streamId: r1.streamId, nextId: 5, messages: r1.messages })
            assert.equal(await a.ack(d, s0, 4, true), 0, "the old stream's ACK releases nothing")
            const r2 = await a.restart(d, true)
            assert.notEqual(r2.streamId, r1.streamId)
            assert.equal(r2.dropped, 2)
            assert.deepEqual(r2.messages, [
                { kind: "message", id: 1, topic: "m3", payload: Buffer.from("m3") },
                { kind: "message", id: 2, topic: "m5", payload: Buffer.from("m5") },
            ])
            assert.equal(r2.nextId, 3)
            const next = await b.enqueue(d, msg("m6"), 10)
            assert.deepEqual([next.id, next.streamId], [3, r2.streamId])
            assert.equal(await b.count(d), 3)
            // a device with no stream gets one
            const e = dev()
            const r3 = await a.restart(e, true)
            assert.ok(r3.streamId !== 0)
            assert.deepEqual([r3.nextId, r3.messages.length, r3.dropped], [1, 0, 0])
            assert.equal((await b.pending(e)).streamId, r3.streamId)
        }))

    test(`${name}: clear removes the device's stream and messages, nobody else's`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            const o = dev()
            await a.enqueue(d, msg("x"), 10)
            await a.enqueue(o, msg("y"), 10)
            await b.clear(d)
            assert.deepEqual(await a.pending(d), { streamId: 0, nextId: 1, messages: [] })
            assert.equal(await a.count(o), 1)
        }))

    test(`${name}: concurrent enqueues through two handles get consecutive unique ids`, () =>
        using(name, async ({ a, b }) => {
            const d = dev()
            const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).enqueue(d, msg(`c${i}`), 100)))
            assert.deepEqual(
                ids.map(q => q.id).sort((x, y) => x - y),
                Array.from({ length: 40 }, (_, i) => i + 1)
            )
            assert.equal(new Set(ids.map(q => q.streamId)).size, 1, "one stream")
            const p = await b.pending(d)
            assert.deepEqual(
                p.messages.map(m => m.id),
                Array.from({ length: 40 }, (_, i) => i + 1)
            )
            // each id carries the message that got it
            for (const q of ids)
                assert.equal(
                    p.messages[q.id - 1]?.kind === "message" && p.messages[q.id - 1]?.payload.toString(),
                    (q as { payload: Buffer }).payload.toString()
                )
        }))
}
