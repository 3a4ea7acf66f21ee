// A gateway node on a store for the cluster group (devs/bench/cluster.mjs), loaded by
// server-proc.mjs as kind "node" (in a child process of its own): openStore on a SQLite state
// directory or a PostgreSQL URL, then startNode, the way `tether-gateway serve --node` runs, with
// the application layer (no upstreams) and the connection log off.
//
// Every method of the store's registry, sessions, receiving state and outbox is wrapped here
// (not in src/) with a timer, so that the bench can read the time this node spent waiting on its
// store: stats() answers the calls made, the sum of their durations, and the busy time (the
// union of the intervals during which at least one store call was in flight, so that calls
// overlapping each other are counted once), in milliseconds since the node started.

/** The store's parts whose calls are timed. */
const GROUPS = ["registry", "sessions", "receiving", "outbox"]

function timer() {
    const t = { calls: 0, sumMs: 0, busyMs: 0, by: {} }
    let inFlight = 0
    let busySince = 0
    const begin = () => {
        if (inFlight++ === 0) busySince = performance.now()
        return performance.now()
    }
    const end = (group, t0) => {
        const now = performance.now()
        t.calls++
        t.sumMs += now - t0
        const g = (t.by[group] ??= { calls: 0, ms: 0 })
        g.calls++
        g.ms += now - t0
        if (--inFlight === 0) t.busyMs += now - busySince
    }
    return { stats: t, begin, end }
}

/** Replaces every method of `obj` (own and inherited, but close) by one that times its calls. */
function wrap(obj, group, tm) {
    const names = new Set()
    for (let p = Object.getPrototypeOf(obj); p && p !== Object.prototype; p = Object.getPrototypeOf(p))
        for (const n of Object.getOwnPropertyNames(p))
            if (n !== "constructor" && n !== "close" && typeof obj[n] === "function") names.add(n)
    for (const n of names) {
        const orig = obj[n]
        obj[n] = function (...args) {
            const t0 = tm.begin()
            let out
            try {
                out = orig.apply(obj, args)
            } catch (err) {
                tm.end(group, t0)
                throw err
            }
            if (out && typeof out.then === "function")
                return out.then(
                    v => (tm.end(group, t0), v),
                    e => {
                        tm.end(group, t0)
                        throw e
                    }
                )
            tm.end(group, t0)
            return out
        }
    }
}

/**
 * @param config.spec the StoreSpec: { stateDir } (SQLite) or { stateDir, url, env: { TETHER_KEK } }
 * @param config.node the node's name in the cluster
 * @param config.policy server policy overrides
 */
export async function startServer({ spec, node, policy }) {
    const { openStore, startNode, parseConfig } = await import("tether-gateway")
    const store = await openStore(spec)
    const tm = timer()
    for (const g of GROUPS) wrap(store[g], g, tm)
    let n
    try {
        n = await startNode({ store, node, host: "127.0.0.1", port: 0, policy, config: parseConfig({}), log: () => {} })
    } catch (err) {
        await store.close()
        throw err
    }
    return {
        port: n.gateway.port,
        stats: () => structuredClone(tm.stats),
        async close() {
            await n.close()
            await store.close()
        },
    }
}
