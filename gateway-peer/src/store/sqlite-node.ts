// The one-node store's shared parts in the registry's SQLite file (schema version 3): the live
// view (`sessions`) and the event log (`events`) through which CLI processes tell the running
// `serve` what they changed (a revocation, a key rotation, a queued message). SQLite has no
// LISTEN/NOTIFY: the node polls the log (one indexed query every pollMs) and prunes it.
import { EventEmitter } from "node:events"
import type Database from "better-sqlite3"
import { emitStoreEvent, sessionFromRow, type SessionDbRow, type SessionDirectory, type SessionRow, type StoreEvents } from "./types.js"

/** The live view in the registry file. */
export class SqliteSessions implements SessionDirectory {
    readonly #claim
    readonly #release
    readonly #touch
    readonly #releaseNode
    readonly #list
    readonly #get

    constructor(
        readonly db: Database.Database,
        announce: (deviceId: string, node: string, sessionId: string) => void
    ) {
        const get = db.prepare<[string], SessionDbRow>("SELECT * FROM sessions WHERE device_id = ?")
        this.#get = get
        const put = db.prepare(
            `INSERT INTO sessions (device_id, node, session_id, since, remote, last_activity, generation, resumed)
             VALUES (@deviceId, @node, @sessionId, @since, @remote, @lastActivity, @generation, @resumed)
             ON CONFLICT(device_id) DO UPDATE SET node = excluded.node, session_id = excluded.session_id, since = excluded.since,
                remote = excluded.remote, last_activity = excluded.last_activity, generation = excluded.generation,
                resumed = excluded.resumed`
        )
        this.#claim = db.transaction((row: SessionRow): SessionRow | undefined => {
            const old = get.get(row.deviceId)
            put.run({ ...row, resumed: row.resumed ? 1 : 0 })
            if (old === undefined || (old.node === row.node && old.session_id === row.sessionId)) return undefined
            announce(row.deviceId, row.node, row.sessionId)
            return sessionFromRow(old)
        })
        this.#release = db.prepare("DELETE FROM sessions WHERE device_id = ? AND node = ? AND session_id = ?")
        const touch = db.prepare("UPDATE sessions SET last_activity = max(last_activity, ?) WHERE device_id = ? AND node = ?")
        this.#touch = db.transaction((node: string, activity: ReadonlyMap<string, number>) => {
            for (const [id, t] of activity) touch.run(t, id, node)
        })
        this.#releaseNode = db.prepare("DELETE FROM sessions WHERE node = ?")
        this.#list = db.prepare<[], SessionDbRow>("SELECT * FROM sessions ORDER BY node, device_id")
    }

    async claim(row: SessionRow): Promise<SessionRow | undefined> {
        return this.#claim.immediate(row)
    }

    async release(deviceId: string, node: string, sessionId: string): Promise<void> {
        this.#release.run(deviceId, node, sessionId)
    }

    async touch(node: string, activity: ReadonlyMap<string, number>): Promise<void> {
        if (activity.size > 0) this.#touch.immediate(node, activity)
    }

    async releaseNode(node: string): Promise<void> {
        this.#releaseNode.run(node)
    }

    async get(deviceId: string): Promise<SessionRow | undefined> {
        const r = this.#get.get(deviceId)
        return r === undefined ? undefined : sessionFromRow(r)
    }

    async list(): Promise<SessionRow[]> {
        return this.#list.all().map(sessionFromRow)
    }
}

/** How long an event stays in the log (a node that polls less often than this misses it). */
const EVENT_TTL_MS = 10 * 60 * 1000

/**
 * The event log: `announce` appends, `start` polls from the log's current end and emits what
 * others (and this process) appended.
 */
export class SqliteEventLog {
    readonly #insert
    readonly #since
    readonly #last
    readonly #prune
    #seq = 0
    #timer: NodeJS.Timeout | undefined

    constructor(
        db: Database.Database,
        readonly events: EventEmitter<StoreEvents>
    ) {
        this.#insert = db.prepare("INSERT INTO events (name, args, at) VALUES (?, ?, ?)")
        this.#since = db.prepare<[number], { seq: number; name: string; args: string }>(
            "SELECT seq, name, args FROM events WHERE seq > ? ORDER BY seq LIMIT 1000"
        )
        this.#last = db.prepare<[], { seq: number | null }>("SELECT max(seq) AS seq FROM events")
        this.#prune = db.prepare("DELETE FROM events WHERE at < ?")
    }

    append(name: keyof StoreEvents, args: readonly unknown[]): void {
        this.#insert.run(name, JSON.stringify(args), Date.now())
    }

    /** Starts polling every `pollMs` from the log's current end. */
    start(pollMs = 200): void {
        if (this.#timer !== undefined) return
        this.#seq = this.#last.get()?.seq ?? 0
        let n = 0
        this.#timer = setInterval(() => {
            try {
                this.poll()
                if (++n % 1000 === 0) this.#prune.run(Date.now() - EVENT_TTL_MS)
            } catch {
                // a busy database: the next poll reads the same rows
            }
        }, pollMs)
        this.#timer.unref()
    }

    /** Emits what was appended since the last poll. */
    poll(): void {
        for (;;) {
            const rows = this.#since.all(this.#seq)
            for (const r of rows) {
                this.#seq = r.seq
                let args: unknown
                try {
                    args = JSON.parse(r.args)
                } catch {
                    continue
                }
                emitStoreEvent(this.events, r.name, args)
            }
            if (rows.length < 1000) return
        }
    }

    stop(): void {
        if (this.#timer !== undefined) clearInterval(this.#timer)
        this.#timer = undefined
    }
}
