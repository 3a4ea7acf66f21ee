import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MemoryRegistry } from "../../src/registry/memory.js"
import { newDevice, type Registry } from "../../src/registry/registry.js"
import { RegistryOpenError, SqliteRegistry } from "../../src/registry/sqlite.js"

const dev = (i: number) =>
    newDevice({
        id: i.toString(16).padStart(16, "0"),
        name: `dev${i}`,
        publicKey: Buffer.alloc(32, i),
        psk: Buffer.alloc(32, 0x80 + i),
        now: 1000 + i,
    })

async function contract(r: Registry): Promise<void> {
    await r.putDevice(dev(1))
    await r.putDevice(dev(2))
    assert.equal((await r.getDevice(dev(1).id))?.name, "dev1")
    assert.deepEqual((await r.getDeviceByName("dev2"))?.psk, Buffer.alloc(32, 0x82))
    assert.equal(await r.getDevice("ffffffffffffffff"), undefined)
    await assert.rejects(r.putDevice({ ...dev(3), name: "dev1" }), /taken/)
    assert.deepEqual(
        (await r.listDevices()).map(d => d.name),
        ["dev1", "dev2"]
    )

    const id = dev(1).id
    assert.equal(await r.issueGeneration(id), 1)
    assert.equal(await r.issueGeneration(id), 2)
    assert.equal(await r.acceptGeneration(id, 2), "newer")
    assert.equal(await r.acceptGeneration(id, 2), "older")
    assert.equal(await r.acceptGeneration(id, 1), "older")
    // concurrent uses of one ticket: exactly one sees "newer"
    const g = await r.issueGeneration(id)
    const verdicts = await Promise.all([1, 2, 3, 4].map(() => r.acceptGeneration(id, g)))
    assert.deepEqual(verdicts.filter(v => v === "newer").length, 1)
    await r.markFullHandshake(id, g)
    const d = await r.getDevice(id)
    assert.equal(d?.issued_generation, 3)
    assert.equal(d?.accepted_generation, 3)
    assert.equal(d?.full_generation, 3)

    // expire-tickets: every issued ticket below the floor, the device still active
    assert.equal(await r.expireTickets("dev1"), true)
    assert.equal(await r.expireTickets("nope"), false)
    const ex = await r.getDevice(id)
    assert.equal(ex?.min_generation, 4)
    assert.equal(ex?.revoked, false)

    assert.equal(await r.revoke("dev1"), true)
    assert.equal(await r.revoke("nope"), false)
    const rv = await r.getDevice(id)
    assert.equal(rv?.revoked, true)
    assert.equal(rv?.min_generation, 4)
    await assert.rejects(r.issueGeneration("00000000000000ff"), /no device/)
    await assert.rejects(r.acceptGeneration("00000000000000ff", 1), /no device/)
}

test("memory registry", async () => {
    await contract(new MemoryRegistry())
})

test("sqlite registry: contract, persistence across reopen, WAL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-reg-"))
    try {
        const path = join(dir, "registry.db")
        const r = new SqliteRegistry(path, { create: true })
        await contract(r)
        await r.close()
        const again = new SqliteRegistry(path)
        const d = await again.getDevice(dev(1).id)
        assert.equal(d?.accepted_generation, 3)
        assert.equal(d?.revoked, true)
        assert.deepEqual(d?.publicKey, Buffer.alloc(32, 1))
        assert.equal(await again.issueGeneration(dev(2).id), 1)
        // a second handle on the same file sees the first one's CAS
        const other = new SqliteRegistry(path)
        assert.equal(await again.acceptGeneration(dev(2).id, 1), "newer")
        assert.equal(await other.acceptGeneration(dev(2).id, 1), "older")
        await other.close()
        await again.close()
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("sqlite registry: missing, corrupt and foreign files give clear errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-reg-"))
    try {
        assert.throws(
            () => new SqliteRegistry(join(dir, "missing.db")),
            (e: unknown) => e instanceof RegistryOpenError && /cannot open/.test(e.message)
        )
        const junk = join(dir, "junk.db")
        writeFileSync(junk, Buffer.alloc(4096, 0x5a))
        assert.throws(
            () => new SqliteRegistry(junk),
            (e: unknown) => e instanceof RegistryOpenError && /corrupt/.test(e.message)
        )
        const foreign = join(dir, "foreign.db")
        const f = new SqliteRegistry(join(dir, "tmp.db"), { create: true })
        await f.close()
        const Database = (await import("better-sqlite3")).default
        const db = new Database(foreign)
        db.exec("CREATE TABLE t (x)")
        db.close()
        assert.throws(() => new SqliteRegistry(foreign), /not a Tether registry/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
