// `serve --workers N` (issue 15, "every core"): N processes on node:cluster, each one node of the
// gateway on the same store, sharing one listening socket.
//
// The primary holds the state directory's lock, forks the workers with SCHED_NONE (each worker
// accepts on the shared socket itself: the kernel spreads the connections, and the primary is
// not on any connection's path), and coordinates: it prints one `serve` line once every worker
// listens, forwards SIGHUP to every worker, and on SIGINT or SIGTERM stops them (each closes
// its sessions with CLOSE(SHUTDOWN)) before it releases the lock and exits. A worker that dies
// is logged and forked again after a back-off; workers dying too often (WORKER_DEATHS within
// DEATH_WINDOW_MS) end serve with exit 1 instead of spinning. A worker that cannot start (the
// port, the store, the broker) ends serve with its message.
//
// What makes several processes one gateway is the store, as for the nodes of a cluster
// (app/node.ts): each worker is a node named NODE.i, and what one worker does reaches the
// others through the store's events (SQLite: the event log polled every 200 ms; PostgreSQL:
// LISTEN/NOTIFY): the one live session per device (a device reconnecting to another worker
// supersedes its session on the first), revocations, key rotations, messages queued by `send`
// or another worker. Per-process limits are divided: each worker takes 1/N (rounded up) of
// the policy's perSourceConnections, perSourceAttempts and maxConcurrentHandshakes, so the
// gateway as a whole keeps the configured bounds. The MQTT bridge runs in every worker, each
// with its own client id (tether-NODE.i), and subscribes to the commands as a shared
// subscription (`$share/tether/...`, unless the config names another shareGroup), so that a
// command is queued by one worker: the broker must support shared subscriptions (MQTT 5
// brokers and Mosquitto do). Metrics (--metrics): the primary serves the sum over the workers,
// each asked over IPC for its registry (prom-client's AggregatorRegistry.aggregate).
import cluster, { type Worker } from "node:cluster"
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from "prom-client"
import { serveMetricsText } from "../app/metrics.js"
import type { ServerPolicy } from "../policy.js"
import type { LogLine } from "../server.js"
import { CliError } from "./common.js"
import { fileURLToPath } from "node:url"

/** The installed command, which every worker runs (dist/src/cli/workers.js is three levels below the package). */
const CLI_ENTRY = new URL("../../../bin/tether-gateway.js", import.meta.url)

/** The environment variable that makes a forked serve a worker: "i/N". */
export const WORKER_ENV = "TETHER_SERVE_WORKER"
/** Workers dying this often, within DEATH_WINDOW_MS, end serve (exit 1). */
export const WORKER_DEATHS = 5
export const DEATH_WINDOW_MS = 10_000
/**
 * A worker's SQLite busy timeout (ms): the workers take turns at the file's one write lock, each
 * commit holding it well under a millisecond, and SQLite's own back-off (1, 2, 5, 10, 15, 20 ms
 * sleeps) missed its turns within the single process's 50 ms under load (REJECT/CLOSE(BUSY) in
 * the bench). A wait blocks that worker's event loop, so it stays bounded.
 */
export const WORKER_BUSY_TIMEOUT_MS = 1000
/** The back-off before a dead worker is forked again: doubled per death in the window, at most 5 s. */
const RESPAWN_MS = 200

/** This process's place among the workers, when it is one. */
export interface WorkerRole {
    readonly index: number
    readonly count: number
}

/** The worker role from the environment the primary set, or undefined in a process that is not a worker. */
export function workerRole(): WorkerRole | undefined {
    const v = process.env[WORKER_ENV]
    if (v === undefined || !cluster.isWorker) return undefined
    const m = /^([0-9]+)\/([0-9]+)$/.exec(v)
    if (m === null) return undefined
    return { index: Number(m[1]), count: Number(m[2]) }
}

/** A worker's share of the per-process limits: 1/N of each, rounded up. */
export function dividePolicy(p: ServerPolicy, count: number): ServerPolicy {
    const part = (n: number) => Math.max(1, Math.ceil(n / count))
    return {
        ...p,
        perSourceConnections: part(p.perSourceConnections),
        perSourceAttempts: part(p.perSourceAttempts),
        maxConcurrentHandshakes: part(p.maxConcurrentHandshakes),
    }
}

/** What a worker tells the primary. */
type FromWorker =
    | { readonly kind: "listening"; readonly port: number }
    | { readonly kind: "failed"; readonly message: string; readonly exitCode: number }
    | { readonly kind: "metrics"; readonly id: number; readonly metrics: MetricObjectWithValues<MetricValue<string>>[] }

/** What the primary asks a worker. */
type ToWorker = { readonly kind: "metrics"; readonly id: number }

/** A worker tells the primary it listens on `port`. */
export function reportListening(port: number): void {
    process.send?.({ kind: "listening", port } satisfies FromWorker)
}

/** A worker tells the primary why it could not start; resolves once the message is sent. */
export function reportFailed(message: string, exitCode: number): Promise<void> {
    return new Promise(done => {
        if (process.send === undefined) return done()
        process.send({ kind: "failed", message, exitCode } satisfies FromWorker, undefined, undefined, () => done())
    })
}

/** A worker answers the primary's metrics requests with its registry's values. */
export function answerMetrics(json: () => Promise<MetricObjectWithValues<MetricValue<string>>[]>): void {
    process.on("message", (m: ToWorker) => {
        if (m?.kind !== "metrics") return
        void json().then(
            metrics => process.send?.({ kind: "metrics", id: m.id, metrics } satisfies FromWorker),
            () => process.send?.({ kind: "metrics", id: m.id, metrics: [] } satisfies FromWorker)
        )
    })
}

/** Options of runPrimary. */
export interface PrimaryOptions {
    /** `serve`'s own arguments, given to every worker as they are */
    readonly argv: readonly string[]
    readonly count: number
    readonly log: (l: LogLine) => void
    readonly signals: NodeJS.EventEmitter
    /** where --metrics asks the primary to serve the workers' sum */
    readonly metrics?: { readonly host: string; readonly port: number }
    /** the fields of the `serve` line (port and workers are added) */
    readonly serveLine: LogLine
}

const ts = () => new Date().toISOString()

/**
 * Runs the primary: forks `count` workers, waits until each listens, then until SIGINT or
 * SIGTERM has stopped them all.
 * @throws CliError with the first worker's message when a worker cannot start, or when workers
 *     keep dying
 */
export async function runPrimary(o: PrimaryOptions): Promise<void> {
    cluster.schedulingPolicy = cluster.SCHED_NONE
    cluster.setupPrimary({ exec: fileURLToPath(CLI_ENTRY), args: ["serve", ...o.argv] })
    const workers = new Map<number, Worker>()
    const deaths: number[] = []
    let stopping = false
    let fatal: ((err: Error) => void) | undefined
    let port = -1

    const fork = (index: number): Promise<number> =>
        new Promise((resolve, reject) => {
            const w = cluster.fork({ [WORKER_ENV]: `${index}/${o.count}` })
            workers.set(index, w)
            let up = false
            w.on("message", (m: FromWorker) => {
                if (m?.kind === "listening") {
                    up = true
                    resolve(m.port)
                } else if (m?.kind === "failed") reject(new CliError(m.message, m.exitCode))
            })
            w.on("exit", (code, signal) => {
                if (workers.get(index) === w) workers.delete(index)
                if (!up) {
                    reject(new CliError(`worker ${index} exited before it listened (${signal ?? `code ${code}`})`))
                    return
                }
                if (stopping) return
                // an unexpected death: logged, forked again after a back-off, unless they keep dying
                const now = Date.now()
                deaths.push(now)
                while (deaths.length > 0 && (deaths[0] as number) < now - DEATH_WINDOW_MS) deaths.shift()
                o.log({ ts: ts(), event: "worker", outcome: "died", worker: index, code: code ?? undefined, signal: signal ?? undefined })
                if (deaths.length >= WORKER_DEATHS) {
                    fatal?.(new CliError(`${deaths.length} workers died within ${DEATH_WINDOW_MS / 1000} s; stopping`))
                    return
                }
                const delay = Math.min(5000, RESPAWN_MS * 2 ** (deaths.length - 1))
                setTimeout(() => {
                    if (stopping) return
                    fork(index).then(
                        () => o.log({ ts: ts(), event: "worker", outcome: "restarted", worker: index }),
                        err => fatal?.(err as Error)
                    )
                }, delay).unref()
            })
        })

    const stopAll = async (): Promise<void> => {
        stopping = true
        const alive = [...workers.values()]
        await Promise.all(
            alive.map(
                w =>
                    new Promise<void>(done => {
                        if (w.isDead()) return done()
                        w.once("exit", () => done())
                        w.process.kill("SIGTERM")
                    })
            )
        )
    }

    try {
        const ports = await Promise.all(Array.from({ length: o.count }, (_, i) => fork(i)))
        port = ports[0] as number
    } catch (err) {
        await stopAll()
        throw err
    }

    let metricsServer: { close(): void } | undefined
    if (o.metrics !== undefined) {
        let next = 0
        const pending = new Map<number, { left: number; got: MetricObjectWithValues<MetricValue<string>>[][]; done: () => void }>()
        // every worker's answers, a restarted one's too
        cluster.on("message", (_w: Worker, m: FromWorker) => {
            if (m?.kind !== "metrics") return
            const p = pending.get(m.id)
            if (p === undefined) return
            p.got.push(m.metrics)
            if (--p.left === 0) p.done()
        })
        const sum = async (): Promise<string> => {
            const id = ++next
            const live = [...workers.values()].filter(w => w.isConnected())
            const got: MetricObjectWithValues<MetricValue<string>>[][] = []
            await new Promise<void>(done => {
                pending.set(id, { left: live.length, got, done })
                if (live.length === 0) done()
                for (const w of live) w.send({ kind: "metrics", id } satisfies ToWorker)
                setTimeout(done, 2000).unref() // a worker that does not answer is left out
            })
            pending.delete(id)
            return AggregatorRegistry.aggregate(got).metrics()
        }
        try {
            const m = await serveMetricsText(o.metrics.host, o.metrics.port, sum, AggregatorRegistry.PROMETHEUS_CONTENT_TYPE)
            metricsServer = m.server
            o.log({ ts: ts(), event: "metrics", outcome: "listening", host: o.metrics.host, port: m.port, workers: o.count })
        } catch (err) {
            await stopAll()
            throw new CliError(`cannot serve metrics on ${o.metrics.host}:${o.metrics.port}: ${(err as Error).message}`)
        }
    }

    o.log({ ts: ts(), event: "serve", ...o.serveLine, port, workers: o.count })
    const onHup = () => {
        for (const w of workers.values()) w.process.kill("SIGHUP")
    }
    o.signals.on("SIGHUP", onHup)
    try {
        await new Promise<void>((resolve, reject) => {
            fatal = err => {
                void stopAll().then(() => reject(err))
            }
            const stop = (signal: string) => {
                if (stopping) return
                o.log({ ts: ts(), event: "shutdown", outcome: "started", signal, workers: workers.size })
                void stopAll().then(() => resolve())
            }
            o.signals.on("SIGINT", () => stop("SIGINT"))
            o.signals.on("SIGTERM", () => stop("SIGTERM"))
        })
    } finally {
        o.signals.off("SIGHUP", onHup)
        metricsServer?.close()
    }
    o.log({ ts: ts(), event: "shutdown", outcome: "done", workers: o.count })
}
