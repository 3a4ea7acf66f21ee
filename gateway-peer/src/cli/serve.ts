// `tether-gateway serve`: the gateway with its registry and application layer, until SIGINT or
// SIGTERM (CLOSE(SHUTDOWN) to every session, state flushed, exit 0).
//
// It runs one node (app/node.ts) on the store: a state directory (SQLite, one node) or a
// PostgreSQL store shared by the nodes of a cluster (--store, --node). What other nodes and CLI
// processes change reaches it through the store's events: revocations close the device's session
// here, key rotations and retirements are taken into the running key set, messages queued
// anywhere are sent from the node that holds the device's session.
import { readFileSync } from "node:fs"
import { hostname } from "node:os"
import { resolve } from "node:path"
import { NodeMetrics } from "../app/metrics.js"
import { startNode, type GatewayNode } from "../app/node.js"
import { ConfigError, parseConfig, type UpstreamConfig } from "../app/upstream.js"
import { MqttSetupError } from "../app/mqtt.js"
import { checkMqttUrl, parseMqttConfig, redactMqttUrl, type MqttConfig } from "../app/mqtt-config.js"
import { startSinks, type Sink } from "../app/sinks.js"
import { SinksConfigError } from "../app/sinks-config.js"
import { DEFAULT_POLICY, resolvePolicy } from "../policy.js"
import type { LogLine } from "../server.js"
import type { ModeFixFn } from "../state.js"
import { CliError, intOption, openCliStore, parse, policyFrom, policyOptionName, STATE_OPTION, STORE_HELP, type Io } from "./common.js"

export const SERVE_USAGE = `usage: tether-gateway serve [options]

Runs the gateway: Tether over TCP for the paired devices, their application messages, and the
upstream routes of the configuration file. Logs one JSON line per event on stdout. SIGINT or
SIGTERM closes every session with CLOSE(SHUTDOWN), flushes the state and exits 0.

${STORE_HELP}
  --node NAME     this node's name in the cluster's live view (default $TETHER_NODE, else the
                  host name); every node of a cluster needs its own
  --host H        the address to listen on (default 127.0.0.1)
  --port P        the port (default 4433; 0 picks a free one)
  --metrics [HOST:]PORT
                  serve Prometheus metrics at http://HOST:PORT/metrics (default host 127.0.0.1):
                  handshakes, early data, rejects, sessions, queue depth, handshake latency
  --config FILE   upstream routes and policy, JSON:
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

Policy (PROTOCOL.md 9.4; each also a "policy" field of the config file, named in camelCase;
the command line wins):
${Object.entries(DEFAULT_POLICY)
    .map(([k, v]) => `  --${policyOptionName(k)} N`.padEnd(34) + `default ${v}`)
    .join("\n")}`

/** The config file: its routes (app/upstream.ts reads them) and its `policy` object, read here. */
function readConfig(path: string): { upstream: UpstreamConfig; policy: unknown } {
    let json: unknown
    try {
        json = JSON.parse(readFileSync(path, "utf8"))
    } catch (err) {
        throw new CliError(`cannot read the config ${path}: ${(err as Error).message}`)
    }
    let policy: unknown
    if (json !== null && typeof json === "object" && !Array.isArray(json) && "policy" in json) {
        const { policy: p, ...rest } = json as Record<string, unknown>
        policy = p
        json = rest
    }
    try {
        return { upstream: parseConfig(json), policy }
    } catch (err) {
        if (err instanceof ConfigError) throw new CliError(`${path}: ${err.message}`)
        throw err
    }
}

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
    if (m === null || port > 65535) throw new CliError("--metrics is [HOST:]PORT, e.g. 9464 or 0.0.0.0:9464", 2)
    return { host: m[1] ?? "127.0.0.1", port }
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
            ...policyOptions,
        },
        SERVE_USAGE,
        io
    )
    if (r === undefined) return
    const host = typeof r.values.host === "string" ? r.values.host : "127.0.0.1"
    const port = intOption(r.values.port, "port", 4433, 0, 65535)
    const configPath = typeof r.values.config === "string" ? resolve(io.cwd, r.values.config) : undefined
    const file = configPath !== undefined ? readConfig(configPath) : { upstream: parseConfig({}), policy: undefined }
    const config = file.upstream
    const policy = resolvePolicy(policyFrom(file.policy, r.values, configPath ?? "config"))
    const metricsAt = typeof r.values.metrics === "string" ? metricsAddress(r.values.metrics) : undefined
    const metrics = metricsAt !== undefined ? new NodeMetrics() : undefined
    const log = (l: LogLine) => {
        metrics?.observe(l)
        io.out(JSON.stringify(l))
    }
    const mqtt = mqttOptions(config.mqtt, r.values.mqtt, io.cwd)
    let sinks: Sink[]
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
    const node = typeof r.values.node === "string" && r.values.node.length > 0 ? r.values.node : (process.env.TETHER_NODE ?? hostname())
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(node)) throw new CliError("--node is 1..64 characters of A-Z a-z 0-9 . _ -", 2)
    const store = await openCliStore(r.values, io, onModeFix)
    let gw: GatewayNode
    try {
        gw = await startNode({ store, node, host, port, log, policy, config, mqtt, sinks })
    } catch (err) {
        await store.close()
        if (err instanceof MqttSetupError) throw new CliError(err.message)
        if (/^E[A-Z]+$/.test(String((err as { code?: unknown }).code)))
            throw new CliError(`cannot listen on ${host}:${port}: ${(err as Error).message}`)
        throw err
    }
    let metricsServer: { close(): void } | undefined
    if (metrics !== undefined && metricsAt !== undefined) {
        metrics.bind(gw.gateway, store)
        try {
            const m = await metrics.listen(metricsAt.host, metricsAt.port)
            metricsServer = m.server
            log({ ts: new Date().toISOString(), event: "metrics", outcome: "listening", host: metricsAt.host, port: m.port })
        } catch (err) {
            await gw.close()
            await store.close()
            throw new CliError(`cannot serve metrics on ${metricsAt.host}:${metricsAt.port}: ${(err as Error).message}`)
        }
    }
    const removeLastResort = installLastResort(signals, log)
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

    await new Promise<void>(done => {
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
                log({ ts: new Date().toISOString(), event: "shutdown", outcome: "done" })
                removeLastResort()
                done()
            })()
        }
        signals.on("SIGINT", () => stop("SIGINT"))
        signals.on("SIGTERM", () => stop("SIGTERM"))
    })
}
