// Opening a node's store: a state directory with its SQLite registry (one node, the default), or a
// PostgreSQL database shared by a cluster (`--store postgres://...` or $TETHER_STORE).
//
//   SQLite:      <state>/identity.json, <state>/ticket-keys.json (0600 files), <state>/registry.db
//                (PSKs sealed under the KEK, the receiving state, the outbox, the live view, the
//                event log), the KEK in $TETHER_KEK, --kek-file, or <state>/kek (made by init).
//   PostgreSQL:  everything in the database, every secret sealed under the KEK, which must come
//                from $TETHER_KEK or --kek-file (never from the database).
import { EventEmitter } from "node:events"
import { join } from "node:path"
import type pg from "pg"
import { createKekFile, Kek, KEK_FILE, KekError, loadKek } from "../crypto/kek.js"
import { randomBytes } from "../crypto/random.js"
import { generateKeyPair, type KeyPair } from "../crypto/x25519.js"
import { SqliteRegistry } from "../registry/sqlite.js"
import { initState, loadState, StateError, type ModeFixFn } from "../state.js"
import { TicketKeySet } from "../tickets.js"
import { PG_APP_SCHEMA, PgAppStateStore, PgOutbox } from "./postgres-app.js"
import {
    migrate,
    PG_CHANNEL,
    PG_CORE_SCHEMA,
    PgListener,
    PgRegistry,
    PgSecrets,
    PgSessions,
    query,
    redactUrl,
    schemaVersion,
    type PgMigration,
} from "./postgres.js"
import { SQLITE_APP_SCHEMA, SqliteAppStateStore, SqliteOutbox } from "./sqlite-app.js"
import { SqliteEventLog, SqliteSessions } from "./sqlite-node.js"
import type { GatewayStore, StoreEvents } from "./types.js"

/** The environment variable naming the store (a PostgreSQL URL), like --store. */
export const STORE_ENV = "TETHER_STORE"

/** The PostgreSQL schema, step by step. A new step is appended, never edited. */
export const PG_MIGRATIONS: readonly PgMigration[] = [
    { version: 1, name: "registry, identity, ticket keys, sessions", sql: PG_CORE_SCHEMA },
    { version: 2, name: "receiving state and outbox", sql: PG_APP_SCHEMA },
]

/** Where a command's state is. */
export interface StoreSpec {
    /** the state directory (SQLite), used when `url` is not given */
    readonly stateDir: string
    /** a postgres:// URL */
    readonly url?: string
    /** the KEK file; default $TETHER_KEK, else (SQLite) <state>/kek */
    readonly kekFile?: string
    /** the state directory was named explicitly (--state): then $TETHER_STORE does not apply */
    readonly explicitState?: boolean
    readonly env?: NodeJS.ProcessEnv
    readonly onModeFix?: ModeFixFn
    /**
     * SQLite: how long a write waits for another process's write lock before SQLITE_BUSY
     * (default BUSY_TIMEOUT_MS); `serve --workers` raises it, its workers sharing the file
     */
    readonly busyTimeoutMs?: number
}

/** Whether `url` names a PostgreSQL store. */
export function isPostgresUrl(url: string): boolean {
    return /^postgres(ql)?:\/\//.test(url)
}

function storeUrl(spec: StoreSpec): string | undefined {
    // an explicit --state wins over the environment's store, as an explicit --kek-file over $TETHER_KEK
    const url = spec.url ?? (spec.explicitState === true ? undefined : (spec.env ?? process.env)[STORE_ENV])
    if (url === undefined || url === "") return undefined
    if (!isPostgresUrl(url)) throw new StateError(`store: ${redactUrl(url)} is not a postgres:// URL`)
    return url
}

// ---- SQLite ----------------------------------------------------------------------------------

class SqliteStore implements GatewayStore {
    readonly kind = "sqlite" as const
    readonly events = new EventEmitter<StoreEvents>()
    readonly receiving
    readonly outbox
    readonly sessions
    readonly #log: SqliteEventLog

    constructor(
        readonly dir: string,
        readonly registry: SqliteRegistry,
        readonly identity: KeyPair
    ) {
        const db = registry.db
        db.exec(SQLITE_APP_SCHEMA)
        this.receiving = new SqliteAppStateStore(db)
        this.outbox = new SqliteOutbox(db)
        this.#log = new SqliteEventLog(db, this.events)
        this.sessions = new SqliteSessions(db, (d, n, s) => this.#log.append("claimed", [d, n, s]))
    }

    get where(): string {
        return this.dir
    }

    async loadIdentity(): Promise<KeyPair> {
        return this.identity
    }

    async loadTicketKeys(): Promise<TicketKeySet> {
        return loadState(this.dir).ticketKeys
    }

    async updateTicketKeys<T>(fn: (keys: TicketKeySet) => T): Promise<T> {
        const st = loadState(this.dir)
        const out = fn(st.ticketKeys)
        st.saveTicketKeys()
        this.#log.append("keys", [])
        return out
    }

    async announce<K extends keyof StoreEvents>(event: K, ...args: StoreEvents[K]): Promise<void> {
        this.#log.append(event, args)
    }

    /** Appends to the event log now (inside the caller's transaction, if any). */
    logEvent<K extends keyof StoreEvents>(event: K, args: StoreEvents[K]): void {
        this.#log.append(event, args)
    }

    async watch(): Promise<void> {
        this.#log.start()
    }

    async close(): Promise<void> {
        this.#log.stop()
        await this.registry.close()
    }
}

/** An explicit --kek-file wins over $TETHER_KEK (the help says the variable is the default). */
function kekEnv(spec: StoreSpec): NodeJS.ProcessEnv | undefined {
    return spec.kekFile !== undefined ? {} : spec.env
}

function sqliteKek(spec: StoreSpec): Kek {
    const file = spec.kekFile ?? join(spec.stateDir, KEK_FILE)
    const kek = loadKek({ file, env: kekEnv(spec) })
    if (kek !== undefined) return kek
    if (spec.kekFile !== undefined) throw new KekError(`kek: ${spec.kekFile} does not exist`)
    // init, or a state directory from before the KEK: its KEK is made now, next to it (a backup of
    // the registry file alone then holds no PSK; keep the state directory's backups apart)
    return createKekFile(file)
}

function openSqlite(spec: StoreSpec, create: boolean): SqliteStore {
    const state = create ? initState(spec.stateDir, { onModeFix: spec.onModeFix }) : loadState(spec.stateDir, { onModeFix: spec.onModeFix })
    const kek = sqliteKek(spec)
    // a revocation is in the event log in its own transaction: every node closes the session
    let store: SqliteStore | undefined
    const onRevoked = (id: string) => store?.logEvent("revoked", [id])
    const registry = new SqliteRegistry(state.registryPath, {
        create,
        onModeFix: spec.onModeFix,
        kek,
        onRevoked,
        busyTimeoutMs: spec.busyTimeoutMs,
    })
    store = new SqliteStore(spec.stateDir, registry, state.identity)
    return store
}

// ---- PostgreSQL ------------------------------------------------------------------------------

class PgStore implements GatewayStore {
    readonly kind = "postgres" as const
    readonly events = new EventEmitter<StoreEvents>()
    readonly registry: PgRegistry
    readonly receiving: PgAppStateStore
    readonly outbox: PgOutbox
    readonly sessions: PgSessions
    readonly secrets: PgSecrets
    readonly #listener: PgListener
    #watching = false

    constructor(
        readonly pool: pg.Pool,
        readonly kek: Kek,
        readonly where: string,
        client: () => pg.Client
    ) {
        this.registry = new PgRegistry(pool, kek)
        this.receiving = new PgAppStateStore(pool)
        this.outbox = new PgOutbox(pool)
        this.sessions = new PgSessions(pool)
        this.secrets = new PgSecrets(pool, kek)
        this.#listener = new PgListener(client, this.events)
    }

    loadIdentity(): Promise<KeyPair> {
        return this.secrets.loadIdentity()
    }

    async loadTicketKeys(): Promise<TicketKeySet> {
        return (await this.secrets.loadTicketKeys()).keys
    }

    updateTicketKeys<T>(fn: (keys: TicketKeySet) => T): Promise<T> {
        return this.secrets.updateTicketKeys(fn, Math.floor(Date.now() / 1000))
    }

    async announce<K extends keyof StoreEvents>(event: K, ...args: StoreEvents[K]): Promise<void> {
        await query(this.pool, "SELECT pg_notify($1, $2)", [PG_CHANNEL, JSON.stringify({ e: event, a: args })])
    }

    async watch(): Promise<void> {
        if (this.#watching) return
        this.#watching = true
        await this.#listener.start()
    }

    async close(): Promise<void> {
        await this.#listener.close()
        await this.pool.end()
    }
}

async function pgPool(url: string): Promise<{ pool: pg.Pool; client: () => pg.Client }> {
    let pgmod: typeof pg
    try {
        pgmod = (await import("pg")).default
    } catch {
        throw new StateError("store: the pg package is not installed (npm install)")
    }
    const config = { connectionString: url, connectionTimeoutMillis: 2000, application_name: "tether-gateway" }
    const pool = new pgmod.Pool({ ...config, max: 16, idleTimeoutMillis: 10_000 })
    // an idle client whose server went away: the next query reports it (StoreUnavailable)
    pool.on("error", () => {})
    return { pool, client: () => new pgmod.Client(config) }
}

function pgKek(spec: StoreSpec): Kek {
    const kek = loadKek({ file: spec.kekFile, env: kekEnv(spec) })
    if (kek === undefined)
        throw new KekError(
            spec.kekFile !== undefined
                ? `kek: ${spec.kekFile} does not exist`
                : "kek: a PostgreSQL store needs its key-encryption key: set $TETHER_KEK or give --kek-file (init --store --kek-file F creates F)"
        )
    return kek
}

async function openPg(url: string, spec: StoreSpec, init: { identity: KeyPair; keys: TicketKeySet } | undefined): Promise<PgStore> {
    const kek = init === undefined ? pgKek(spec) : (loadKek({ file: spec.kekFile, env: kekEnv(spec) }) ?? createPgKek(spec))
    const { pool, client } = await pgPool(url)
    const store = new PgStore(pool, kek, redactUrl(url), client)
    try {
        const v = await schemaVersion(pool)
        if (init !== undefined) {
            await migrate(pool, PG_MIGRATIONS)
            await store.secrets.create(init.identity, init.keys, Math.floor(Date.now() / 1000))
        } else {
            if (v === 0) throw new StateError(`store: ${redactUrl(url)} holds no Tether schema (run \`tether-gateway init --store ...\`)`)
            // a newer gateway's steps run once, under the migration lock
            if (v < PG_MIGRATIONS.length) await migrate(pool, PG_MIGRATIONS)
            await store.secrets.checkKek()
        }
    } catch (err) {
        await pool.end().catch(() => {})
        throw err
    }
    return store
}

function createPgKek(spec: StoreSpec): Kek {
    if (spec.kekFile === undefined)
        throw new KekError(
            "kek: init --store needs --kek-file FILE (created 0600 if missing) or $TETHER_KEK; the KEK never goes into the database"
        )
    return createKekFile(spec.kekFile)
}

// ---- entry points ------------------------------------------------------------------------------

/**
 * Opens the store a command names: PostgreSQL for a URL (`spec.url` or $TETHER_STORE), else the
 * state directory.
 * @throws StateError, KekError, RegistryOpenError with messages fit for the operator
 */
export async function openStore(spec: StoreSpec): Promise<GatewayStore> {
    const url = storeUrl(spec)
    if (url !== undefined) return openPg(url, spec, undefined)
    return openSqlite(spec, false)
}

/**
 * Creates a store: the identity, the first ticket keys, the schema (and for SQLite the state
 * directory and its KEK file). Refuses to overwrite an identity.
 */
export async function initStore(spec: StoreSpec): Promise<GatewayStore> {
    const url = storeUrl(spec)
    if (url === undefined) return openSqlite(spec, true)
    const now = Math.floor(Date.now() / 1000)
    return openPg(url, spec, { identity: generateKeyPair(randomBytes), keys: TicketKeySet.create(now, randomBytes) })
}

/**
 * Copies a one-node SQLite state (identity, ticket keys, devices with their generations and
 * pseudonyms, receiving state, queued messages) into a new PostgreSQL store, so that the devices
 * carry on without re-pairing: their tickets stay valid (same keys, same generations).
 * @returns how many devices were copied
 */
export async function migrateSqliteToPg(from: StoreSpec, url: string, to: StoreSpec): Promise<{ devices: number; messages: number }> {
    const src = openSqlite(from, false)
    try {
        const identity = await src.loadIdentity()
        const keys = await src.loadTicketKeys()
        const dst = await openPg(url, to, { identity, keys })
        try {
            let devices = 0
            let messages = 0
            for (const d of await src.registry.listDevices()) {
                await dst.registry.putDevice(d)
                devices++
                const recv = await src.receiving.get(d.id)
                if (recv !== undefined) await dst.receiving.put(d.id, recv, undefined)
                const q = await src.outbox.pending(d.id)
                for (const m of q.messages) {
                    const { id: _id, ...rest } = m
                    await dst.outbox.enqueue(d.id, rest, Number.MAX_SAFE_INTEGER)
                    messages++
                }
            }
            return { devices, messages }
        } finally {
            await dst.close()
        }
    } finally {
        await src.close()
    }
}
