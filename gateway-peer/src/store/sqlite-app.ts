// The receiving state and the outbox in the registry's SQLite file (one node, the embedded
// default). Each operation is one transaction, IMMEDIATE when it writes, so a CLI process that
// queues a message on the same file is serialised with the node (busy_timeout waits for it).
// The constructors take the open database of the node's store owner, whose tables
// (SQLITE_APP_SCHEMA) must exist; openAppDatabase opens one so for a node on its own.
import Database from "better-sqlite3"
import { tightenSqlite, type ModeFixFn } from "../registry/sqlite.js"
import { commitGroup, type CommitGroup } from "../registry/commit-group.js"
import { withId } from "./memory-app.js"
import { nextStreamId } from "./stream-id.js"
import {
    QueueFull,
    StoreUnavailable,
    type AppStateStore,
    type OutboundMessage,
    type Outbox,
    type OutboxStream,
    type QueuedMessage,
    type ReceiveState,
} from "./types.js"

/** The tables of the receiving state and of the outbox. */
export const SQLITE_APP_SCHEMA = `
CREATE TABLE IF NOT EXISTS app_streams (
    device_id TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    delivered INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS outbox_streams (
    device_id TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    next_id INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS outbox (
    device_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'response')),
    topic TEXT,
    request_id INTEGER,
    status INTEGER,
    payload BLOB NOT NULL,
    PRIMARY KEY (device_id, id)
) STRICT;
`

/**
 * Opens the registry database at `path` (which must exist: `init` creates it) for the app's
 * stores: WAL, a busy timeout, the tables created if missing. The file and its -wal and -shm
 * are tightened to 0600 (it holds the devices' PSKs), each fix reported to `onModeFix`.
 */
export function openAppDatabase(path: string, opts: { onModeFix?: ModeFixFn } = {}): Database.Database {
    const db = new Database(path, { fileMustExist: true })
    try {
        db.pragma("journal_mode = WAL")
        tightenSqlite(path, opts.onModeFix)
        db.pragma("busy_timeout = 5000")
        db.exec(SQLITE_APP_SCHEMA)
    } catch (err) {
        db.close()
        throw err
    }
    return db
}

/** SQLITE_BUSY (the write lock held elsewhere past busy_timeout) as StoreUnavailable: the device comes back later. */
function unavailable(err: unknown): unknown {
    const code = (err as { code?: unknown }).code
    return typeof code === "string" && code.startsWith("SQLITE_BUSY") ? new StoreUnavailable("the SQLite file is busy") : err
}

/**
 * The receiving state, table `app_streams`. A put goes into the connection's group commit
 * (registry/commit-group.ts): the receiving states stored during one event-loop turn, every
 * device's, and the registry's writes of that turn share one commit.
 */
export class SqliteAppStateStore implements AppStateStore {
    readonly #get
    readonly #put
    readonly #group: CommitGroup

    /**
     * `db`: the open registry database with SQLITE_APP_SCHEMA applied; its file and -wal and
     * -shm are tightened to 0600 here too (every opener of the file checks), fixes reported to
     * `onModeFix` (default: a warning line on stderr). The database stays the caller's.
     */
    constructor(db: Database.Database, opts: { onModeFix?: ModeFixFn } = {}) {
        if (!db.memory) tightenSqlite(db.name, opts.onModeFix)
        const get = db.prepare<[string], { stream_id: number; delivered: number }>(
            "SELECT stream_id, delivered FROM app_streams WHERE device_id = ?"
        )
        const insert = db.prepare("INSERT INTO app_streams (device_id, stream_id, delivered) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        const update = db.prepare(
            "UPDATE app_streams SET stream_id = ?, delivered = ? WHERE device_id = ? AND stream_id = ? AND delivered = ?"
        )
        const read = (deviceId: string): ReceiveState | undefined => {
            const r = get.get(deviceId)
            return r && { streamId: r.stream_id, delivered: r.delivered }
        }
        this.#get = db.transaction(read)
        this.#group = commitGroup(db)
        this.#put = db.transaction((deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): boolean => {
            if (prev === undefined) return insert.run(deviceId, next.streamId, next.delivered).changes === 1
            return update.run(next.streamId, next.delivered, deviceId, prev.streamId, prev.delivered).changes === 1
        })
    }

    async get(deviceId: string): Promise<ReceiveState | undefined> {
        return this.#get(deviceId)
    }

    async put(deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): Promise<boolean> {
        return this.#group.run(() => this.#put(deviceId, next, prev), unavailable)
    }

    /** Nothing to release: the database is the caller's. */
    async close(): Promise<void> {}
}

interface Row {
    id: number
    kind: string
    topic: string | null
    request_id: number | null
    status: number | null
    payload: Buffer
}

/** A stored row as the outbox hands it out. */
export function rowMessage(r: {
    id: number
    kind: string
    topic: string | null
    request_id: number | null
    status: number | null
    payload: Buffer
}): QueuedMessage {
    if (r.kind === "message") return { kind: "message", id: r.id, topic: r.topic ?? "", payload: Buffer.from(r.payload) }
    return { kind: "response", id: r.id, requestId: r.request_id ?? 0, status: r.status ?? 0, payload: Buffer.from(r.payload) }
}

/** The outbox, tables `outbox_streams` (one row per device) and `outbox` (one per message). */
export class SqliteOutbox implements Outbox {
    readonly #enqueue
    readonly #enqueueAll
    readonly #total
    readonly #pending
    readonly #ack
    readonly #restart
    readonly #count
    readonly #clear

    /** `db`: the open registry database with SQLITE_APP_SCHEMA applied (the caller's). */
    constructor(db: Database.Database) {
        const stream = db.prepare<[string], { stream_id: number; next_id: number }>(
            "SELECT stream_id, next_id FROM outbox_streams WHERE device_id = ?"
        )
        const setStream = db.prepare(
            `INSERT INTO outbox_streams (device_id, stream_id, next_id) VALUES (?, ?, ?)
             ON CONFLICT(device_id) DO UPDATE SET stream_id = excluded.stream_id, next_id = excluded.next_id`
        )
        const count = db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM outbox WHERE device_id = ?")
        this.#total = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM outbox")
        const insert = db.prepare(
            "INSERT INTO outbox (device_id, id, kind, topic, request_id, status, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        const after = db.prepare<[string, number], Row>(
            "SELECT id, kind, topic, request_id, status, payload FROM outbox WHERE device_id = ? AND id > ? ORDER BY id"
        )
        const ids = db.prepare<[string], { id: number }>("SELECT id FROM outbox WHERE device_id = ? ORDER BY id")
        const renumber = db.prepare("UPDATE outbox SET id = ? WHERE device_id = ? AND id = ?")
        const release = db.prepare("DELETE FROM outbox WHERE device_id = ? AND id <= ?")
        const dropResponses = db.prepare("DELETE FROM outbox WHERE device_id = ? AND kind = 'response'")
        const clearMessages = db.prepare("DELETE FROM outbox WHERE device_id = ?")
        const clearStream = db.prepare("DELETE FROM outbox_streams WHERE device_id = ?")

        const pending = (deviceId: string, from: number): OutboxStream => {
            const s = stream.get(deviceId)
            if (s === undefined) return { streamId: 0, nextId: 1, messages: [] }
            return { streamId: s.stream_id, nextId: s.next_id, messages: after.all(deviceId, from).map(rowMessage) }
        }
        this.#pending = db.transaction(pending)
        this.#count = (deviceId: string): number => (count.get(deviceId) as { n: number }).n
        // stores the first messages of `ms` that fit under `max`; returns the stream and the first id
        const store = (deviceId: string, ms: readonly OutboundMessage[], max: number) => {
            let s = stream.get(deviceId)
            if (s === undefined) s = { stream_id: nextStreamId(0), next_id: 1 }
            const room = Math.max(0, max - (count.get(deviceId) as { n: number }).n)
            const take = ms.slice(0, room)
            take.forEach((m, i) => {
                const id = s.next_id + i
                if (m.kind === "message") insert.run(deviceId, id, "message", m.topic, null, null, m.payload)
                else insert.run(deviceId, id, "response", null, m.requestId, m.status, m.payload)
            })
            if (take.length > 0) setStream.run(deviceId, s.stream_id, s.next_id + take.length)
            return { streamId: s.stream_id, firstId: s.next_id, stored: take.length }
        }
        this.#enqueue = db.transaction((deviceId: string, m: OutboundMessage, max: number) => {
            const r = store(deviceId, [m], max)
            if (r.stored === 0) throw new QueueFull(deviceId)
            return { ...withId(m, r.firstId), streamId: r.streamId }
        })
        this.#enqueueAll = db.transaction(
            (deviceId: string, ms: readonly OutboundMessage[], max: number) => store(deviceId, ms, max).stored
        )
        this.#ack = db.transaction((deviceId: string, streamId: number, id: number, strict: boolean): number => {
            const s = stream.get(deviceId)
            if (s === undefined || s.stream_id !== streamId) return 0
            if (id >= s.next_id) {
                if (strict) throw new RangeError(`outbox: ACK ${id} of a message never sent`)
                id = s.next_id - 1
            }
            return release.run(deviceId, id).changes
        })
        this.#restart = db.transaction((deviceId: string, drop: boolean) => {
            const old = stream.get(deviceId)?.stream_id ?? 0
            const dropped = drop ? dropResponses.run(deviceId).changes : 0
            // ascending: each new id is at most its old one and every id below it is taken by
            // an already renumbered row, so no step collides with a row not yet renumbered
            const rows = ids.all(deviceId)
            rows.forEach((r, i) => {
                if (r.id !== i + 1) renumber.run(i + 1, deviceId, r.id)
            })
            const streamId = nextStreamId(old)
            setStream.run(deviceId, streamId, rows.length + 1)
            return { ...pending(deviceId, 0), dropped }
        })
        this.#clear = db.transaction((deviceId: string) => {
            clearMessages.run(deviceId)
            clearStream.run(deviceId)
        })
    }

    async enqueue(deviceId: string, m: OutboundMessage, max: number): Promise<QueuedMessage & { streamId: number }> {
        return this.#enqueue.immediate(deviceId, m, max)
    }

    async enqueueAll(deviceId: string, ms: readonly OutboundMessage[], max: number): Promise<number> {
        return ms.length === 0 ? 0 : this.#enqueueAll.immediate(deviceId, ms, max)
    }

    async total(): Promise<number> {
        return this.#total.get()?.n ?? 0
    }

    async pending(deviceId: string, after = 0): Promise<OutboxStream> {
        return this.#pending(deviceId, after)
    }

    async ack(deviceId: string, streamId: number, id: number, strict: boolean): Promise<number> {
        return this.#ack.immediate(deviceId, streamId, id, strict)
    }

    async restart(deviceId: string, dropResponses: boolean): Promise<OutboxStream & { dropped: number }> {
        return this.#restart.immediate(deviceId, dropResponses)
    }

    async count(deviceId: string): Promise<number> {
        return this.#count(deviceId)
    }

    async clear(deviceId: string): Promise<void> {
        this.#clear.immediate(deviceId)
    }
}
