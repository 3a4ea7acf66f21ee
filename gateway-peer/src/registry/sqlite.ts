// The embedded registry: SQLite through better-sqlite3 (major 12: the one that runs on
// Node 20). WAL mode; every generation update is one statement or one transaction, so it is
// atomic against other connections to the same file (a second gateway process included).
// A file that is not a Tether registry is reported as such, never re-initialised.
import { chmodSync, statSync, writeFileSync } from "node:fs"
import Database from "better-sqlite3"
import type { Kek } from "../crypto/kek.js"
import { UINT32_MAX } from "../wire.js"
import { commitGroup, type CommitGroup } from "./commit-group.js"
import {
    checkDevice,
    pseudonym0,
    PseudonymTaken,
    RegistryBusy,
    type Confirmation,
    type DeviceRecord,
    type GenerationVerdict,
    type Issued,
    type Registry,
} from "./registry.js"

// ---- file modes: the registry holds every device's PSK ---------------------------------------

/** The mode of every file that holds a secret: the registry's, the state directory's. */
export const FILE_MODE = 0o600

/** A mode the gateway tightened: the path and the modes before and after; never contents. */
export interface ModeFix {
    readonly path: string
    readonly from: number
    readonly to: number
}

/** Told of each mode fixed (a log line, a warning). */
export type ModeFixFn = (fix: ModeFix) => void

/** The default: one warning line on stderr naming the path. */
export const warnModeFix: ModeFixFn = f =>
    process.stderr.write(
        `tether-gateway: warning: ${f.path} was mode ${f.from.toString(8)}, readable beyond its owner; set to ${f.to.toString(8)}\n`
    )

/**
 * Sets `path` to `mode` when group or others have any access to it, and reports the fix. A
 * missing path is left alone (a -wal file between checkpoints, say).
 */
export function tighten(path: string, mode: number, onFix: ModeFixFn = warnModeFix): void {
    let from: number
    try {
        from = statSync(path).mode & 0o777
    } catch (err) {
        if ((err as { code?: string }).code === "ENOENT") return
        throw err
    }
    if ((from & 0o077) === 0) return
    chmodSync(path, mode)
    onFix({ path, from, to: mode })
}

/** A SQLite database's files: the database, its write-ahead log and its shared-memory index. */
export function tightenSqlite(path: string, onFix: ModeFixFn = warnModeFix): void {
    for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) tighten(p, FILE_MODE, onFix)
}

// ---- the registry ------------------------------------------------------------------------------

/**
 * How long a statement waits for another connection's write lock (SQLite's busy_timeout) before
 * it fails with SQLITE_BUSY. better-sqlite3 is synchronous, so the wait blocks the event loop
 * and every connection of the node: it is kept short, and a handshake that meets a busy
 * database is answered REJECT(BUSY) (RegistryBusy, PROTOCOL.md 9.4: the device comes back
 * later) instead of freezing the node for seconds. The node's own transactions are one statement
 * or a few, so another writer (a CLI command on the same file) holds the lock for well under it.
 */
export const BUSY_TIMEOUT_MS = 50

/**
 * SQLite's durability. WAL with synchronous = FULL: every commit is on disk (the WAL fsynced)
 * before the statement returns. NORMAL would fsync only at checkpoints, and a power loss could
 * then roll back commits the gateway already acted on. That breaks the replay rule (PROTOCOL.md
 * 6.4): a lost `accepted_generation` lets the replay of an accepted RESUME_INIT deliver its
 * early data a second time (to the sinks, to an upstream), and a lost `issued_generation` lets
 * the next session issue a ticket generation that was already issued. So FULL, set explicitly
 * rather than left to the build's default; the cost is one fsync per commit, which the handshake
 * path keeps to one statement per handshake (confirmSession, acceptAndConfirm), and the writes
 * of one event-loop turn share one commit (commit-group.ts).
 */
export const SYNCHRONOUS = "FULL"

/** SQLITE_BUSY (and its extended codes) as RegistryBusy: the node answers BUSY. */
function unbusy<T>(fn: () => T): T {
    try {
        return fn()
    } catch (err) {
        throw busyError(err)
    }
}

/** SQLITE_BUSY as RegistryBusy; any other error as it is. */
function busyError(err: unknown): unknown {
    const code = (err as { code?: unknown }).code
    return typeof code === "string" && code.startsWith("SQLITE_BUSY") ? new RegistryBusy() : err
}

/**
 * The schema version kept in PRAGMA user_version (2: PROTOCOL.md version 2's pseudonyms; 3: the
 * `meta` table, which records whether PSKs are sealed under a KEK, and the node tables).
 */
export const SCHEMA_VERSION = 3

const SCHEMA = `
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    public_key BLOB NOT NULL,
    psk BLOB NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    min_generation INTEGER NOT NULL DEFAULT 0,
    issued_generation INTEGER NOT NULL DEFAULT 0,
    accepted_generation INTEGER NOT NULL DEFAULT 0,
    full_generation INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    pseudonym BLOB NOT NULL,
    previous_pseudonym BLOB NOT NULL,
    pseudonym0 BLOB NOT NULL
) STRICT;
CREATE INDEX devices_pseudonym ON devices (pseudonym);
CREATE INDEX devices_previous_pseudonym ON devices (previous_pseudonym);
CREATE INDEX devices_pseudonym0 ON devices (pseudonym0);
`

/** Version 3's additions: what the store knows about itself, the live view, the event log. */
const SCHEMA3 = `
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS sessions (
    device_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    session_id TEXT NOT NULL,
    since INTEGER NOT NULL,
    remote TEXT NOT NULL,
    last_activity INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    resumed INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;
`

/**
 * Schema 1 (PROTOCOL.md version 1) to 2: the pseudonym columns, each device starting on its
 * fallback pseudonym, and every version 1 ticket refused (min_generation above them; they no
 * longer parse anyway). The pairings stay: each device's next connection is a full handshake.
 */
function migrate1to2(db: Database.Database): void {
    db.exec(`ALTER TABLE devices ADD COLUMN pseudonym BLOB NOT NULL DEFAULT x'0000000000000000';
        ALTER TABLE devices ADD COLUMN previous_pseudonym BLOB NOT NULL DEFAULT x'0000000000000000';
        ALTER TABLE devices ADD COLUMN pseudonym0 BLOB NOT NULL DEFAULT x'0000000000000000';
        CREATE INDEX devices_pseudonym ON devices (pseudonym);
        CREATE INDEX devices_previous_pseudonym ON devices (previous_pseudonym);
        CREATE INDEX devices_pseudonym0 ON devices (pseudonym0);`)
    const rows = db.prepare<[], { id: string; psk: Buffer }>("SELECT id, psk FROM devices").all()
    const set = db.prepare(
        `UPDATE devices SET pseudonym = @p, previous_pseudonym = @p, pseudonym0 = @p,
            min_generation = max(min_generation, issued_generation + 1) WHERE id = @id`
    )
    for (const r of rows) set.run({ id: r.id, p: pseudonym0(r.psk) })
}

/**
 * The registry's PSKs and the KEK: with one, PSKs not sealed yet are sealed now (one transaction)
 * and the KEK's fingerprint recorded; without one, a sealed registry is refused.
 * @throws RegistryOpenError for a missing or wrong KEK
 */
function sealInPlace(db: Database.Database, path: string, kek: Kek | undefined): void {
    const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'kek_fingerprint'").get()
    if (kek === undefined) {
        if (row !== undefined) throw new RegistryOpenError(`registry: ${path} is sealed under a KEK; give it (--kek-file or $TETHER_KEK)`)
        return
    }
    if (row !== undefined) {
        if (row.value !== kek.fingerprint)
            throw new RegistryOpenError(
                `registry: ${path} is sealed under another KEK (fingerprint ${row.value}; the one from ${kek.source} is ${kek.fingerprint})`
            )
        return
    }
    db.transaction(() => {
        const rows = db.prepare<[], { id: string; psk: Buffer }>("SELECT id, psk FROM devices").all()
        const set = db.prepare("UPDATE devices SET psk = ? WHERE id = ?")
        for (const r of rows) set.run(kek.seal(r.psk, `psk ${r.id}`), r.id)
        db.prepare("INSERT INTO meta (key, value) VALUES ('kek_fingerprint', ?)").run(kek.fingerprint)
    })()
    // the plaintext PSKs may still sit in free pages and in the WAL: rewrite the file without them
    db.pragma("wal_checkpoint(TRUNCATE)")
    db.exec("VACUUM")
    db.pragma("wal_checkpoint(TRUNCATE)")
}

interface Row {
    id: string
    name: string
    public_key: Buffer
    psk: Buffer
    revoked: number
    min_generation: number
    issued_generation: number
    accepted_generation: number
    full_generation: number
    created_at: number
    pseudonym: Buffer
    previous_pseudonym: Buffer
    pseudonym0: Buffer
}

function fromRow(r: Row): DeviceRecord {
    return {
        id: r.id,
        name: r.name,
        publicKey: r.public_key,
        psk: r.psk,
        revoked: r.revoked !== 0,
        min_generation: r.min_generation,
        issued_generation: r.issued_generation,
        accepted_generation: r.accepted_generation,
        full_generation: r.full_generation,
        created_at: r.created_at,
        pseudonym: r.pseudonym,
        previous_pseudonym: r.previous_pseudonym,
        pseudonym0: r.pseudonym0,
    }
}

/** Opening failed: the file is missing (with create false), corrupt or of another schema. */
export class RegistryOpenError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "RegistryOpenError"
    }
}

/** At most this many opened PSKs are kept (the oldest opened goes first). */
const OPENED_MAX = 65536

/** The registry in one SQLite file. */
export class SqliteRegistry implements Registry {
    readonly #db: Database.Database
    readonly #stmt
    readonly #revoke
    readonly #remove
    /** the connection's group commit: the handshake path's writes of one turn share a commit */
    readonly #group: CommitGroup
    /**
     * PSKs opened from their sealed form, by device id (the sealed bytes kept to tell a re-pairing
     * apart): opening under the KEK is an AES-GCM decryption per handshake otherwise. Bounded.
     */
    readonly #opened = new Map<string, { sealed: Buffer; psk: Buffer }>()

    /**
     * Opens (or with `create`, creates) the registry at `path`. It holds every device's PSK:
     * the file is created 0600, and an existing one (its -wal and -shm too) is tightened to
     * 0600, reported to `onModeFix` (default: a warning line on stderr).
     * @throws RegistryOpenError with a clear message for a missing, corrupt or foreign file
     */
    /** PSKs are sealed under this KEK (PROTOCOL.md 6.4 "secrets at rest"); undefined: stored as is (tests) */
    readonly #kek: Kek | undefined
    /** called inside revoke's transaction (the store's event log: every node closes the session) */
    readonly #onRevoked: ((deviceId: string) => void) | undefined

    /**
     * With `kek`, every PSK is stored sealed under it, and a registry whose PSKs are not sealed yet
     * is sealed in place, once (its `meta` records the KEK's fingerprint). A registry sealed under
     * a KEK cannot be opened without it, or with another.
     */
    constructor(
        path: string,
        opts: { create?: boolean; onModeFix?: ModeFixFn; kek?: Kek; onRevoked?: (deviceId: string) => void; busyTimeoutMs?: number } = {}
    ) {
        this.#kek = opts.kek
        this.#onRevoked = opts.onRevoked
        let db: Database.Database | undefined
        try {
            // SQLite would create the file under the umask (often 0644), and its -wal and -shm
            // take the database file's mode: an empty file made 0600 first is a new database
            if (opts.create === true) {
                try {
                    writeFileSync(path, "", { mode: FILE_MODE, flag: "wx" })
                } catch {
                    // it exists (opened below), or SQLite reports why it cannot be made
                }
            }
            db = new Database(path, { fileMustExist: opts.create !== true })
            db.pragma("journal_mode = WAL")
            tightenSqlite(path, opts.onModeFix)
            db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS))}`)
            db.pragma(`synchronous = ${SYNCHRONOUS}`)
            const version = db.pragma("user_version", { simple: true }) as number
            if (version === 0) {
                const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }
                if (tables.n !== 0) throw new RegistryOpenError(`registry: ${path} is a SQLite database but not a Tether registry`)
                if (opts.create !== true) throw new RegistryOpenError(`registry: ${path} is empty (not initialised)`)
                db.transaction(() => {
                    db?.exec(SCHEMA)
                    db?.exec(SCHEMA3)
                    db?.pragma(`user_version = ${SCHEMA_VERSION}`)
                })()
            } else if (version === 1 || version === 2) {
                db.transaction(() => {
                    if (db === undefined) return
                    if (version === 1) migrate1to2(db)
                    db.exec(SCHEMA3)
                    db.pragma(`user_version = ${SCHEMA_VERSION}`)
                })()
            } else if (version !== SCHEMA_VERSION) {
                throw new RegistryOpenError(`registry: ${path} has schema version ${version}, this gateway knows ${SCHEMA_VERSION}`)
            }
            db.prepare("SELECT count(*) FROM devices").get() // touches the table: a torn file fails here
            sealInPlace(db, path, opts.kek)
        } catch (err) {
            db?.close()
            if (err instanceof RegistryOpenError) throw err
            const code = (err as { code?: string }).code ?? ""
            if (code === "SQLITE_CANTOPEN" || /does not exist/.test(String((err as Error).message)))
                throw new RegistryOpenError(`registry: cannot open ${path} (missing? run \`tether-gateway init\`)`)
            throw new RegistryOpenError(`registry: ${path} is corrupt or not a database (${code || (err as Error).message})`)
        }
        this.#db = db
        this.#stmt = {
            get: db.prepare<[string], Row>("SELECT * FROM devices WHERE id = ?"),
            byName: db.prepare<[string], Row>("SELECT * FROM devices WHERE name = ?"),
            list: db.prepare<[], Row>("SELECT * FROM devices ORDER BY name"),
            byPseudonym: db.prepare<[Buffer, Buffer, Buffer], Row>(
                "SELECT * FROM devices WHERE pseudonym = ? OR previous_pseudonym = ? OR pseudonym0 = ?"
            ),
            // another device holding a pseudonym (a collision: 2^-64 per pair, checked anyway)
            taken: db.prepare<[Buffer, Buffer, Buffer, string], { n: number }>(
                "SELECT count(*) AS n FROM devices WHERE (pseudonym = ? OR previous_pseudonym = ? OR pseudonym0 = ?) AND id <> ?"
            ),
            put: db.prepare(
                `INSERT INTO devices (id, name, public_key, psk, revoked, min_generation, issued_generation,
                    accepted_generation, full_generation, created_at, pseudonym, previous_pseudonym, pseudonym0)
                 VALUES (@id, @name, @public_key, @psk, @revoked, @min_generation, @issued_generation,
                    @accepted_generation, @full_generation, @created_at, @pseudonym, @previous_pseudonym, @pseudonym0)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, public_key = excluded.public_key, psk = excluded.psk,
                    revoked = excluded.revoked, min_generation = excluded.min_generation,
                    issued_generation = excluded.issued_generation, accepted_generation = excluded.accepted_generation,
                    full_generation = excluded.full_generation, created_at = excluded.created_at,
                    pseudonym = excluded.pseudonym, previous_pseudonym = excluded.previous_pseudonym,
                    pseudonym0 = excluded.pseudonym0`
            ),
            revoke: db.prepare<[string], { id: string }>(
                "UPDATE devices SET revoked = 1, min_generation = max(min_generation, issued_generation + 1) WHERE name = ? RETURNING id"
            ),
            remove: db.prepare<[string], { id: string }>("DELETE FROM devices WHERE name = ? RETURNING id"),
            expire: db.prepare("UPDATE devices SET min_generation = max(min_generation, issued_generation + 1) WHERE name = ?"),
            // PROTOCOL.md 6.3's confirmation in one statement, the pseudonym check included: one
            // autocommit write per handshake (a refusal is told apart afterwards, see confirmSession)
            confirm: db.prepare<
                { id: string; full: number; resumed: number; next: Buffer; max: number; cas: number },
                { generation: number; chainOrigin: number }
            >(
                `UPDATE devices SET issued_generation = issued_generation + 1,
                    full_generation = CASE WHEN @full = 1 THEN issued_generation + 1 ELSE full_generation END,
                    accepted_generation = max(accepted_generation, @resumed),
                    previous_pseudonym = pseudonym, pseudonym = @next
                 WHERE id = @id AND issued_generation < @max AND (@cas = 0 OR accepted_generation < @resumed)
                    AND NOT EXISTS (SELECT 1 FROM devices AS o
                        WHERE (o.pseudonym = @next OR o.previous_pseudonym = @next OR o.pseudonym0 = @next) AND o.id <> @id)
                 RETURNING issued_generation AS generation, full_generation AS chainOrigin`
            ),
            // The compare-and-set of PROTOCOL.md 6.4 in one statement.
            accept: db.prepare("UPDATE devices SET accepted_generation = ? WHERE id = ? AND accepted_generation < ?"),
            exists: db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM devices WHERE id = ?"),
            accepted: db.prepare<[string], { accepted_generation: number }>("SELECT accepted_generation FROM devices WHERE id = ?"),
        }
        this.#group = commitGroup(db)
        const revoke = this.#stmt.revoke
        this.#revoke = db.transaction((name: string): boolean => {
            const r = revoke.get(name)
            if (r !== undefined) this.#onRevoked?.(r.id)
            return r !== undefined
        })
        const remove = this.#stmt.remove
        this.#remove = db.transaction((name: string): string | undefined => {
            const r = remove.get(name)
            if (r !== undefined) this.#onRevoked?.(r.id)
            return r?.id
        })
    }

    /** The open database (the node's store keeps its own tables in the same file). */
    get db(): Database.Database {
        return this.#db
    }

    #fromRow(r: Row): DeviceRecord {
        const d = fromRow(r)
        return this.#kek === undefined ? d : { ...d, psk: this.#open(r.id, r.psk) }
    }

    /** The PSK of device `id` from its sealed bytes, opened under the KEK once per sealing. */
    #open(id: string, sealed: Buffer): Buffer {
        const hit = this.#opened.get(id)
        if (hit !== undefined && hit.sealed.equals(sealed)) return Buffer.from(hit.psk)
        const psk = (this.#kek as Kek).open(sealed, `psk ${id}`)
        this.#opened.delete(id)
        if (this.#opened.size >= OPENED_MAX) this.#opened.delete(this.#opened.keys().next().value as string)
        this.#opened.set(id, { sealed: Buffer.from(sealed), psk: Buffer.from(psk) })
        return psk
    }

    #mustExist(id: string): void {
        if ((this.#stmt.exists.get(id)?.n ?? 0) === 0) throw new Error(`registry: no device ${id}`)
    }

    async getDeviceByName(name: string): Promise<DeviceRecord | undefined> {
        const r = this.#stmt.byName.get(name)
        return r && this.#fromRow(r)
    }

    async getDeviceByPseudonym(p: Buffer): Promise<DeviceRecord | undefined> {
        const r = unbusy(() => this.#stmt.byPseudonym.get(p, p, p))
        return r && this.#fromRow(r)
    }

    async putDevice(d: DeviceRecord): Promise<void> {
        checkDevice(d)
        for (const p of [d.pseudonym, d.previous_pseudonym, d.pseudonym0])
            if ((this.#stmt.taken.get(p, p, p, d.id)?.n ?? 0) > 0) throw new PseudonymTaken()
        try {
            this.#stmt.put.run({
                id: d.id,
                name: d.name,
                public_key: d.publicKey,
                psk: this.#kek === undefined ? d.psk : this.#kek.seal(d.psk, `psk ${d.id}`),
                revoked: d.revoked ? 1 : 0,
                min_generation: d.min_generation,
                issued_generation: d.issued_generation,
                accepted_generation: d.accepted_generation,
                full_generation: d.full_generation,
                created_at: d.created_at,
                pseudonym: d.pseudonym,
                previous_pseudonym: d.previous_pseudonym,
                pseudonym0: d.pseudonym0,
            })
        } catch (err) {
            if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw new Error(`registry: the name ${d.name} is taken`)
            throw err
        }
    }

    async listDevices(): Promise<DeviceRecord[]> {
        return this.#stmt.list.all().map(r => this.#fromRow(r))
    }

    async revoke(name: string): Promise<boolean> {
        return this.#revoke.immediate(name)
    }

    async remove(name: string): Promise<string | undefined> {
        return this.#remove.immediate(name)
    }

    async expireTickets(name: string): Promise<boolean> {
        return this.#stmt.expire.run(name).changes > 0
    }

    async getDevice(id: string): Promise<DeviceRecord | undefined> {
        const r = unbusy(() => this.#stmt.get.get(id))
        return r && this.#fromRow(r)
    }

    /** One statement in the turn's group commit; `cas`: refused ("older") unless resumedGeneration > accepted_generation. */
    #confirm(id: string, c: Confirmation, cas: boolean): Issued | "older" {
        const p = c.nextPseudonym
        const resumed = c.resumedGeneration ?? 0
        const r = this.#stmt.confirm.get({ id, full: c.full ? 1 : 0, resumed, next: p, max: UINT32_MAX, cas: cas ? 1 : 0 })
        if (r !== undefined) return r
        // refused (nothing written): why, read afterwards (a rare path)
        if (cas) {
            const a = this.#stmt.accepted.get(id)
            if (a !== undefined && a.accepted_generation >= resumed) return "older"
        }
        if ((this.#stmt.taken.get(p, p, p, id)?.n ?? 0) > 0) throw new PseudonymTaken()
        this.#mustExist(id)
        throw new RangeError(`registry: ${id} has no generation left`)
    }

    async confirmSession(id: string, c: Confirmation): Promise<Issued> {
        return this.#group.run(() => this.#confirm(id, c, false) as Issued, busyError)
    }

    async acceptAndConfirm(id: string, c: Confirmation & { readonly resumedGeneration: number }): Promise<Issued | "older"> {
        return this.#group.run(() => this.#confirm(id, c, true), busyError)
    }

    async acceptGeneration(id: string, generation: number): Promise<GenerationVerdict> {
        // one statement: the compare-and-set is atomic on its own
        return this.#group.run(() => {
            if (this.#stmt.accept.run(generation, id, generation).changes === 1) return "newer"
            this.#mustExist(id)
            return "older"
        }, busyError)
    }

    async close(): Promise<void> {
        if (!this.#db.open) return
        this.#group.flush() // what this turn queued is committed (or rejected) before the file closes
        this.#db.close()
    }
}
