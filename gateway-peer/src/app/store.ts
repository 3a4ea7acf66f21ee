// Where the gateway keeps, per device, the receiving state of the device's stream
// (PROTOCOL.md 12.1: "The gateway keeps, per device, the receiving state (stream_id,
// delivered) in its registry, so a gateway restart does not redeliver"). The Registry
// interface does not carry it, so it has its own small interface: in memory for tests, and a
// table in the registry's SQLite file (its own connection, its own table) by default.
import Database from "better-sqlite3"
import { tightenSqlite, type ModeFixFn } from "../registry/sqlite.js"
import type { ReceiveState } from "./stream.js"

/** Per-device receiving state. Asynchronous so a cluster can keep it in a shared store. */
export interface AppStateStore {
    get(deviceId: string): Promise<ReceiveState | undefined>
    /** Stored before the messages it counts are delivered or acknowledged. */
    put(deviceId: string, state: ReceiveState): Promise<void>
    close(): Promise<void>
}

/** The in-memory twin. */
export class MemoryAppStateStore implements AppStateStore {
    readonly #m = new Map<string, ReceiveState>()

    async get(deviceId: string): Promise<ReceiveState | undefined> {
        const s = this.#m.get(deviceId)
        return s && { ...s }
    }

    async put(deviceId: string, state: ReceiveState): Promise<void> {
        this.#m.set(deviceId, { ...state })
    }

    async close(): Promise<void> {}
}

const TABLE = `
CREATE TABLE IF NOT EXISTS app_streams (
    device_id TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    delivered INTEGER NOT NULL
) STRICT;
`

/** The state in the registry's SQLite file, table `app_streams`. */
export class SqliteAppStateStore implements AppStateStore {
    readonly #db: Database.Database
    readonly #get
    readonly #put

    /**
     * Opens the registry database at `path` (which must exist: `init` creates it) and creates
     * the table if missing. The file and its -wal and -shm are tightened to 0600 (it holds the
     * devices' PSKs), each fix reported to `onModeFix` (default: a warning line on stderr).
     */
    constructor(path: string, opts: { onModeFix?: ModeFixFn } = {}) {
        this.#db = new Database(path, { fileMustExist: true })
        this.#db.pragma("journal_mode = WAL")
        tightenSqlite(path, opts.onModeFix)
        this.#db.pragma("busy_timeout = 5000")
        this.#db.exec(TABLE)
        this.#get = this.#db.prepare<[string], { stream_id: number; delivered: number }>(
            "SELECT stream_id, delivered FROM app_streams WHERE device_id = ?"
        )
        this.#put = this.#db.prepare(
            `INSERT INTO app_streams (device_id, stream_id, delivered) VALUES (?, ?, ?)
             ON CONFLICT(device_id) DO UPDATE SET stream_id = excluded.stream_id, delivered = excluded.delivered`
        )
    }

    async get(deviceId: string): Promise<ReceiveState | undefined> {
        const r = this.#get.get(deviceId)
        return r && { streamId: r.stream_id, delivered: r.delivered }
    }

    async put(deviceId: string, state: ReceiveState): Promise<void> {
        this.#put.run(deviceId, state.streamId, state.delivered)
    }

    async close(): Promise<void> {
        if (this.#db.open) this.#db.close()
    }
}
