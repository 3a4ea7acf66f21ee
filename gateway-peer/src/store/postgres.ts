// The cluster's store on PostgreSQL (14 or newer), through the `pg` driver: the device registry,
// the identity, the ticket-key ring and the live view here; the receiving state and the outbox in
// postgres-app.ts. Every node of a cluster opens the same database.
//
//   - The replay rule's compare-and-set is one conditional UPDATE: PostgreSQL locks the row and
//     re-evaluates the condition after any concurrent update (READ COMMITTED), so of two nodes
//     accepting the same ticket at once exactly one sees "newer".
//   - Cross-node control is LISTEN/NOTIFY on channel `tether` (revocations, key changes, queued
//     messages, sessions taken over), sent in the transaction that makes the change, so a node is
//     told exactly when the change is visible. A dedicated connection listens and reconnects by
//     itself; after a reconnect the node resynchronises (`resync`), because a notification sent
//     while it was away is not replayed.
//   - Secrets (PSKs, the static private key, the ticket keys) are sealed under the KEK (kek.ts):
//     a dump holds ciphertext only.
//   - The schema is versioned (table tether_schema), created and upgraded by migrations run under
//     an advisory lock, never by ad-hoc CREATEs at start.
//   - A query that cannot reach the server throws StoreUnavailable: the caller answers BUSY.
import { EventEmitter } from "node:events"
import type pg from "pg"
import { x25519Base, type KeyPair } from "../crypto/x25519.js"
import {
    checkDevice,
    PseudonymTaken,
    type Confirmation,
    type DeviceRecord,
    type GenerationVerdict,
    type Issued,
    type Registry,
} from "../registry/registry.js"
import { TicketKeySet } from "../tickets.js"
import { UINT32_MAX } from "../wire.js"
import { Kek, KekError } from "../crypto/kek.js"
import {
    emitStoreEvent,
    sessionFromRow,
    StoreUnavailable,
    type SessionDbRow,
    type SessionDirectory,
    type SessionRow,
    type StoreEvents,
} from "./types.js"

/** One step of the schema. Applied in order, each in the same transaction as its version row. */
export interface PgMigration {
    readonly version: number
    readonly name: string
    readonly sql: string
}

/** The registry, identity, key ring and live view (version 1 of the schema). */
export const PG_CORE_SCHEMA = `
CREATE TABLE tether_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE devices (
    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name text NOT NULL UNIQUE,
    public_key bytea NOT NULL,
    psk_sealed bytea NOT NULL,
    revoked boolean NOT NULL DEFAULT false,
    min_generation bigint NOT NULL DEFAULT 0,
    issued_generation bigint NOT NULL DEFAULT 0,
    accepted_generation bigint NOT NULL DEFAULT 0,
    full_generation bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    pseudonym bytea NOT NULL,
    previous_pseudonym bytea NOT NULL,
    pseudonym0 bytea NOT NULL
);
CREATE INDEX devices_pseudonym ON devices (pseudonym);
CREATE INDEX devices_previous_pseudonym ON devices (previous_pseudonym);
CREATE INDEX devices_pseudonym0 ON devices (pseudonym0);
CREATE TABLE identity (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    public_key bytea NOT NULL,
    private_key_sealed bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE TABLE ticket_keys (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL,
    ring_sealed bytea NOT NULL,
    updated_at bigint NOT NULL
);
CREATE TABLE sessions (
    device_id text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    node text NOT NULL,
    session_id text NOT NULL,
    since bigint NOT NULL,
    remote text NOT NULL,
    last_activity bigint NOT NULL,
    generation bigint NOT NULL,
    resumed boolean NOT NULL
);
CREATE INDEX sessions_node ON sessions (node);
`

/** The NOTIFY channel. */
export const PG_CHANNEL = "tether"

/** Errors that mean "the server is not there" rather than "the query is wrong". */
function isConnectionError(err: unknown): boolean {
    const e = err as { code?: unknown; message?: unknown }
    const code = typeof e.code === "string" ? e.code : ""
    if (["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH"].includes(code)) return true
    // 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now
    if (/^08/.test(code) || code === "57P01" || code === "57P02" || code === "57P03") return true
    const m = typeof e.message === "string" ? e.message : ""
    return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection ended/i.test(
        m
    )
}

/** Runs `fn`, turning a lost server into StoreUnavailable. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
        return await fn()
    } catch (err) {
        if (isConnectionError(err)) throw new StoreUnavailable((err as { code?: string }).code ?? "connection lost")
        throw err
    }
}

/** A transaction on one client of the pool: committed if `fn` resolves, rolled back otherwise. */
export async function transaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return guard(async () => {
        const c = await pool.connect()
        let broken = false
        try {
            await c.query("BEGIN")
            const r = await fn(c)
            await c.query("COMMIT")
            return r
        } catch (err) {
            broken = isConnectionError(err)
            if (!broken) await c.query("ROLLBACK").catch(() => (broken = true))
            throw err
        } finally {
            c.release(broken)
        }
    })
}

/** A query on the pool. */
export function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    pool: pg.Pool,
    text: string,
    values?: unknown[]
): Promise<pg.QueryResult<R>> {
    return guard(() => pool.query<R>(text, values))
}

/**
 * Brings the database's schema to the newest of `migrations`, each step in its own transaction,
 * all under one advisory lock (two nodes starting at once do not both migrate).
 * @returns the versions applied now
 * @throws Error if the database holds a newer schema than this gateway knows
 */
export async function migrate(pool: pg.Pool, migrations: readonly PgMigration[]): Promise<number[]> {
    const applied: number[] = []
    await transaction(pool, async c => {
        await c.query("SELECT pg_advisory_xact_lock(hashtext('tether_schema'))")
        await c.query(
            "CREATE TABLE IF NOT EXISTS tether_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        const r = await c.query<{ v: number | null }>("SELECT max(version) AS v FROM tether_schema")
        const current = r.rows[0]?.v ?? 0
        const newest = Math.max(0, ...migrations.map(m => m.version))
        if (current > newest)
            throw new Error(`store: the database has schema version ${current}; this gateway knows ${newest} (upgrade it)`)
        for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
            if (m.version <= current) continue
            await c.query(m.sql)
            await c.query("INSERT INTO tether_schema (version, name) VALUES ($1, $2)", [m.version, m.name])
            applied.push(m.version)
        }
    })
    return applied
}

/** The schema version of the database (0: none). */
export async function schemaVersion(pool: pg.Pool): Promise<number> {
    const t = await query<{ t: string | null }>(pool, "SELECT to_regclass('tether_schema')::text AS t")
    if (t.rows[0]?.t === null || t.rows[0]?.t === undefined) return 0
    const r = await query<{ v: number | null }>(pool, "SELECT max(version) AS v FROM tether_schema")
    return r.rows[0]?.v ?? 0
}

interface DeviceRow {
    id: string
    name: string
    public_key: Buffer
    psk_sealed: Buffer
    revoked: boolean
    min_generation: string
    issued_generation: string
    accepted_generation: string
    full_generation: string
    created_at: string
    pseudonym: Buffer
    previous_pseudonym: Buffer
    pseudonym0: Buffer
}

const pskWhat = (id: string) => `psk ${id}`

/** The device registry on PostgreSQL. */
export class PgRegistry implements Registry {
    constructor(
        readonly pool: pg.Pool,
        readonly kek: Kek
    ) {}

    #row(r: DeviceRow): DeviceRecord {
        return {
            id: r.id,
            name: r.name,
            publicKey: r.public_key,
            psk: this.kek.open(r.psk_sealed, pskWhat(r.id)),
            revoked: r.revoked,
            min_generation: Number(r.min_generation),
            issued_generation: Number(r.issued_generation),
            accepted_generation: Number(r.accepted_generation),
            full_generation: Number(r.full_generation),
            created_at: Number(r.created_at),
            pseudonym: r.pseudonym,
            previous_pseudonym: r.previous_pseudonym,
            pseudonym0: r.pseudonym0,
        }
    }

    async #one(where: string, values: unknown[]): Promise<DeviceRecord | undefined> {
        const r = await query<DeviceRow>(this.pool, `SELECT * FROM devices WHERE ${where}`, values)
        const row = r.rows[0]
        return row && this.#row(row)
    }

    getDevice(id: string): Promise<DeviceRecord | undefined> {
        return this.#one("id = $1", [id])
    }

    getDeviceByName(name: string): Promise<DeviceRecord | undefined> {
        return this.#one("name = $1", [name])
    }

    getDeviceByPseudonym(p: Buffer): Promise<DeviceRecord | undefined> {
        return this.#one("pseudonym = $1 OR previous_pseudonym = $1 OR pseudonym0 = $1 LIMIT 1", [p])
    }

    async putDevice(d: DeviceRecord): Promise<void> {
        checkDevice(d)
        await transaction(this.pool, async c => {
            for (const p of [d.pseudonym, d.previous_pseudonym, d.pseudonym0]) {
                const t = await c.query(
                    "SELECT 1 FROM devices WHERE (pseudonym = $1 OR previous_pseudonym = $1 OR pseudonym0 = $1) AND id <> $2 LIMIT 1",
                    [p, d.id]
                )
                if ((t.rowCount ?? 0) > 0) throw new PseudonymTaken()
            }
            try {
                await c.query(
                    `INSERT INTO devices (id, name, public_key, psk_sealed, revoked, min_generation, issued_generation,
                        accepted_generation, full_generation, created_at, pseudonym, previous_pseudonym, pseudonym0)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, public_key = excluded.public_key,
                        psk_sealed = excluded.psk_sealed, revoked = excluded.revoked, min_generation = excluded.min_generation,
                        issued_generation = excluded.issued_generation, accepted_generation = excluded.accepted_generation,
                        full_generation = excluded.full_generation, created_at = excluded.created_at,
                        pseudonym = excluded.pseudonym, previous_pseudonym = excluded.previous_pseudonym,
                        pseudonym0 = excluded.pseudonym0`,
                    [
                        d.id,
                        d.name,
                        d.publicKey,
                        this.kek.seal(d.psk, pskWhat(d.id)),
                        d.revoked,
                        d.min_generation,
                        d.issued_generation,
                        d.accepted_generation,
                        d.full_generation,
                        d.created_at,
                        d.pseudonym,
                        d.previous_pseudonym,
                        d.pseudonym0,
                    ]
                )
            } catch (err) {
                if ((err as { code?: string }).code === "23505") throw new Error(`registry: the name ${d.name} is taken`)
                throw err
            }
        })
    }

    async listDevices(): Promise<DeviceRecord[]> {
        const r = await query<DeviceRow>(this.pool, "SELECT * FROM devices ORDER BY name")
        return r.rows.map(x => this.#row(x))
    }

    /** Revokes and tells every node in the same transaction (their sessions of it close). */
    async revoke(name: string): Promise<boolean> {
        const r = await query(
            this.pool,
            `WITH r AS (UPDATE devices SET revoked = true, min_generation = GREATEST(min_generation, issued_generation + 1)
                WHERE name = $1 RETURNING id)
             SELECT id, pg_notify($2, json_build_object('e', 'revoked', 'a', json_build_array(id))::text) FROM r`,
            [name, PG_CHANNEL]
        )
        return (r.rowCount ?? 0) > 0
    }

    /** Deletes and tells every node in the same statement (their sessions of it close). */
    async remove(name: string): Promise<string | undefined> {
        const r = await query<{ id: string }>(
            this.pool,
            `WITH r AS (DELETE FROM devices WHERE name = $1 RETURNING id)
             SELECT id, pg_notify($2, json_build_object('e', 'revoked', 'a', json_build_array(id))::text) FROM r`,
            [name, PG_CHANNEL]
        )
        return r.rows[0]?.id
    }

    async expireTickets(name: string): Promise<boolean> {
        const r = await query(
            this.pool,
            "UPDATE devices SET min_generation = GREATEST(min_generation, issued_generation + 1) WHERE name = $1",
            [name]
        )
        return (r.rowCount ?? 0) > 0
    }

    /** One statement; `cas`: refused ("older") unless resumedGeneration > accepted_generation. */
    async #confirm(id: string, c: Confirmation, cas: boolean): Promise<Issued | "older"> {
        const p = c.nextPseudonym
        const resumed = c.resumedGeneration ?? 0
        // one statement: the pseudonym check, the generation bound, the compare-and-set and the update together
        const r = await query<{ generation: string; chain_origin: string }>(
            this.pool,
            `UPDATE devices SET issued_generation = issued_generation + 1,
                full_generation = CASE WHEN $2 THEN issued_generation + 1 ELSE full_generation END,
                accepted_generation = GREATEST(accepted_generation, $3),
                previous_pseudonym = pseudonym, pseudonym = $4
             WHERE id = $1 AND issued_generation < $5 AND (NOT $6 OR accepted_generation < $3)
                AND NOT EXISTS (SELECT 1 FROM devices o WHERE (o.pseudonym = $4 OR o.previous_pseudonym = $4 OR o.pseudonym0 = $4) AND o.id <> $1)
             RETURNING issued_generation AS generation, full_generation AS chain_origin`,
            [id, c.full, resumed, p, UINT32_MAX, cas]
        )
        const row = r.rows[0]
        if (row !== undefined) return { generation: Number(row.generation), chainOrigin: Number(row.chain_origin) }
        const d = await query<{ issued_generation: string; accepted_generation: string }>(
            this.pool,
            "SELECT issued_generation, accepted_generation FROM devices WHERE id = $1",
            [id]
        )
        const cur = d.rows[0]
        if (cur === undefined) throw new Error(`registry: no device ${id}`)
        if (cas && Number(cur.accepted_generation) >= resumed) return "older"
        if (Number(cur.issued_generation) >= UINT32_MAX) throw new RangeError(`registry: ${id} has no generation left`)
        throw new PseudonymTaken()
    }

    async confirmSession(id: string, c: Confirmation): Promise<Issued> {
        return (await this.#confirm(id, c, false)) as Issued
    }

    async acceptAndConfirm(id: string, c: Confirmation & { readonly resumedGeneration: number }): Promise<Issued | "older"> {
        return this.#confirm(id, c, true)
    }

    async acceptGeneration(id: string, generation: number): Promise<GenerationVerdict> {
        const r = await query(this.pool, "UPDATE devices SET accepted_generation = $2 WHERE id = $1 AND accepted_generation < $2", [
            id,
            generation,
        ])
        if ((r.rowCount ?? 0) === 1) return "newer"
        const e = await query(this.pool, "SELECT 1 FROM devices WHERE id = $1", [id])
        if ((e.rowCount ?? 0) === 0) throw new Error(`registry: no device ${id}`)
        return "older"
    }

    /** The pool is the store's: PgStore.close ends it. */
    async close(): Promise<void> {}
}

/** The live view on PostgreSQL: one row per device, claimed by the node that holds its session. */
export class PgSessions implements SessionDirectory {
    constructor(readonly pool: pg.Pool) {}

    async claim(row: SessionRow): Promise<SessionRow | undefined> {
        return transaction(this.pool, async c => {
            const old = await c.query<SessionDbRow>("SELECT * FROM sessions WHERE device_id = $1 FOR UPDATE", [row.deviceId])
            await c.query(
                `INSERT INTO sessions (device_id, node, session_id, since, remote, last_activity, generation, resumed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (device_id) DO UPDATE SET node = excluded.node, session_id = excluded.session_id,
                    since = excluded.since, remote = excluded.remote, last_activity = excluded.last_activity,
                    generation = excluded.generation, resumed = excluded.resumed`,
                [row.deviceId, row.node, row.sessionId, row.since, row.remote, row.lastActivity, row.generation, row.resumed]
            )
            const prev = old.rows[0]
            if (prev === undefined || (prev.node === row.node && prev.session_id === row.sessionId)) return undefined
            await c.query("SELECT pg_notify($1, $2)", [
                PG_CHANNEL,
                JSON.stringify({ e: "claimed", a: [row.deviceId, row.node, row.sessionId] }),
            ])
            return sessionFromRow(prev)
        })
    }

    async release(deviceId: string, node: string, sessionId: string): Promise<void> {
        await query(this.pool, "DELETE FROM sessions WHERE device_id = $1 AND node = $2 AND session_id = $3", [deviceId, node, sessionId])
    }

    async touch(node: string, activity: ReadonlyMap<string, number>): Promise<void> {
        if (activity.size === 0) return
        await query(
            this.pool,
            `UPDATE sessions s SET last_activity = GREATEST(s.last_activity, v.t)
             FROM unnest($2::text[], $3::bigint[]) AS v(id, t) WHERE s.device_id = v.id AND s.node = $1`,
            [node, [...activity.keys()], [...activity.values()]]
        )
    }

    async releaseNode(node: string): Promise<void> {
        await query(this.pool, "DELETE FROM sessions WHERE node = $1", [node])
    }

    async get(deviceId: string): Promise<SessionRow | undefined> {
        const r = await query<SessionDbRow>(this.pool, "SELECT * FROM sessions WHERE device_id = $1", [deviceId])
        const row = r.rows[0]
        return row === undefined ? undefined : sessionFromRow(row)
    }

    async list(): Promise<SessionRow[]> {
        const r = await query<SessionDbRow>(this.pool, "SELECT * FROM sessions ORDER BY node, device_id")
        return r.rows.map(sessionFromRow)
    }
}

/** The identity and the ticket-key ring on PostgreSQL, sealed under the KEK. */
export class PgSecrets {
    constructor(
        readonly pool: pg.Pool,
        readonly kek: Kek
    ) {}

    /** Stores the cluster's identity and first key ring (init). @throws Error if either exists */
    async create(identity: KeyPair, keys: TicketKeySet, now: number): Promise<void> {
        await transaction(this.pool, async c => {
            const has = await c.query("SELECT 1 FROM identity")
            if ((has.rowCount ?? 0) > 0) throw new Error("store: the database already holds a gateway identity; refusing to overwrite it")
            await c.query("INSERT INTO identity (public_key, private_key_sealed, created_at) VALUES ($1, $2, $3)", [
                identity.publicKey,
                this.kek.seal(identity.privateKey, "identity"),
                now,
            ])
            await c.query("INSERT INTO ticket_keys (version, ring_sealed, updated_at) VALUES (1, $1, $2)", [this.#sealRing(keys), now])
            await c.query(
                "INSERT INTO tether_meta (key, value) VALUES ('kek_fingerprint', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [this.kek.fingerprint]
            )
        })
    }

    #sealRing(keys: TicketKeySet): Buffer {
        return this.kek.seal(Buffer.from(JSON.stringify(keys.toJSON())), "ticket-keys")
    }

    #openRing(sealed: Buffer): TicketKeySet {
        const json = this.kek.open(sealed, "ticket-keys")
        try {
            return TicketKeySet.fromJSON(JSON.parse(json.toString("utf8")))
        } finally {
            json.fill(0)
        }
    }

    /** Checks the KEK against the one the store was created with. @throws KekError */
    async checkKek(): Promise<void> {
        const r = await query<{ value: string }>(this.pool, "SELECT value FROM tether_meta WHERE key = 'kek_fingerprint'")
        const f = r.rows[0]?.value
        if (f === undefined) throw new KekError("store: the database has no gateway identity (run `tether-gateway init --store ...`)")
        if (f !== this.kek.fingerprint)
            throw new KekError(
                `store: the KEK from ${this.kek.source} is not the one this store was created with (fingerprint ${this.kek.fingerprint}, store ${f})`
            )
    }

    async loadIdentity(): Promise<KeyPair> {
        const r = await query<{ public_key: Buffer; private_key_sealed: Buffer }>(this.pool, "SELECT * FROM identity")
        const row = r.rows[0]
        if (row === undefined) throw new Error("store: no gateway identity (run `tether-gateway init --store ...`)")
        const privateKey = this.kek.open(row.private_key_sealed, "identity")
        if (!x25519Base(privateKey).equals(row.public_key)) throw new Error("store: the gateway identity is corrupt")
        return { privateKey, publicKey: row.public_key }
    }

    async loadTicketKeys(): Promise<{ version: number; keys: TicketKeySet }> {
        const r = await query<{ version: string; ring_sealed: Buffer }>(this.pool, "SELECT version, ring_sealed FROM ticket_keys")
        const row = r.rows[0]
        if (row === undefined) throw new Error("store: no ticket keys (run `tether-gateway init --store ...`)")
        return { version: Number(row.version), keys: this.#openRing(row.ring_sealed) }
    }

    async ticketKeysVersion(): Promise<number> {
        const r = await query<{ version: string }>(this.pool, "SELECT version FROM ticket_keys")
        return Number(r.rows[0]?.version ?? 0)
    }

    /** Changes the ring under a row lock: one change at a time across the cluster; every node is told. */
    async updateTicketKeys<T>(fn: (keys: TicketKeySet) => T, now: number): Promise<T> {
        return transaction(this.pool, async c => {
            const r = await c.query<{ ring_sealed: Buffer }>("SELECT ring_sealed FROM ticket_keys FOR UPDATE")
            const row = r.rows[0]
            if (row === undefined) throw new Error("store: no ticket keys (run `tether-gateway init --store ...`)")
            const keys = this.#openRing(row.ring_sealed)
            const out = fn(keys)
            await c.query("UPDATE ticket_keys SET version = version + 1, ring_sealed = $1, updated_at = $2", [this.#sealRing(keys), now])
            await c.query("SELECT pg_notify($1, $2)", [PG_CHANNEL, JSON.stringify({ e: "keys", a: [] })])
            return out
        })
    }
}

/**
 * The node's LISTEN connection: notifications on `tether` become StoreEvents. When the connection
 * drops it says `unavailable(true)` and reconnects with a backoff (100 ms doubling to 2 s); once
 * back, `unavailable(false)` and `resync` (what was missed meanwhile must be read again).
 */
export class PgListener {
    readonly #connect: () => pg.Client
    readonly #events: EventEmitter<StoreEvents>
    #client: pg.Client | undefined
    #closed = false
    #down = false
    #timer: NodeJS.Timeout | undefined
    #delay = 100

    constructor(connect: () => pg.Client, events: EventEmitter<StoreEvents>) {
        this.#connect = connect
        this.#events = events
    }

    /** Connects the first time. @throws StoreUnavailable if the server cannot be reached */
    async start(): Promise<void> {
        await guard(() => this.#open())
    }

    async #open(): Promise<void> {
        const c = this.#connect()
        c.on("error", () => this.#lost(c))
        c.on("end", () => this.#lost(c))
        c.on("notification", n => this.#notification(n.payload))
        try {
            await c.connect()
            await c.query(`LISTEN ${PG_CHANNEL}`)
        } catch (err) {
            c.removeAllListeners("end")
            await c.end().catch(() => {})
            throw err
        }
        if (this.#closed) {
            await c.end().catch(() => {})
            return
        }
        this.#client = c
        this.#delay = 100
        if (this.#down) {
            this.#down = false
            this.#events.emit("unavailable", false)
            this.#events.emit("resync")
        }
    }

    #notification(payload: string | undefined): void {
        let m: { e?: unknown; a?: unknown }
        try {
            m = JSON.parse(payload ?? "")
        } catch {
            return
        }
        emitStoreEvent(this.#events, m.e, m.a)
    }

    #lost(c: pg.Client): void {
        if (this.#client !== c && this.#client !== undefined) return
        this.#client = undefined
        c.removeAllListeners("notification")
        if (this.#closed) return
        if (!this.#down) {
            this.#down = true
            this.#events.emit("unavailable", true)
        }
        this.#schedule()
    }

    #schedule(): void {
        if (this.#closed || this.#timer !== undefined) return
        this.#timer = setTimeout(() => {
            this.#timer = undefined
            this.#open().catch(() => {
                this.#delay = Math.min(2000, this.#delay * 2)
                this.#schedule()
            })
        }, this.#delay)
        this.#timer.unref()
    }

    /** Whether the listening connection is up. */
    get up(): boolean {
        return this.#client !== undefined
    }

    async close(): Promise<void> {
        this.#closed = true
        if (this.#timer !== undefined) clearTimeout(this.#timer)
        const c = this.#client
        this.#client = undefined
        if (c !== undefined) await c.end().catch(() => {})
    }
}

/** A URL with its password masked, for log lines and errors. */
export function redactUrl(url: string): string {
    try {
        const u = new URL(url)
        if (u.password !== "") u.password = "***"
        return u.toString()
    } catch {
        return "postgres://(unparsable URL)"
    }
}
