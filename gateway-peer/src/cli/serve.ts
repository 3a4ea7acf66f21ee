// `tether-gateway serve`: the gateway with its registry and application layer, until SIGINT or
// SIGTERM (CLOSE(SHUTDOWN) to every session, state flushed, exit 0).
//
// Other CLI processes change the state while it runs; once a second serve looks for
//   - revoked devices with live sessions: closed with CLOSE(REVOKED) (SQLite in WAL mode shows
//     the other process's commit to the next read), and
//   - a rotated ticket key file: the new key becomes current here too.
import { readFileSync, statSync } from "node:fs"
import { join, resolve } from "node:path"
import { startAppGateway } from "../app/serve.js"
import { ConfigError, parseConfig, type UpstreamConfig } from "../app/upstream.js"
import { DEFAULT_POLICY, resolvePolicy } from "../policy.js"
import type { Registry } from "../registry/registry.js"
import type { LogLine } from "../server.js"
import { loadState, TICKET_KEYS_FILE, type ModeFixFn } from "../state.js"
import { openAppDatabase, SqliteAppStateStore, SqliteOutbox } from "../store/sqlite-app.js"
import type { TicketKeySet } from "../tickets.js"
import { Code } from "../wire.js"
import {
    CliError,
    intOption,
    nowSeconds,
    openState,
    parse,
    policyFrom,
    policyOptionName,
    STATE_OPTION,
    stateDir,
    type Io,
} from "./common.js"

export const SERVE_USAGE = `usage: tether-gateway serve [options]

Runs the gateway: Tether over TCP for the paired devices, their application messages, and the
upstream routes of the configuration file. Logs one JSON line per event on stdout. SIGINT or
SIGTERM closes every session with CLOSE(SHUTDOWN), flushes the state and exits 0.

  --state DIR     the state directory (default ./.tether)
  --host H        the address to listen on (default 127.0.0.1)
  --port P        the port (default 4433; 0 picks a free one)
  --config FILE   upstream routes and policy, JSON:
                  { "routes": { "weather": { "url": "http://127.0.0.1:8080/w", "method": "POST",
                    "timeoutMs": 5000, "maxResponseBytes": 993, "devices": ["*"] } },
                    "policy": { "perSourceConnections": 1024 } }
                  without it every REQUEST is refused

Policy (PROTOCOL.md 9.4; each also a "policy" field of the config file, named in camelCase;
the command line wins):
${Object.entries(DEFAULT_POLICY)
    .map(([k, v]) => `  --${policyOptionName(k)} N`.padEnd(34) + `default ${v}`)
    .join("\n")}`

/** How often serve looks at the registry and the ticket key file. */
export const WATCH_INTERVAL_MS = 1000

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
 * Brings the running key set up to the file's (PROTOCOL.md 6.1, 6.5): a key the file has and the
 * running set does not, with a higher id, is a rotation of its kind (TicketKeySet.rotate with
 * that key's bytes); a key the running set holds and the file does not was retired (deleted at
 * once). Anything else is logged as out of sync (restart serve).
 */
function syncTicketKeys(live: TicketKeySet, dir: string, now: number, log: (l: LogLine) => void): void {
    const file = loadState(dir).ticketKeys
    const ts = () => new Date().toISOString()
    for (const k of file.keys) {
        const held = live.keys.find(x => x.id === k.id)
        if (held !== undefined) {
            if (!held.key.equals(k.key) || held.kind !== k.kind)
                log({ ts: ts(), event: "ticket-key", outcome: "out-of-sync", keyId: k.id, detail: "restart serve" })
            continue
        }
        if (k.retireAt !== undefined) continue // an old key the running set already dropped
        try {
            live.install(k, now)
            log({ ts: ts(), event: "ticket-key", outcome: "rotated", keyId: k.id, kind: k.kind })
        } catch {
            log({ ts: ts(), event: "ticket-key", outcome: "out-of-sync", keyId: k.id, detail: "restart serve" })
        }
    }
    for (const k of [...live.keys])
        if (!file.keys.some(x => x.id === k.id) && k.retireAt !== undefined) {
            live.retire(k.id)
            log({ ts: ts(), event: "ticket-key", outcome: "retired", keyId: k.id, kind: k.kind })
        }
    live.prune(now)
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

async function closeRevoked(registry: Registry, closeDevice: (id: string, code: number) => number): Promise<void> {
    for (const d of await registry.listDevices()) if (d.revoked) closeDevice(d.id, Code.REVOKED)
}

/** Runs `serve`; resolves when the gateway has shut down. */
export async function serve(argv: string[], io: Io, signals: NodeJS.EventEmitter = process): Promise<void> {
    const policyOptions = Object.fromEntries(Object.keys(DEFAULT_POLICY).map(k => [policyOptionName(k), { type: "string" as const }]))
    const r = parse(
        argv,
        { ...STATE_OPTION, host: { type: "string" }, port: { type: "string" }, config: { type: "string" }, ...policyOptions },
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
    const dir = stateDir(r.values.state, io)
    const log = (l: LogLine) => io.out(JSON.stringify(l))
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
    const { state, registry } = openState(dir, onModeFix)
    // the app's stores on their own connection to the registry's file (until the node's store owner opens them)
    const appDb = openAppDatabase(state.registryPath, { onModeFix })
    const store = { close: async () => void appDb.close() }
    const app = { receiving: new SqliteAppStateStore(appDb, { onModeFix }), outbox: new SqliteOutbox(appDb), config }
    let g
    try {
        g = await startAppGateway({ host, port, registry, state, log, policy, app })
    } catch (err) {
        await store.close()
        await registry.close()
        throw new CliError(`cannot listen on ${host}:${port}: ${(err as Error).message}`)
    }
    const gw = g
    const removeLastResort = installLastResort(signals, log)
    log({
        ts: new Date().toISOString(),
        event: "serve",
        host,
        port: gw.gateway.port,
        devices: (await registry.listDevices()).length,
        routes: config.routes.size,
        ...policy,
    })

    const keysPath = join(dir, TICKET_KEYS_FILE)
    let keysMtime = statSync(keysPath).mtimeMs
    let watching = false
    const watch = setInterval(() => {
        if (watching) return
        watching = true
        void (async () => {
            try {
                await closeRevoked(registry, (id, code) => gw.gateway.closeDevice(id, code))
                const m = statSync(keysPath).mtimeMs
                if (m !== keysMtime) {
                    keysMtime = m
                    syncTicketKeys(state.ticketKeys, dir, nowSeconds(), log)
                }
            } catch (err) {
                log({ ts: new Date().toISOString(), event: "watch", outcome: "error", detail: (err as Error).message })
            } finally {
                watching = false
            }
        })()
    }, WATCH_INTERVAL_MS)

    await new Promise<void>(done => {
        let stopping = false
        const stop = (signal: string) => {
            if (stopping) {
                log({ ts: new Date().toISOString(), event: "shutdown", outcome: "forced", signal })
                process.exit(1)
            }
            stopping = true
            log({ ts: new Date().toISOString(), event: "shutdown", outcome: "started", signal })
            clearInterval(watch)
            void (async () => {
                await gw.close()
                await store.close()
                await registry.close() // closing the SQLite connection checkpoints the WAL
                log({ ts: new Date().toISOString(), event: "shutdown", outcome: "done" })
                removeLastResort()
                done()
            })()
        }
        signals.on("SIGINT", () => stop("SIGINT"))
        signals.on("SIGTERM", () => stop("SIGTERM"))
    })
}
