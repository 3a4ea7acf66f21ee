import { test } from "node:test"
import assert from "node:assert/strict"
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { IDENTITY_FILE, initState, loadState, StateError, TICKET_KEYS_FILE, type ModeFix } from "../src/state.js"

test("initState writes 0600 files, refuses to overwrite; loadState reads them back", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tether-state-")), "state")
    try {
        const s = initState(dir, { now: 1000 })
        for (const f of [IDENTITY_FILE, TICKET_KEYS_FILE]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600)
        assert.throws(() => initState(dir), /refusing to overwrite/)
        const l = loadState(dir)
        assert.deepEqual(l.identity.publicKey, s.identity.publicKey)
        assert.deepEqual(
            l.ticketKeys.keys.map(k => [k.id, k.kind]),
            [
                [0, "session"],
                [1, "oob"],
            ],
            "a new state has a session key and an out-of-band key"
        )
        l.ticketKeys.rotate(2000)
        l.saveTicketKeys()
        assert.equal(statSync(join(dir, TICKET_KEYS_FILE)).mode & 0o777, 0o600)
        assert.equal(loadState(dir).ticketKeys.current.id, 2)
        assert.equal(loadState(dir).ticketKeys.currentOf("oob").id, 1)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("loadState upgrades a version 1 ticket key file once: its keys kept as session keys, an out-of-band key added, written back 0600", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tether-state-")), "state")
    try {
        initState(dir, { now: 1000 })
        const path = join(dir, TICKET_KEYS_FILE)
        const v1 = {
            version: 1,
            keys: [
                { id: 7, key: "aa".repeat(32), created_at: 900, retire_at: 900 + 7 * 86400 },
                { id: 8, key: "bb".repeat(32), created_at: 950, retire_at: null },
            ],
        }
        writeFileSync(path, JSON.stringify(v1), { mode: 0o600 })
        const l = loadState(dir)
        assert.deepEqual(
            l.ticketKeys.keys.map(k => [k.id, k.kind, k.retireAt]),
            [
                [7, "session", 900 + 7 * 86400],
                [8, "session", undefined],
                [9, "oob", undefined],
            ]
        )
        assert.equal(l.ticketKeys.current.key.toString("hex"), "bb".repeat(32), "the version 1 current key still signs")
        const written = JSON.parse(readFileSync(path, "utf8"))
        assert.equal(written.version, 2, "the file is written back as version 2")
        assert.deepEqual(
            written.keys.map((k: { id: number; kind: string }) => [k.id, k.kind]),
            [
                [7, "session"],
                [8, "session"],
                [9, "oob"],
            ]
        )
        assert.equal(statSync(path).mode & 0o777, 0o600)
        // the next start reads version 2: the same out-of-band key, no second one
        const again = loadState(dir)
        assert.equal(again.ticketKeys.keys.length, 3)
        assert.deepEqual(again.ticketKeys.currentOf("oob").key, l.ticketKeys.currentOf("oob").key)
        assert.equal(readFileSync(path, "utf8"), JSON.stringify(written, null, 4) + "\n", "a version 2 file is not rewritten")
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("loadState: missing and corrupt state give clear errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-state-"))
    try {
        assert.throws(
            () => loadState(join(dir, "nope")),
            (e: unknown) => e instanceof StateError && /no state directory/.test(e.message)
        )
        assert.throws(() => loadState(dir), /identity missing/)
        initState(join(dir, "s"))
        writeFileSync(join(dir, "s", IDENTITY_FILE), "{not json", { mode: 0o600 })
        assert.throws(() => loadState(join(dir, "s")), /identity is corrupt/)
        initState(join(dir, "t"))
        chmodSync(join(dir, "t", TICKET_KEYS_FILE), 0o644)
        assert.throws(() => loadState(join(dir, "t")), /readable by others/)
        chmodSync(join(dir, "t", TICKET_KEYS_FILE), 0o600)
        writeFileSync(join(dir, "t", TICKET_KEYS_FILE), JSON.stringify({ version: 1, keys: [] }))
        assert.throws(() => loadState(join(dir, "t")), /ticket keys are corrupt/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("modes: a state directory that existed 0755 and files made 0644 are tightened at every start, one line per path", async () => {
    const { SqliteRegistry } = await import("../src/registry/sqlite.js")
    const { SqliteAppStateStore, SQLITE_APP_SCHEMA } = await import("../src/store/sqlite-app.js")
    const { default: Database } = await import("better-sqlite3")
    const { REGISTRY_FILE } = await import("../src/state.js")
    const root = mkdtempSync(join(tmpdir(), "tether-modes-"))
    const mode = (p: string) => statSync(p).mode & 0o777
    try {
        // init into a directory the operator made beforehand, 0755
        const dir = join(root, "state")
        mkdirSync(dir)
        chmodSync(dir, 0o755)
        const fixes: ModeFix[] = []
        const onModeFix = (f: ModeFix) => void fixes.push(f)
        const s = initState(dir, { onModeFix })
        assert.equal(mode(dir), 0o700)
        assert.deepEqual(fixes, [{ path: dir, from: 0o755, to: 0o700 }], "one fix, naming the directory")
        const db = join(dir, REGISTRY_FILE)
        const reg = new SqliteRegistry(db, { create: true, onModeFix })
        await reg.putDevice({
            id: "0102030405060708",
            name: "d",
            publicKey: Buffer.alloc(32, 9),
            psk: Buffer.alloc(32, 0xab),
            revoked: false,
            min_generation: 0,
            issued_generation: 0,
            accepted_generation: 0,
            full_generation: 0,
            created_at: 1,
            pseudonym: Buffer.alloc(8, 1),
            previous_pseudonym: Buffer.alloc(8, 1),
            pseudonym0: Buffer.alloc(8, 1),
        })
        for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal(mode(f), 0o600, `${f} created 0600`)
        assert.equal(fixes.length, 1, "nothing else needed fixing")

        // an install from before the fix: directory 0755, registry files 0644 (the connection
        // stays open so -wal and -shm exist)
        chmodSync(dir, 0o755)
        for (const f of [db, `${db}-wal`, `${db}-shm`]) chmodSync(f, 0o644)
        fixes.length = 0
        loadState(dir, { onModeFix })
        assert.equal(mode(dir), 0o700)
        for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal(mode(f), 0o600, f)
        assert.deepEqual(
            fixes.map(f => [f.path, f.from]).sort(),
            [
                [dir, 0o755],
                [db, 0o644],
                [`${db}-shm`, 0o644],
                [`${db}-wal`, 0o644],
            ].sort()
        )
        // opening the registry or the app store on its own tightens the database files too
        for (const f of [db, `${db}-wal`, `${db}-shm`]) chmodSync(f, 0o644)
        fixes.length = 0
        await new SqliteRegistry(db, { onModeFix }).close()
        assert.ok(
            [db, `${db}-wal`, `${db}-shm`].every(f => fixes.some(x => x.path === f)),
            "the registry open fixed each file"
        )
        for (const f of [db, `${db}-wal`, `${db}-shm`]) chmodSync(f, 0o644)
        fixes.length = 0
        const appDb = new Database(db, { fileMustExist: true })
        appDb.exec(SQLITE_APP_SCHEMA)
        const store = new SqliteAppStateStore(appDb, { onModeFix })
        for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal(mode(f), 0o600, f)
        assert.equal(fixes.length, 3)
        await store.close()
        appDb.close()
        await reg.close()
        // a second start with everything in order fixes nothing
        fixes.length = 0
        loadState(dir, { onModeFix })
        assert.deepEqual(fixes, [])
        assert.ok(s.identity.publicKey.length === 32)
    } finally {
        rmSync(root, { recursive: true, force: true })
    }
})

test("modes: the default warning names the path and the modes, never a secret", () => {
    const root = mkdtempSync(join(tmpdir(), "tether-modes-"))
    try {
        const dir = join(root, "s")
        const s = initState(dir)
        chmodSync(dir, 0o755)
        const lines: string[] = []
        const write = process.stderr.write
        process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write
        try {
            loadState(dir)
        } finally {
            process.stderr.write = write
        }
        assert.equal(lines.length, 1)
        assert.match(lines[0] ?? "", new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} was mode 755.*set to 700`))
        assert.ok(!(lines[0] ?? "").includes(s.identity.privateKey.toString("hex")))
    } finally {
        rmSync(root, { recursive: true, force: true })
    }
})
