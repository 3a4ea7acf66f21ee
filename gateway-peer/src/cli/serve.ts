// `tether-gateway serve`: the gateway with its registry and application layer, until SIGINT or
// SIGTERM (CLOSE(SHUTDOWN) to every session, state flushed, exit 0).
//
// It runs one node (app/node.ts) on the store: a state directory (SQLite, one node) or a
// PostgreSQL store shared by the nodes of a cluster (--store, --node). What other nodes and CLI
// processes change reaches it through the store's events: revocations close the device's session
// here, key rotations and retirements are taken into the running key set, messages queued
// anywhere are sent from the node that holds the device's session.
import { hostname } from "node:os"
import { resolve } from "node:path"
import { NodeMetrics } from "../app/metrics.js"
import { startNode, type GatewayNode } from "../app/node.js"
import { parseConfig } from "../app/upstream.js"
import { MqttSetupError } from "../app/mqtt.js"
import { checkMqttUrl, DEFAULT_PUBLISH_TIMEOUT_MS, parseMqttConfig, redactMqttUrl, type MqttConfig } from "../app/mqtt-config.js"
import { createLogSink, LOG_LEVELS, type LogLevel } from "../log.js"
import { startSinks, type Sink } from "../app/sinks.js"
import { SinksConfigError } from "../app/sinks-config.js"
import { DEFAULT_POLICY, resolvePolicy } from "../policy.js"
import type { LogLine } from "../server.js"
import type { ModeFixFn } from "../state.js"
import {
    badHost,
    CliError,
    intOption,
    parse,
    policyFrom,
    policyOptionName,
    STATE_OPTION,
    storeSpec,
    STORE_HELP,
    type Io,
} from "./common.js"
import { configWarnings, readConfig } from "./config.js"
import { lockStateDir } from "./lock.js"
import { answerMetrics, dividePolicy, reportListening, runPrimary, WORKER_BUSY_TIMEOUT_MS, workerRole } from "./workers.js"
import { openStore } from "../store/open.js"

export const SERVE_USAGE = `usage: tether-gateway serve [options]

Runs the gateway: Tether over TCP for the paired devices, their application messages, and the
upstream routes of the configuration file. Logs one JSON line per event on stdout (pino; each
with "level", "ts", "event", "outcome", the device's name on every line about a device; fields
named like secrets are redacted). SIGINT or SIGTERM closes every session with CLOSE(SHUTDOWN),
flushes the state and exits 0. SIGHUP reloads the config file's routes (a file with errors keeps
the running routes and logs the errors; policy and mqtt changes need a restart). A state
directory is locked (DIR/serve.lock, with the pid): a second serve on it fails at once.

${STORE_HELP}
  --node NAME     this node's name in the cluster's live view (default $TETHER_NODE, else the
                  host name); every node of a cluster needs its own
  --workers N     processes (default $TETHER_WORKERS, else 1; 1..64): the primary holds the
                  lock and forks N workers on node:cluster sharing the port; each worker is one
                  node of the gateway on the store (named NODE.i, a "worker" field on its log
                  lines) and takes 1/N of perSourceConnections, perSourceAttempts and
                  maxConcurrentHandshakes. A worker that dies is forked again; 5 deaths within
                  10 s stop serve (exit 1). With --mqtt every worker has its own client and the
                  commands are a shared subscription ($share/tether/...). Not the default: on
                  one SQLite file the workers contend for its write lock and read each other's
                  events, and \`npm run bench -- perf\` measured 2 workers costing more CPU per
                  connection than 1 (docs/bench.md)
  --host H        the address to listen on (default 127.0.0.1)
  --port P        the port (default 4433; 0 picks a free one)
  --metrics [HOST:]PORT
                  serve Prometheus metrics at http://HOST:PORT/metrics (default host 127.0.0.1):
                  handshakes, early data, rejects, sessions, queue depth, handshake latency
  --log-level L   trace, debug, info (default), warn, error or silent
  --config FILE   upstream routes and policy, JSON checked against schema/config.schema.json
                  (every error at once, each with its path; "$schema" may name the schema):
                  { "routes": { "weather": { "url": "http://127.0.0.1:8080/w", "method": "POST",
                    "timeoutMs": 5000, "maxResponseBytes": 993, "devices": ["*"] } },
                    "policy": { "perSourceConnections": 1024 } }
                  without it every REQUEST is refused
  --mqtt URL      bridge to an MQTT broker (mqtt:// or mqtts://, PROTOCOL.md 12.3): each device
                  PUBLISH goes to tether/<device>/<topic> (QoS 1, acknowledged to the device
                  after the broker's PUBACK), each message on tether/<device>/cmd/<topic> is
                  queued to the device. Replaces the config file's "mqtt" url; the rest of that
                  section: { "mqtt": { "topicTemplate", "commandTemplate", "qos": 1,
                    "protocolVersion": 4|5, "envelope": "json"|"raw", "clientId",
                    "shareGroup", "publishTimeoutMs", "usernameFile", "passwordFile",
                    "ca", "cert", "key" } } (file paths relative to the working directory)
  --sink-stdout   one JSON line per device PUBLISH on stdout, payload included ("event":
                  "publish": device, deviceId, topic, stream, id, bytes, payload in base64, text
                  when printable); opt-in, the log lines never carry a payload
  --sink-file FILE
                  the same JSON lines appended to FILE (mode 0600)
  --webhook URL   POST each batch of a device's PUBLISHes as JSON to URL; the device is
                  acknowledged only after a 2xx (retried: per-attempt timeout, backoff), else
                  it resends later (PROTOCOL.md 12.4). Config file: { "sinks": { "stdout": true,
                    "file": "p.jsonl", "webhook": { "url", "timeoutMs": 5000, "attempts": 4,
                    "backoffMs": 250, "maxBackoffMs": 4000, "authorizationFile" } } }
                  With several sinks (and --mqtt) a PUBLISH is acknowledged once all took it.
  --mqtt-publish-timeout-ms N
                  how long a PUBLISH waits for the broker's PUBACK before the device is told it
                  failed (default ${DEFAULT_PUBLISH_TIMEOUT_MS}; also "mqtt": { "publishTimeoutMs" })

Per route (config file only): "timeoutMs" default 5000, "maxResponseBytes" default 993.

Policy (PROTOCOL.md 9.4; each also a "policy" field of the config file, named in camelCase;
the command line wins):
${Object.entries(DEFAULT_POLICY)
    .map(([k, v]) => `  --${policyOptionName(k)} N`.padEnd(34) + `default ${v}`)
    .join("\n")}`

/**
 * The bridge's options: the config file's "mqtt" section (or the defaults) with `--mqtt` as its
 * URL when given; file paths resolved against `cwd`. Undefined: no bridge.
 */
function mqttOptions(section: MqttConfig | undefined, flag: unknown, cwd: string): (MqttConfig & { url: string }) | undefined {
    if (section === undefined && typeof flag !== "string") return undefined
    const base = section ?? parseMqttConfig({})
    let url = base.url
    if (typeof flag === "string") {
        const bad = checkMqttUrl(flag)
        if (bad !== undefined) throw new CliError(`--mqtt ${bad}`, 2)
        url = flag
    }
    if (url === undefined) throw new CliError('the config file\'s "mqtt" section needs a "url" (or give --mqtt URL)', 2)
    const path = (p: string | undefined) => (p === undefined ? undefined : resolve(cwd, p))
    return {
        ...base,
        url,
        usernameFile: path(base.usernameFile),
        passwordFile: path(base.passwordFile),
        ca: path(base.ca),
        cert: path(base.cert),
        key: path(base.key),
    }
}

/** What a log line may say about an error nobody handled: never its message (it may quote data). */
function describeError(reason: unknown): LogLine {
    if (!(reason instanceof Error)) return { error: typeof reason }
    const code = (reason as { code?: unknown }).code
    const frame = reason.stack?.split("\n").find(l => /^\s+at /.test(l))
    return { error: reason.name, code: typeof code === "string" ? code : undefined, at: frame?.trim().slice(3) }
}

/**
 * The process's last resort, on `proc` (process, or the tests' stand-in). A rejection nothing
 * handled is a bug (the app layer awaits or catches every promise it starts): it is logged as
 * one JSON line and the gateway keeps serving, because one bad upstream answer or device must
 * not take every other device off the network. An uncaught exception leaves the process in an
 * unknown state (Node's documentation): logged, then exit 1 as Node would.
 * @returns a function that removes both handlers
 */
function installLastResort(proc: NodeJS.EventEmitter, log: (l: LogLine) => void): () => void {
    const onRejection = (reason: unknown) =>
        log({ ts: new Date().toISOString(), event: "unhandled", kind: "rejection", outcome: "kept-running", ...describeError(reason) })
    const onException = (err: unknown) => {
        log({ ts: new Date().toISOString(), event: "unhandled", kind: "exception", outcome: "exit", ...describeError(err) })
        process.exit(1)
    }
    proc.on("unhandledRejection", onRejection)
    proc.on("uncaughtException", onException)
    return () => {
        proc.off("unhandledRejection", onRejection)
        proc.off("uncaughtException", onException)
    }
}

/** `--metrics [HOST:]PORT`. @throws CliError (exit 2) */
function metricsAddress(v: string): { host: string; port: number } {
    const m = /^(?:(.+):)?([0-9]{1,5})$/.exec(v)
    const port = m ? Number(m[2]) : NaN
    if (m === null || port > 65535) throw new CliError("--metrics is [HOST:]PORT with PORT in 0..65535, e.g. 9464 or 0.0.0.0:9464", 2)
    const host = (m[1] ?? "127.0.0.1").replace(/^\[(.*)\]$/, "$1")
    const bad = badHost(host, false)
    if (bad !== undefined) throw new CliError(`--metrics host ${host} ${bad}`, 2)
    return { host, port }
}

/** Runs `serve`; resolves when the gateway has shut down. */
export async function serve(argv: string[], io: Io, signals: NodeJS.EventEmitter = process): Promise<void> {
    const policyOptions = Object.fromEntries(Object.keys(DEFAULT_POLICY).map(k => [policyOptionName(k), { type: "string" as const }]))
    const r = parse(
        argv,
        {
            ...STATE_OPTION,
            node: { type: "string" },
            host: { type: "string" },
            port: { type: "string" },
            config: { type: "string" },
            metrics: { type: "string" },
            mqtt: { type: "string" },
            "sink-stdout": { type: "boolean" },
            "sink-file": { type: "string" },
            webhook: { type: "string" },
            "mqtt-publish-timeout-ms": { type: "string" },
            "log-level": { type: "string" },
            workers: { type: "string" },
            ...policyOptions,
        },
        SERVE_USAGE,
        io
    )
    if (r === undefined) return
    const host = typeof r.values.host === "string" ? r.values.host : "127.0.0.1"
    const badListen = badHost(host, false)
    if (badListen !== undefined) throw new CliError(`--host ${host} ${badListen}`, 2)
    const level = (r.values["log-level"] ?? "info") as LogLevel
    if (!LOG_LEVELS.includes(level)) throw new CliError(`--log-level is one of ${LOG_LEVELS.join(", ")}`, 2)
    const port = intOption(r.values.port, "port", 4433, 0, 65535)
    const configPath = typeof r.values.config === "string" ? resolve(io.cwd, r.values.config) : undefined
    const file = configPath !== undefined ? readConfig(configPath) : { upstream: parseConfig({}), policy: undefined }
    const config = file.upstream
    const configured = resolvePolicy(policyFrom(file.policy, r.values, configPath ?? "config"))
    const workerCount = intOption(r.values.workers ?? process.env.TETHER_WORKERS, "workers", 1, 1, 64)
    // a worker forked by a primary (cli/workers.ts): its share of the limits, no lock, no metrics port
    const role = workerRole()
    const primary = role === undefined && workerCount > 1
    const policy = role === undefined ? configured : dividePolicy(configured, role.count)
    const metricsAt = typeof r.values.metrics === "string" ? metricsAddress(r.values.metrics) : undefined
    const metrics = metricsAt !== undefined ? new NodeMetrics() : undefined
    const sink = createLogSink({ level, write: line => io.out(line) })
    const log = (l: LogLine) => {
        metrics?.observe(l) // every line counts, whatever the level
        sink.log(role === undefined ? l : { ...l, worker: role.index })
    }
    const mqttOpts = mqttOptions(config.mqtt, r.values.mqtt, io.cwd)
    // workers: one client each (tether-NODE.i), the commands a shared subscription, queued once
    const mqttBase =
        mqttOpts !== undefined && role !== undefined && mqttOpts.shareGroup === undefined ? { ...mqttOpts, shareGroup: "tether" } : mqttOpts
    const publishTimeout = r.values["mqtt-publish-timeout-ms"]
    const mqtt =
        mqttBase === undefined || publishTimeout === undefined
            ? mqttBase
            : { ...mqttBase, publishTimeoutMs: intOption(publishTimeout, "mqtt-publish-timeout-ms", DEFAULT_PUBLISH_TIMEOUT_MS, 1, 600000) }
    let sinks: Sink[] = []
    // the primary serves no device: the workers start the sinks
    if (!primary)
        try {
            const v = r.values
            sinks = startSinks(
                config.sinks,
                { stdout: v["sink-stdout"], file: v["sink-file"], webhook: v.webhook },
                { cwd: io.cwd, out: io.out, log }
            )
        } catch (err) {
            // a bad --webhook is a usage error; an unreadable authorizationFile is not
            throw err instanceof SinksConfigError ? new CliError(`--webhook: ${err.message}`, 2) : new CliError((err as Error).message)
        }
    // a mode tightened at start is one line of the JSON log, naming the path (never contents)
    const onModeFix: ModeFixFn = f =>
        log({
            ts: new Date().toISOString(),
            event: "state",
            outcome: "mode-fixed",
            path: f.path,
            from: f.from.toString(8),
            to: f.to.toString(8),
        })
    const named = typeof r.values.node === "string" && r.values.node.length > 0 ? r.values.node : (process.env.TETHER_NODE ?? hostname())
    // a worker is NODE.i (up to 3 more characters): only with workers does the name leave room
    const nameMax = workerCount > 1 ? 61 : 64
    if (!new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${nameMax - 1}}$`).test(named))
        throw new CliError(`--node is 1..${nameMax} characters of A-Z a-z 0-9 . _ -${workerCount > 1 ? " (with --workers)" : ""}`, 2)
    const node = role === undefined ? named : `${named}.${role.index}`
    // workers share the SQLite file's write lock: a write waits up to WORKER_BUSY_TIMEOUT_MS for it
    const store = await openStore({
        ...storeSpec(r.values, io, onModeFix),
        busyTimeoutMs: role === undefined ? undefined : WORKER_BUSY_TIMEOUT_MS,
    })
    // one serve per state directory (a PostgreSQL store is shared by its nodes by design); a
    // worker runs under its primary's lock
    let unlock = () => {}
    if (store.kind === "sqlite" && role === undefined)
        try {
            unlock = lockStateDir(storeSpec(r.values, io).stateDir)
        } catch (err) {
            await store.close()
            throw err
        }
    if (primary) {
        // the store was opened to check it (the KEK, the schema) before any worker is forked
        const kind = store.kind
        const where = store.where
        const devices = (await store.registry.listDevices()).length
        await store.close()
        try {
            await runPrimary({
                argv,
                count: workerCount,
                log,
                signals,
                metrics: metricsAt,
                serveLine: { host, node: named, store: kind, where, devices, routes: config.routes.size, ...configured },
            })
        } finally {
            unlock()
        }
        return
    }
    const warn = async (c: typeof config) => {
        const paired = new Set((await store.registry.listDevices()).map(d => d.name))
        for (const w of configWarnings(c, paired))
            log({ ts: new Date().toISOString(), event: "config", outcome: "config-warning", detail: w })
    }
    let gw: GatewayNode
    try {
        gw = await startNode({ store, node, host, port, log, policy, config, mqtt, sinks })
    } catch (err) {
        await store.close()
        unlock()
        if (err instanceof MqttSetupError) throw new CliError(err.message)
        if (/^E[A-Z]+$/.test(String((err as { code?: unknown }).code)))
            throw new CliError(`cannot listen on ${host}:${port}: ${(err as Error).message}`)
        throw err
    }
    let metricsServer: { close(): void } | undefined
    if (metrics !== undefined && role !== undefined) {
        // the primary serves the sum of its workers' registries
        metrics.bind(gw.gateway, store)
        answerMetrics(() => metrics.json())
    } else if (metrics !== undefined && metricsAt !== undefined) {
        metrics.bind(gw.gateway, store)
        try {
            const m = await metrics.listen(metricsAt.host, metricsAt.port)
            metricsServer = m.server
            log({ ts: new Date().toISOString(), event: "metrics", outcome: "listening", host: metricsAt.host, port: m.port })
        } catch (err) {
            await gw.close()
            await store.close()
            unlock()
            throw new CliError(`cannot serve metrics on ${metricsAt.host}:${metricsAt.port}: ${(err as Error).message}`)
        }
    }
    // the signal handlers before the serve line: whoever reads it may signal at once
    let removeLastResort: () => void = () => {}
    let onHup: (() => void) | undefined
    const stopped = new Promise<void>(done => {
        let stopping = false
        const stop = (signal: string) => {
            if (stopping) {
                log({ ts: new Date().toISOString(), event: "shutdown", outcome: "forced", signal })
                process.exit(1)
            }
            stopping = true
            log({ ts: new Date().toISOString(), event: "shutdown", outcome: "started", signal })
            void (async () => {
                await gw.close()
                metricsServer?.close()
                await store.close() // closing the SQLite connection checkpoints the WAL
                if (onHup !== undefined) signals.off("SIGHUP", onHup)
                unlock()
                log({ ts: new Date().toISOString(), event: "shutdown", outcome: "done" })
                removeLastResort()
                done()
            })()
        }
        // a worker stops when its primary says so (SIGTERM): a SIGINT from the terminal reaches
        // the whole process group, and the primary's SIGTERM must not be a second signal
        if (role === undefined) signals.on("SIGINT", () => stop("SIGINT"))
        else signals.on("SIGINT", () => {})
        signals.on("SIGTERM", () => stop("SIGTERM"))
    })
    removeLastResort = installLastResort(signals, log)
    if (role === undefined || role.index === 0) await warn(config)
    log({
        ts: new Date().toISOString(),
        event: "serve",
        host,
        port: gw.gateway.port,
        node,
        store: store.kind,
        where: store.where,
        devices: (await store.registry.listDevices()).length,
        routes: config.routes.size,
        mqtt: mqtt === undefined ? undefined : redactMqttUrl(mqtt.url),
        ...policy,
    })
    if (role !== undefined) reportListening(gw.gateway.port)
    // SIGHUP: the config file's routes again; a file with errors keeps the running ones
    const reload = async () => {
        if (configPath === undefined) {
            log({ ts: new Date().toISOString(), event: "config", outcome: "reload-failed", detail: "serve runs without --config" })
            return
        }
        let next
        try {
            next = readConfig(configPath)
        } catch (err) {
            log({
                ts: new Date().toISOString(),
                event: "config",
                outcome: "reload-failed",
                path: configPath,
                detail: (err as Error).message,
            })
            return
        }
        gw.app.setConfig(next.upstream)
        await warn(next.upstream)
        const kept = [
            JSON.stringify(next.policy) !== JSON.stringify(file.policy) ? "policy" : undefined,
            JSON.stringify(next.upstream.mqtt) !== JSON.stringify(config.mqtt) ? "mqtt" : undefined,
        ].filter(x => x !== undefined)
        log({
            ts: new Date().toISOString(),
            event: "config",
            outcome: "reloaded",
            path: configPath,
            routes: next.upstream.routes.size,
            // the policy and the MQTT bridge are set at start: a change needs a restart
            notApplied: kept.length > 0 ? kept.join(",") : undefined,
        })
    }
    onHup = () => void reload()
    signals.on("SIGHUP", onHup)

    await stopped
    // a worker's IPC channel would keep it running
    if (role !== undefined) process.disconnect?.()
}
