// `tether-gateway status`: the live sessions of every node sharing the store (as `wg show` lists
// peers); `tether-gateway migrate-store`: a one-node SQLite state copied into PostgreSQL, so an
// operator grows to a cluster without re-pairing a device.
import { resolve } from "node:path"
import { migrateSqliteToPg, isPostgresUrl, STORE_ENV } from "../store/open.js"
import { redactUrl } from "../store/postgres.js"
import { CliError, JSON_HELP, openCliStore, parse, printTable, stateDir, STATE_OPTION, STORE_HELP, type Io } from "./common.js"

export const STATUS_USAGE = `usage: tether-gateway status [--state DIR | --store URL] [--json]

Lists the live sessions across the cluster: device, node, since, remote address, last activity,
ticket generation, full handshake or resumption. Read from the store, where every node records
its sessions (last activity every 5 s). Never a secret.

${STORE_HELP}
  --json          one JSON array instead of a table (each session: device, deviceId, node, since,
                  remote, lastActivity, generation, kind)`

export const MIGRATE_USAGE = `usage: tether-gateway migrate-store --store URL --kek-file F [--state DIR] [--json]

Copies a one-node gateway's state (DIR, default ./.tether) into a new PostgreSQL store: the
identity, the ticket keys, every device with its generations and pseudonyms, the receiving
state and the queued messages. The devices carry on without re-pairing: their tickets and
settings stay valid. The PostgreSQL database must be empty of Tether state; DIR is not changed
(stop its serve first, and run the cluster's nodes with --store URL afterwards).

  --state DIR     the one-node state directory to copy (default ./.tether; its KEK: DIR/kek)
  --store URL     the PostgreSQL store to create (default $${STORE_ENV})
  --kek-file F    the cluster's key-encryption key (created 0600 if missing; or $TETHER_KEK)
${JSON_HELP}: { "from", "to", "devices", "messages" } (the URL without its password)`

function ago(ms: number, now: number): string {
    const s = Math.max(0, Math.round((now - ms) / 1000))
    if (s < 120) return `${s}s ago`
    if (s < 7200) return `${Math.round(s / 60)}m ago`
    return `${Math.round(s / 3600)}h ago`
}

/** Runs `status`. */
export async function status(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, json: { type: "boolean" } }, STATUS_USAGE, io)
    if (r === undefined) return
    const store = await openCliStore(r.values, io)
    try {
        const names = new Map((await store.registry.listDevices()).map(d => [d.id, d.name]))
        const rows = (await store.sessions.list()).map(s => ({
            device: names.get(s.deviceId) ?? s.deviceId,
            deviceId: s.deviceId,
            node: s.node,
            since: new Date(s.since).toISOString(),
            remote: s.remote,
            lastActivity: new Date(s.lastActivity).toISOString(),
            generation: s.generation,
            kind: s.resumed ? "resumed" : "full",
        }))
        if (r.values.json === true) {
            io.out(JSON.stringify(rows, null, 2))
            return
        }
        io.out(`store: ${store.kind} ${store.where}`)
        if (rows.length === 0) {
            io.out("no live sessions")
            return
        }
        const now = Date.now()
        const nodes = new Set(rows.map(x => x.node))
        io.out(`${rows.length} live session${rows.length === 1 ? "" : "s"} on ${nodes.size} node${nodes.size === 1 ? "" : "s"}`)
        const table = [
            ["DEVICE", "NODE", "SINCE", "REMOTE", "LAST ACTIVITY", "GENERATION", "HANDSHAKE"],
            ...rows.map(x => [x.device, x.node, x.since, x.remote, ago(Date.parse(x.lastActivity), now), String(x.generation), x.kind]),
        ]
        printTable(io, table)
    } finally {
        await store.close()
    }
}

/** Runs `migrate-store`. */
export async function migrateStore(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, json: { type: "boolean" } }, MIGRATE_USAGE, io)
    if (r === undefined) return
    const url = typeof r.values.store === "string" ? r.values.store : process.env[STORE_ENV]
    if (url === undefined || !isPostgresUrl(url))
        throw new CliError("--store postgres://... (or $TETHER_STORE) names the PostgreSQL store to create", 2)
    const dir = stateDir(r.values.state, io)
    const kek = typeof r.values["kek-file"] === "string" ? r.values["kek-file"] : undefined
    // the SQLite side opens with its own KEK (DIR/kek or $TETHER_KEK); the cluster's is --kek-file
    const from = { stateDir: dir, env: kek === undefined ? { ...process.env, TETHER_KEK: undefined } : process.env }
    const to = { stateDir: dir, url, kekFile: kek === undefined ? undefined : resolve(io.cwd, kek) }
    const n = await migrateSqliteToPg(from, url, to)
    if (r.values.json === true) {
        io.out(JSON.stringify({ from: dir, to: redactUrl(url), devices: n.devices, messages: n.messages }))
        return
    }
    io.out(`copied ${dir} to ${redactUrl(url)}: ${n.devices} devices, ${n.messages} queued messages`)
    io.out(`run every node with --store ${redactUrl(url)}`)
}
