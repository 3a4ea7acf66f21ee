// Issue 15: the group commit of one SQLite connection (src/registry/commit-group.ts). What it
// must keep: a write's promise resolves only once its transaction committed (a second
// connection sees the row by then); a write that throws is rolled back alone; a group that
// cannot commit (the write lock held elsewhere) rejects every write with its caller's mapping
// and writes nothing; the writes of one turn share one commit, and through the registry and the
// app store together (they share the node's connection).
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { commitGroup } from "../../src/registry/commit-group.js"
import { newDevice, RegistryBusy } from "../../src/registry/registry.js"
import { SqliteRegistry } from "../../src/registry/sqlite.js"
import { SQLITE_APP_SCHEMA, SqliteAppStateStore } from "../../src/store/sqlite-app.js"
import { StoreUnavailable } from "../../src/store/types.js"

function withDb(fn: (path: string, db: Database.Database) => Promise<void>): () => Promise<void> {
    return async () => {
        const dir = mkdtempSync(join(tmpdir(), "tether-group-"))
        const path = join(dir, "g.db")
        const db = new Database(path)
        db.pragma("journal_mode = WAL")
        db.pragma("busy_timeout = 20")
        db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        try {
            await fn(path, db)
        } finally {
            db.close()
            rmSync(dir, { recursive: true, force: true })
        }
    }
}

test(
    "the writes of one turn share one commit, and each resolves after it (another connection sees the row)",
    withDb(async (path, db) => {
        const g = commitGroup(db)
        assert.equal(commitGroup(db), g, "one group per connection")
        const ins = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        const reader = new Database(path, { readonly: true })
        try {
            const seen: number[] = []
            const ps = [1, 2, 3, 4, 5].map(i =>
                g
                    .run(() => ins.run(`k${i}`, i).changes)
                    .then(() => {
                        seen.push((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n)
                    })
            )
            // nothing is written before the turn ends
            assert.equal((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 0)
            await Promise.all(ps)
            assert.deepEqual(seen, [5, 5, 5, 5, 5], "every write resolved after the one commit of all five")
            assert.equal(g.commits, 1)
            assert.equal(g.writes, 5)
            // a later turn: its own commit
            await g.run(() => ins.run("k6", 6))
            assert.equal(g.commits, 2)
        } finally {
            reader.close()
        }
    })
)

test(
    "a write that throws is rolled back alone, the others of its group commit",
    withDb(async (_path, db) => {
        const g = commitGroup(db)
        const ins = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        const a = g.run(() => ins.run("a", 1))
        const bad = g.run(() => {
            ins.run("half", 2) // written, then the op fails: its savepoint undoes it
            throw new RangeError("no")
        })
        const c = g.run(() => ins.run("c", 3))
        await a
        await assert.rejects(bad, RangeError)
        await c
        const keys = (db.prepare("SELECT k FROM t ORDER BY k").all() as { k: string }[]).map(r => r.k)
        assert.deepEqual(keys, ["a", "c"])
        assert.equal(g.commits, 1)
    })
)

test(
    "the write lock held elsewhere: every write of the group rejects with its own mapping, nothing is written",
    withDb(async (path, db) => {
        const g = commitGroup(db)
        const ins = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        const other = new Database(path)
        other.exec("BEGIN IMMEDIATE")
        try {
            const busy = (e: unknown) => ((e as { code?: string }).code?.startsWith("SQLITE_BUSY") ? new RegistryBusy() : e)
            const x = g.run(() => ins.run("x", 1), busy)
            const y = g.run(
                () => ins.run("y", 2),
                () => new StoreUnavailable("busy")
            )
            await assert.rejects(x, RegistryBusy)
            await assert.rejects(y, StoreUnavailable)
        } finally {
            other.exec("ROLLBACK")
            other.close()
        }
        assert.equal((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 0)
        assert.equal(g.commits, 0)
        // the lock released: the next group commits
        await g.run(() => ins.run("z", 3))
        assert.equal(g.commits, 1)
    })
)

test("a closed database: what was queued rejects, nothing hangs", async () => {
    const db = new Database(":memory:")
    db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)")
    const g = commitGroup(db)
    const p = g.run(() => db.prepare("INSERT INTO t VALUES ('a')").run())
    db.close()
    await assert.rejects(p, /not open/)
})

test("the registry's confirmations and the app store's receiving states of one turn share one commit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-group-"))
    try {
        const r = new SqliteRegistry(join(dir, "registry.db"), { create: true })
        r.db.exec(SQLITE_APP_SCHEMA)
        const app = new SqliteAppStateStore(r.db)
        const devs = [1, 2, 3].map(i =>
            newDevice({
                id: i.toString(16).padStart(16, "0"),
                name: `g${i}`,
                publicKey: Buffer.alloc(32, i),
                psk: Buffer.alloc(32, 0x40 + i),
                now: 1,
            })
        )
        for (const d of devs) await r.putDevice(d)
        const g = commitGroup(r.db)
        const before = g.commits
        const out = await Promise.all([
            ...devs.map((d, i) => r.confirmSession(d.id, { full: true, nextPseudonym: Buffer.alloc(8, 0x70 + i) })),
            ...devs.map(d => app.put(d.id, { streamId: 7, delivered: 3 }, undefined)),
            r.acceptGeneration(devs[0]!.id, 2),
        ])
        assert.equal(g.commits - before, 1, "seven writes, one commit")
        assert.deepEqual(
            out.slice(0, 3).map(x => (x as { generation: number }).generation),
            [2, 2, 2]
        )
        assert.deepEqual(await app.get(devs[1]!.id), { streamId: 7, delivered: 3 })
        await r.close()
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
