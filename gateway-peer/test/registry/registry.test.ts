import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { generateKeyPair } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import { newDevice, OOB_GENERATION, pseudonym0, PseudonymTaken, type DeviceRecord, type Registry } from "../../src/registry/registry.js"
import { RegistryOpenError, SCHEMA_VERSION, SqliteRegistry } from "../../src/registry/sqlite.js"
import { Responder } from "../../src/session/responder.js"
import { obfuscateAge, writeResumeInit } from "../../src/session/resume.js"
import { mintTicket, MAX_GENERATION, TicketKeySet } from "../../src/tickets.js"
import { Code, encodeFrame, FrameType, PSEUDONYM0_LABEL } from "../../src/wire.js"
import { createHmac } from "node:crypto"
import { acceptAndConfirmContract, concurrentConfirmations, contract } from "./contract.js"

const dev = (i: number) =>
    newDevice({
        id: i.toString(16).padStart(16, "0"),
        name: `dev${i}`,
        publicKey: Buffer.alloc(32, i),
        psk: Buffer.alloc(32, 0x80 + i),
        now: 1000 + i,
    })
const P = (b: number) => Buffer.alloc(8, b)
/** files made here by better-sqlite3 directly are 0644; the registry's fix of that is not under test */
const quiet = () => {}

function tmp(): { dir: string; done: () => void } {
    const dir = mkdtempSync(join(tmpdir(), "tether-reg-"))
    return { dir, done: () => rmSync(dir, { recursive: true, force: true }) }
}

test("newDevice is pairing's state: generation 1 issued and the chain's origin, every pseudonym the fallback", () => {
    const d = dev(1)
    assert.equal(OOB_GENERATION, 1)
    assert.deepEqual([d.issued_generation, d.full_generation, d.accepted_generation, d.min_generation, d.revoked], [1, 1, 0, 0, false])
    // pseudonym0 = HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8] (PROTOCOL.md 4.4)
    const p0 = createHmac("sha256", d.psk).update(PSEUDONYM0_LABEL).digest().subarray(0, 8)
    assert.equal(PSEUDONYM0_LABEL.toString(), "tether/2 pseudonym")
    assert.deepEqual(pseudonym0(d.psk), p0)
    assert.deepEqual([d.pseudonym, d.previous_pseudonym, d.pseudonym0], [p0, p0, p0])
})

test("memory registry", async () => {
    await contract(new MemoryRegistry())
    await concurrentConfirmations(new MemoryRegistry())
    await acceptAndConfirmContract(new MemoryRegistry())
})

test("sqlite registry: contract, persistence across reopen, WAL", async () => {
    const { dir, done } = tmp()
    try {
        const path = join(dir, "registry.db")
        const r = new SqliteRegistry(path, { create: true })
        await contract(r)
        await concurrentConfirmations(r)
        await acceptAndConfirmContract(r)
        await r.close()
        const again = new SqliteRegistry(path)
        const d = await again.getDevice(dev(1).id)
        assert.equal(d?.accepted_generation, 5)
        assert.equal(d?.revoked, true)
        assert.deepEqual(d?.publicKey, Buffer.alloc(32, 1))
        assert.deepEqual(d?.pseudonym, P(0xa4))
        assert.deepEqual(d?.previous_pseudonym, P(0xa3))
        assert.equal((await again.getDeviceByPseudonym(P(0xa3)))?.id, dev(1).id, "the pseudonym index survives reopen")
        assert.equal((await again.confirmSession(dev(2).id, { full: false, resumedGeneration: 3, nextPseudonym: P(0xe1) })).generation, 4)
        // a second handle on the same file sees the first one's CAS and confirmations
        const other = new SqliteRegistry(path)
        assert.equal(await again.acceptGeneration(dev(2).id, 4), "newer")
        assert.equal(await other.acceptGeneration(dev(2).id, 4), "older")
        await assert.rejects(other.confirmSession(dev(1).id, { full: true, nextPseudonym: P(0xe1) }), PseudonymTaken)
        await other.close()
        await again.close()
        const db = new Database(path, { readonly: true })
        assert.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION)
        db.close()
    } finally {
        done()
    }
})

test("sqlite registry: missing, corrupt and foreign files give clear errors", async () => {
    const { dir, done } = tmp()
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
        const db = new Database(foreign)
        db.exec("CREATE TABLE t (x)")
        db.close()
        assert.throws(() => new SqliteRegistry(foreign, { onModeFix: quiet }), /not a Tether registry/)
        const future = join(dir, "future.db")
        const f = new Database(future)
        f.exec("CREATE TABLE devices (id TEXT)")
        f.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
        f.close()
        assert.throws(
            () => new SqliteRegistry(future, { onModeFix: quiet }),
            (e: unknown) => e instanceof RegistryOpenError && e.message.includes(`schema version ${SCHEMA_VERSION + 1}`)
        )
    } finally {
        done()
    }
})

/** A registry file as a version 1 gateway wrote it (schema 1, PROTOCOL.md version 1). */
function schema1File(path: string, rows: DeviceRecord[]): void {
    const db = new Database(path)
    db.exec(`CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        public_key BLOB NOT NULL,
        psk BLOB NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        min_generation INTEGER NOT NULL DEFAULT 0,
        issued_generation INTEGER NOT NULL DEFAULT 0,
        accepted_generation INTEGER NOT NULL DEFAULT 0,
        full_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    ) STRICT;`)
    const ins = db.prepare(
        `INSERT INTO devices (id, name, public_key, psk, revoked, min_generation, issued_generation, accepted_generation, full_generation, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
    )
    for (const d of rows)
        ins.run(
            d.id,
            d.name,
            d.publicKey,
            d.psk,
            d.revoked ? 1 : 0,
            d.min_generation,
            d.issued_generation,
            d.accepted_generation,
            d.full_generation,
            d.created_at
        )
    db.pragma("user_version = 1")
    db.close()
}

test("sqlite registry: a schema 1 file is migrated: devices kept, on pseudonym0, their old tickets refused", async () => {
    const { dir, done } = tmp()
    try {
        const path = join(dir, "registry.db")
        const s = generateKeyPair()
        const a = { ...dev(1), publicKey: s.publicKey, issued_generation: 7, accepted_generation: 5, full_generation: 3, min_generation: 2 }
        const b = { ...dev(2), revoked: true, issued_generation: 4, accepted_generation: 4, full_generation: 1, min_generation: 5 }
        schema1File(path, [a, b])

        const r = new SqliteRegistry(path, { onModeFix: quiet })
        const ma = (await r.getDevice(a.id)) as DeviceRecord
        const mb = (await r.getDevice(b.id)) as DeviceRecord
        // the pairing stays: name, keys, PSK, generations, revocation
        for (const [m, o] of [
            [ma, a],
            [mb, b],
        ] as const) {
            assert.deepEqual(
                [m.name, m.publicKey, m.psk, m.revoked, m.issued_generation, m.accepted_generation, m.full_generation, m.created_at],
                [o.name, o.publicKey, o.psk, o.revoked, o.issued_generation, o.accepted_generation, o.full_generation, o.created_at]
            )
            const p0 = pseudonym0(o.psk)
            assert.deepEqual([m.pseudonym, m.previous_pseudonym, m.pseudonym0], [p0, p0, p0], `${o.name} starts on pseudonym0`)
            assert.equal((await r.getDeviceByPseudonym(p0))?.id, o.id)
        }
        // every ticket issued so far is below the floor; a floor already higher stays
        assert.equal(ma.min_generation, 8)
        assert.equal(mb.min_generation, 5)
        assert.deepEqual(
            (await r.listDevices()).map(d => d.name),
            ["dev1", "dev2"]
        )
        const db = new Database(path, { readonly: true })
        assert.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION)
        db.close()

        // a ticket of one of the old generations (even one well-formed for version 2) is refused;
        // the full handshake with pseudonym0 is what the device does next
        const ticketKeys = TicketKeySet.create(1000)
        const responder = new Responder({ registry: r, identity: generateKeyPair(), ticketKeys, now: () => 2000 })
        const m = mintTicket({ deviceId: Buffer.from(a.id, "hex"), generation: 7, issuedAt: 1990, chainOrigin: 3, keySet: ticketKeys })
        const t = { ticket: m.ticket, secret: m.resumptionSecret }
        const init = writeResumeInit(
            t,
            Buffer.from(a.id, "hex"),
            obfuscateAge(m.resumptionSecret, 10_000, () => Buffer.alloc(4)),
            Buffer.alloc(8)
        )
        const step = await responder.receive({ type: FrameType.RESUME_INIT, body: init.body })
        assert.deepEqual(step.frames, [encodeFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))])
        assert.match(step.event?.detail ?? "", /generation 7 outside 8\.\.7/)
        assert.deepEqual(await r.getDevice(a.id), ma, "the refusal changed nothing")

        // the new columns are written and read like the others; reopening does not migrate again
        await r.confirmSession(a.id, { full: true, nextPseudonym: P(0x31) })
        await r.close()
        const again = new SqliteRegistry(path)
        const after = (await again.getDevice(a.id)) as DeviceRecord
        assert.deepEqual([after.issued_generation, after.full_generation, after.min_generation], [8, 8, 8])
        assert.deepEqual([after.pseudonym, after.previous_pseudonym], [P(0x31), pseudonym0(a.psk)])
        await again.close()
    } finally {
        done()
    }
})
