// serve's log: the LogLine objects the gateway emits (connection.ts, server.ts, app/*) written by
// pino, one JSON object per line, with a `level` label chosen per line kind, and every field
// whose name says it holds a secret redacted by pino's configuration. The LogLine callback stays
// the event source (app/metrics.ts counts the same objects before they are written).
import { pino, type Logger } from "pino"
import type { LogLine } from "./connection.js"

/** The levels `serve --log-level` takes; "silent" writes nothing. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/**
 * Field names that are never written with their value: the gateway builds no line with one (by
 * construction), and should one appear (a field added later, a library's), pino replaces it.
 */
export const REDACTED_FIELDS = [
    "psk",
    "secret",
    "key",
    "privateKey",
    "ticket",
    "resumptionSecret",
    "rsecret",
    "password",
    "token",
    "authorization",
    "kek",
    "payload",
] as const

/** What a redacted value is written as. */
export const REDACTED = "[redacted]"

/** Outcomes that are errors of the gateway itself (level error). */
const ERROR_OUTCOMES = new Set(["internal-error", "exit", "kept-running", "forced", "out-of-sync"])

/** Outcomes worth the operator's attention (level warn): refusals, timeouts, failures, losses. */
const WARN_OUTCOMES = new Set([
    "reject",
    "error",
    "bad-frame-length",
    "write-buffer-full",
    "handshake-timeout",
    "idle-timeout",
    "unconfirmed-timeout",
    "protocol-error",
    "store-unavailable",
    "sink-unavailable",
    "unavailable",
    "store-conflict",
    "stream-lost",
    "responses-dropped",
    "response-dropped",
    "route-refused",
    "too-many-requests",
    "queue-overflow",
    "sync-failed",
    "subscribe-failed",
    "subscribe-refused",
    "disconnected",
    "unreachable",
    "command-dropped",
    "command-not-stored",
    "mode-fixed",
    "config-warning",
    "reload-failed",
    "log-limited",
])

/**
 * The level of a line: errors of the gateway → error; refusals, timeouts and failures → warn;
 * a line its emitter marks `debug` (e.g. one per record) → debug; the rest (start, connection
 * lifecycle, per-message publish/request lines that the tests and the demo read) → info.
 */
export function levelOf(l: LogLine): Exclude<LogLevel, "silent"> {
    if (l.event === "unhandled") return "error"
    const o = typeof l.outcome === "string" ? l.outcome : ""
    if (ERROR_OUTCOMES.has(o)) return "error"
    if (WARN_OUTCOMES.has(o)) return "warn"
    if (l.debug === true) return "debug"
    return "info"
}

/** A log sink: `log` takes the gateway's LogLine objects; `logger` is the pino logger under it. */
export interface LogSink {
    log(line: LogLine): void
    readonly logger: Logger
}

/**
 * A pino logger writing one line per object to `write` (without the newline), at `level` and
 * above, with the secret-named fields of REDACTED_FIELDS redacted (at the top level and one
 * level down). No pid, host name or pino time: every line carries its own `ts`.
 */
export function createLogSink(opts: { level?: LogLevel; write: (line: string) => void; allowPayload?: boolean }): LogSink {
    const fields = REDACTED_FIELDS.filter(f => !(opts.allowPayload === true && f === "payload"))
    const logger = pino(
        {
            level: opts.level ?? "info",
            base: undefined,
            timestamp: false,
            // `level` as a label, written last: the lines keep their LogLine field order (the demo
            // and the tests read `event=... outcome=...` from the start of a line)
            formatters: { level: () => ({}) },
            mixin: (_line, level) => ({ level: pino.levels.labels[level] }),
            mixinMergeStrategy: (line, mixed) => Object.assign(line, mixed),
            redact: { paths: [...fields, ...fields.map(f => `*.${f}`)], censor: REDACTED },
        },
        // with no level key up front (written last, by the mixin) and no pino time, pino opens the
        // line with "{," before the first field: the comma goes
        { write: (s: string) => opts.write((s.endsWith("\n") ? s.slice(0, -1) : s).replace(/^\{,/, "{")) }
    )
    return {
        logger,
        log(line) {
            const level = levelOf(line)
            if (!logger.isLevelEnabled(level)) return
            const { debug: _debug, ...rest } = line
            logger[level](rest)
        },
    }
}
