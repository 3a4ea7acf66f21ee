// The receiving state and the outbox in PostgreSQL (a cluster's shared store). Every outbox
// operation that writes is one transaction that first locks the device's row of
// `outbox_streams` (SELECT ... FOR UPDATE), so the operations of one device are serialised
// across every node; a transaction that fails is rolled back and its client released. Reads
// and the receiving state's compare-and-set are single statements.
import type pg from "pg"
import { query, transaction } from "./postgres.js"
import { nextStreamId } from "./stream-id.js"
import { withId } from "./memory-app.js"
import {
    QueueFull,
    type AppStateStore,
    type OutboundMessage,
    type Outbox,
    type OutboxStream,
    type QueuedMessage,
    type ReceiveState,
} from "./types.js"

/**
 * The tables, as one migration step (run once by the store owner). Ids are uint32 on the wire,
 * hence BIGINT; node-postgres returns BIGINT as a string, converted with Number (exact below
 * 2^53).
 */
export const PG_APP_SCHEMA = `
CREATE TABLE app_streams (
    device_id TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL,
    delivered BIGINT NOT NULL
);
CREATE TABLE outbox_streams (
    device_id TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL,
    next_id BIGINT NOT NULL
);
CREATE TABLE outbox (
    device_id TEXT NOT NULL,
    id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'response')),
    topic TEXT,
    request_id BIGINT,
    status INTEGER,
    payload BYTEA NOT NULL,
    PRIMARY KEY (device_id, id)
);
`

/** The receiving state, table `app_streams`. */
export class PgAppStateStore implements AppStateStore {
    constructor(readonly pool: pg.Pool) {}

    async get(deviceId: string): Promise<ReceiveState | undefined> {
        const r = await query<{ stream_id: string; delivered: string }>(
            this.pool,
            "SELECT stream_id, delivered FROM app_streams WHERE device_id = $1",
            [deviceId]
        )
        const row = r.rows[0]
        return row && { streamId: Number(row.stream_id), delivered: Number(row.delivered) }
    }

    async put(deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): Promise<boolean> {
        const r =
            prev === undefined
                ? await query(
                      this.pool,
                      "INSERT INTO app_streams (device_id, stream_id, delivered) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                      [deviceId, next.streamId, next.delivered]
                  )
                : await query(
                      this.pool,
                      "UPDATE app_streams SET stream_id = $2, delivered = $3 WHERE device_id = $1 AND stream_id = $4 AND delivered = $5",
                      [deviceId, next.streamId, next.delivered, prev.streamId, prev.delivered]
                  )
        return r.rowCount === 1
    }

    /** Nothing to release: the pool is the caller's. */
    async close(): Promise<void> {}
}

interface PgRow {
    id: string
    kind: string
    topic: string | null
    request_id: string | null
    status: number | null
    payload: Buffer
}

function pgMessage(r: PgRow): QueuedMessage {
    if (r.kind === "message") return { kind: "message", id: Number(r.id), topic: r.topic ?? "", payload: r.payload }
    return { kind: "response", id: Number(r.id), requestId: Number(r.request_id ?? 0), status: r.status ?? 0, payload: r.payload }
}

/** Locks the device's stream row (creating none); undefined when the device has no stream. */
async function lockStream(c: pg.PoolClient, deviceId: string): Promise<{ streamId: number; nextId: number } | undefined> {
    const r = await c.query<{ stream_id: string; next_id: string }>(
        "SELECT stream_id, next_id FROM outbox_streams WHERE device_id = $1 FOR UPDATE",
        [deviceId]
    )
    const row = r.rows[0]
    return row && { streamId: Number(row.stream_id), nextId: Number(row.next_id) }
}

/** Creates the device's stream row if missing (a concurrent creator wins), then locks it. */
async function lockOrCreateStream(c: pg.PoolClient, deviceId: string): Promise<{ streamId: number; nextId: number }> {
    await c.query("INSERT INTO outbox_streams (device_id, stream_id, next_id) VALUES ($1, $2, 1) ON CONFLICT DO NOTHING", [
        deviceId,
        nextStreamId(0),
    ])
    const s = await lockStream(c, deviceId)
    if (s === undefined) throw new Error("outbox: the stream row vanished")
    return s
}

/** Stores the first messages of `ms` that fit under `max` (inside the caller's transaction). */
async function store(
    c: pg.PoolClient,
    deviceId: string,
    ms: readonly OutboundMessage[],
    max: number
): Promise<{ streamId: number; firstId: number; stored: number }> {
    const s = await lockOrCreateStream(c, deviceId)
    const n = await c.query<{ n: string }>("SELECT COUNT(*) AS n FROM outbox WHERE device_id = $1", [deviceId])
    const take = ms.slice(0, Math.max(0, max - Number(n.rows[0]?.n ?? 0)))
    for (const [i, m] of take.entries())
        await c.query(
            "INSERT INTO outbox (device_id, id, kind, topic, request_id, status, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            m.kind === "message"
                ? [deviceId, s.nextId + i, "message", m.topic, null, null, m.payload]
                : [deviceId, s.nextId + i, "response", null, m.requestId, m.status, m.payload]
        )
    if (take.length > 0) await c.query("UPDATE outbox_streams SET next_id = $2 WHERE device_id = $1", [deviceId, s.nextId + take.length])
    return { streamId: s.streamId, firstId: s.nextId, stored: take.length }
}

const COLUMNS = "id, kind, topic, request_id, status, payload"

/** The outbox, tables `outbox_streams` (one row per device) and `outbox` (one per message). */
export class PgOutbox implements Outbox {
    constructor(readonly pool: pg.Pool) {}

    async enqueue(deviceId: string, m: OutboundMessage, max: number): Promise<QueuedMessage & { streamId: number }> {
        return transaction(this.pool, async c => {
            const r = await store(c, deviceId, [m], max)
            if (r.stored === 0) throw new QueueFull(deviceId)
            return { ...withId(m, r.firstId), streamId: r.streamId }
        })
    }

    async enqueueAll(deviceId: string, ms: readonly OutboundMessage[], max: number): Promise<number> {
        if (ms.length === 0) return 0
        return transaction(this.pool, async c => (await store(c, deviceId, ms, max)).stored)
    }

    async total(): Promise<number> {
        const r = await query<{ n: string }>(this.pool, "SELECT COUNT(*) AS n FROM outbox")
        return Number(r.rows[0]?.n ?? 0)
    }

    async pending(deviceId: string, after = 0): Promise<OutboxStream> {
        // one statement: one snapshot of the stream row and its messages
        const r = await query<{ stream_id: string; next_id: string } & { [K in keyof PgRow]: PgRow[K] | null }>(
            this.pool,
            `SELECT s.stream_id, s.next_id, o.id, o.kind, o.topic, o.request_id, o.status, o.payload
             FROM outbox_streams s LEFT JOIN outbox o ON o.device_id = s.device_id AND o.id > $2
             WHERE s.device_id = $1 ORDER BY o.id`,
            [deviceId, after]
        )
        const first = r.rows[0]
        if (first === undefined) return { streamId: 0, nextId: 1, messages: [] }
        return {
            streamId: Number(first.stream_id),
            nextId: Number(first.next_id),
            messages: r.rows.filter(row => row.id !== null).map(row => pgMessage(row as PgRow)),
        }
    }

    async ack(deviceId: string, streamId: number, id: number, strict: boolean): Promise<number> {
        return transaction(this.pool, async c => {
            const s = await lockStream(c, deviceId)
            if (s === undefined || s.streamId !== streamId) return 0
            if (id >= s.nextId) {
                if (strict) throw new RangeError(`outbox: ACK ${id} of a message never sent`)
                id = s.nextId - 1
            }
            const r = await c.query("DELETE FROM outbox WHERE device_id = $1 AND id <= $2", [deviceId, id])
            return r.rowCount ?? 0
        })
    }

    async restart(deviceId: string, dropResponses: boolean): Promise<OutboxStream & { dropped: number }> {
        return transaction(this.pool, async c => {
            const s = await lockOrCreateStream(c, deviceId)
            const dropped = dropResponses
                ? ((await c.query("DELETE FROM outbox WHERE device_id = $1 AND kind = 'response'", [deviceId])).rowCount ?? 0)
                : 0
            // renumbered 1, 2, ... in order, through negative ids so no row meets another's key
            await c.query("UPDATE outbox SET id = -id WHERE device_id = $1", [deviceId])
            await c.query(
                `UPDATE outbox o SET id = r.n
                 FROM (SELECT id, row_number() OVER (ORDER BY id DESC) AS n FROM outbox WHERE device_id = $1) r
                 WHERE o.device_id = $1 AND o.id = r.id`,
                [deviceId]
            )
            const rows = await c.query<PgRow>(`SELECT ${COLUMNS} FROM outbox WHERE device_id = $1 ORDER BY id`, [deviceId])
            const streamId = nextStreamId(s.streamId)
            const nextId = rows.rows.length + 1
            await c.query("UPDATE outbox_streams SET stream_id = $2, next_id = $3 WHERE device_id = $1", [deviceId, streamId, nextId])
            return { streamId, nextId, messages: rows.rows.map(pgMessage), dropped }
        })
    }

    async count(deviceId: string): Promise<number> {
        const r = await query<{ n: string }>(this.pool, "SELECT COUNT(*) AS n FROM outbox WHERE device_id = $1", [deviceId])
        return Number(r.rows[0]?.n ?? 0)
    }

    async clear(deviceId: string): Promise<void> {
        await transaction(this.pool, async c => {
            await lockStream(c, deviceId)
            await c.query("DELETE FROM outbox WHERE device_id = $1", [deviceId])
            await c.query("DELETE FROM outbox_streams WHERE device_id = $1", [deviceId])
        })
    }
}
