// Group commit for one SQLite connection (issue 15). The registry runs at synchronous = FULL
// (registry/sqlite.ts, SYNCHRONOUS: a commit is on disk before the gateway acts on it), and a
// commit costs an fsync of the WAL: measured here 67 µs of CPU and 174 µs of wall time per
// one-row commit, against 19 µs (CPU) per row when four rows share a commit and 10 µs at
// sixteen. So the writes of the hot paths (a session's confirmation, an early-data
// compare-and-set, a device stream's receiving state) do not commit one by one: each is queued
// here, and every write queued during one event-loop turn runs in one IMMEDIATE transaction at
// the turn's end (setImmediate), each inside a savepoint of its own:
//
//   - a write that throws is rolled back alone (its savepoint) and its promise rejects with that
//     error; the others commit;
//   - a transaction that cannot start or commit (the write lock held elsewhere past
//     busy_timeout, an I/O error, a closed database) rejects every write of the group, each
//     with its caller's mapping of the error (the registry's RegistryBusy, the app store's
//     StoreUnavailable); nothing of the group is on disk then;
//   - a promise resolves only after the COMMIT returned: nothing a caller does with the result
//     (a TICKET sent, a device acknowledged) can run before its write is durable.
//
// What changes is latency: a write waits for the end of the turn it was queued in (the I/O of
// that turn is already read), never longer. One group per open database (commitGroup), so the
// registry and the node's app tables, which share the file's connection, share the commit.
import type Database from "better-sqlite3"

/** One queued write. */
interface Op {
    readonly fn: () => unknown
    readonly mapError: (err: unknown) => unknown
    readonly resolve: (value: unknown) => void
    readonly reject: (err: unknown) => void
}

/** The writes of one connection queued for the end of the current event-loop turn. */
export class CommitGroup {
    readonly #db: Database.Database
    #ops: Op[] = []
    #scheduled = false
    /** every op of a group in one IMMEDIATE transaction */
    readonly #all: Database.Transaction<(ops: readonly Op[], out: Outcome[]) => void>
    /** commits so far (tests, the bench) */
    commits = 0
    /** writes committed so far (tests, the bench) */
    writes = 0

    constructor(db: Database.Database) {
        this.#db = db
        // a transaction function called inside another one runs as a SAVEPOINT: an op that
        // throws rolls back its own statements only
        const one = db.transaction((fn: () => unknown) => fn())
        this.#all = db.transaction((ops: readonly Op[], out: Outcome[]) => {
            for (const op of ops) {
                try {
                    out.push({ ok: true, value: one(op.fn) })
                } catch (err) {
                    out.push({ ok: false, err })
                }
            }
        })
    }

    /**
     * Queues `fn` (synchronous statements on this connection) for the group of this turn.
     * @param mapError what the promise rejects with when the group's transaction fails as a whole
     * @returns fn's value once the transaction holding it has committed
     */
    run<T>(fn: () => T, mapError: (err: unknown) => unknown = e => e): Promise<T> {
        return new Promise<T>((resolve, reject) => {
            this.#ops.push({ fn, mapError, resolve: resolve as (v: unknown) => void, reject })
            if (!this.#scheduled) {
                this.#scheduled = true
                setImmediate(() => this.flush())
            }
        })
    }

    /** Commits what is queued now (the end of the turn does it; close() calls it before closing). */
    flush(): void {
        this.#scheduled = false
        const ops = this.#ops
        if (ops.length === 0) return
        this.#ops = []
        const out: Outcome[] = []
        try {
            if (!this.#db.open) throw new TypeError("The database connection is not open")
            this.#all.immediate(ops, out)
        } catch (err) {
            for (const op of ops) op.reject(op.mapError(err))
            return
        }
        this.commits++
        this.writes += ops.length
        ops.forEach((op, i) => {
            const o = out[i] as Outcome
            if (o.ok) op.resolve(o.value)
            else op.reject(o.err)
        })
    }
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly err: unknown }

const groups = new WeakMap<Database.Database, CommitGroup>()

/** The one CommitGroup of an open database connection. */
export function commitGroup(db: Database.Database): CommitGroup {
    let g = groups.get(db)
    if (g === undefined) groups.set(db, (g = new CommitGroup(db)))
    return g
}
