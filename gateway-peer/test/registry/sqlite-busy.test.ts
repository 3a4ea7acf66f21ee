// Issue 15: the SQLite registry's policy against a busy database and its durability setting.
// Another connection holding the write lock makes a handshake's write fail fast with
// RegistryBusy (the node answers REJECT(BUSY), connection.ts), never a multi-second
// synchronous wait that freezes every connection of the node; synchronous is FULL, set
// explicitly (the replay rule needs every commit on disk before the gateway acts on it).
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { newDevice, RegistryBusy } from "../../src/registry/registry.js"
import { BUSY_TIMEOUT_MS, SqliteRegistry } from "../../src/registry/sqlite.js"

test("a write lock held elsewhere: confirmSession and acceptGeneration fail fast with RegistryBusy", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-busy-"))
    try {
        const path = join(dir, "registry.db")
        const r = new SqliteRegistry(path, { create: true })
        const d = newDevice({ id: "00000000000000aa", name: "busy", publicKey: Buffer.alloc(32, 1), psk: Buffer.alloc(32, 2), now: 1 })
        await r.putDevice(d)
        const other = new Database(path)
        other.exec("BEGIN IMMEDIATE") // the write lock, held
        try {
            const t0 = performance.now()
            await assert.rejects(r.confirmSession(d.id, { full: true, nextPseudonym: Buffer.alloc(8, 9) }), RegistryBusy)
            await assert.rejects(r.acceptGeneration(d.id, 2), RegistryBusy)
            // the bound is the busy timeout, twice here; the old one was 5 s per call
            assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`)
            assert.ok(BUSY_TIMEOUT_MS <= 100)
            // reads are not blocked by a writer in WAL mode
            assert.equal((await r.getDevice(d.id))?.issued_generation, 1)
        } finally {
            other.exec("ROLLBACK")
            other.close()
        }
        // the lock gone, the same write succeeds and nothing was written by the refused ones
        const issued = await r.confirmSession(d.id, { full: true, nextPseudonym: Buffer.alloc(8, 9) })
        assert.equal(issued.generation, 2)
        assert.equal(r.db.pragma("synchronous", { simple: true }), 2, "synchronous = FULL")
        await r.close()
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
