// Sinks for operators without a broker (PROTOCOL.md 12.4), on GatewayApp's durable sink hook:
//
//   - JSON lines (stdout, or appended to a file): one line per device PUBLISH with the device's
//     name and id, its topic, stream id and message id, the payload in base64 and, when it is
//     printable UTF-8, as text. Opt-in: the ordinary log lines never carry a payload;
//   - an HTTP webhook: each batch (the new PUBLISHes of one device record) POSTed as one JSON
//     object; the batch is taken only on a 2xx answer, retried with a bounded exponential backoff
//     and a per-attempt timeout, then refused (SinkUnavailable: the device's session is closed
//     with CLOSE(BUSY), the device resends later, nothing is lost);
//   - composeSinks: several sinks (the MQTT bridge, a webhook, JSON lines) as one; a batch is
//     taken once every one of them took it.
//
// A sink may see a batch more than once (a retry, the device's resend after a refusal or a
// crash): (device, stream, id) names each message, and a consumer drops what it already has.
import { appendFile, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { SinkUnavailable, type SinkMessage } from "./gateway-app.js"
import { parseWebhookConfig, type SinksConfig, type WebhookConfig } from "./sinks-config.js"
import type { LogLine } from "../server.js"

/** A durable sink: resolves once the batch is taken, rejects (SinkUnavailable) when it is not. */
export type Sink = (batch: readonly SinkMessage[]) => Promise<void>

const utf8 = new TextDecoder("utf-8", { fatal: true })
/** C0 controls other than tab, newline and carriage return, DEL, C1 controls */
const UNPRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/

/** The payload as text when it is valid UTF-8 without control characters, else undefined. */
export function printable(payload: Buffer): string | undefined {
    let s: string
    try {
        s = utf8.decode(payload)
    } catch {
        return undefined
    }
    return UNPRINTABLE.test(s) ? undefined : s
}

/**
 * One message as the JSON sinks write it: `{ device, deviceId, stream, id, topic, bytes,
 * payload (base64), text (when printable) }`.
 */
export function sinkJson(m: SinkMessage): Record<string, string | number> {
    const text = printable(m.payload)
    return {
        device: m.device,
        deviceId: m.deviceId,
        stream: m.stream,
        id: m.id,
        topic: m.topic,
        bytes: m.payload.length,
        payload: m.payload.toString("base64"),
        ...(text !== undefined ? { text } : {}),
    }
}

/**
 * A sink writing one JSON line per message, `{"ts", "event": "publish", ...sinkJson}`, through
 * `write` (the batch is taken once `write` returned, or its promise resolved).
 */
export function jsonLinesSink(write: (lines: string) => void | Promise<void>): Sink {
    return async batch => {
        if (batch.length === 0) return
        const ts = new Date().toISOString()
        await write(batch.map(m => JSON.stringify({ ts, event: "publish", ...sinkJson(m) })).join("\n"))
    }
}

/** JSON lines appended to `path` (created mode 0600: payloads are the devices' data). */
export function fileSink(path: string): Sink {
    return jsonLinesSink(
        lines =>
            new Promise<void>((done, fail) =>
                appendFile(path, lines + "\n", { mode: 0o600 }, err =>
                    err === null ? done() : fail(new SinkUnavailable(`file sink: ${err.code ?? "error"}`))
                )
            )
    )
}

/** Options of webhookSink. */
export interface WebhookSinkOptions extends WebhookConfig {
    /** the Authorization header's value (never logged) */
    readonly authorization?: string
    readonly log?: (l: LogLine) => void
}

/** The URL as a log line may show it: no credentials, no query (it may hold a token). */
export function redactWebhookUrl(url: string): string {
    try {
        const u = new URL(url)
        return `${u.origin}${u.pathname}`
    } catch {
        return "(unparsable URL)"
    }
}

/** One POST: the status, or the failure's name; never throws. */
async function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number | string> {
    try {
        const res = await fetch(url, { method: "POST", body, headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) })
        // only the status counts: the body, however long or slow, is not read
        res.body?.cancel().catch(() => {})
        return res.status
    } catch (err) {
        const e = err as { name?: string; cause?: { code?: string } }
        return e.name === "TimeoutError" ? "timeout" : (e.cause?.code ?? e.name ?? "error")
    }
}

/**
 * A sink POSTing each batch to a webhook as `{"messages": [sinkJson, ...]}` (content-type
 * application/json). A 2xx status takes the batch; anything else (3xx, which is not followed,
 * 4xx, 5xx, a refused or reset connection, no status within `timeoutMs`) is a failed attempt,
 * retried after `backoffMs`, doubled each time up to `maxBackoffMs`, `attempts` times in all;
 * then the batch is refused (SinkUnavailable). Logs once when the webhook starts failing and
 * once when it takes a batch again, never each attempt, never a payload or the Authorization.
 */
export function webhookSink(opts: WebhookSinkOptions): Sink {
    const where = redactWebhookUrl(opts.url)
    const log = (l: Record<string, string | number | undefined>) =>
        opts.log?.({ ts: new Date().toISOString(), event: "sink", sink: "webhook", url: where, ...l })
    let failing = false
    return async batch => {
        if (batch.length === 0) return
        const first = batch[0]!
        const body = JSON.stringify({ messages: batch.map(sinkJson) })
        const headers: Record<string, string> = {
            "content-type": "application/json",
            "user-agent": "tether-gateway",
            "x-tether-device": first.device,
            ...(opts.authorization !== undefined ? { authorization: opts.authorization } : {}),
        }
        let last: number | string = "none"
        let delay = opts.backoffMs
        for (let attempt = 1; attempt <= opts.attempts; attempt++) {
            if (attempt > 1) {
                await new Promise(r => setTimeout(r, delay))
                delay = Math.min(opts.maxBackoffMs, delay * 2)
            }
            last = await post(opts.url, body, headers, opts.timeoutMs)
            if (typeof last === "number" && last >= 200 && last <= 299) {
                if (failing) log({ outcome: "available", device: first.device })
                failing = false
                return
            }
        }
        if (!failing)
            log({
                outcome: "unavailable",
                device: first.device,
                attempts: opts.attempts,
                status: typeof last === "number" ? last : undefined,
                detail: typeof last === "string" ? last : undefined,
            })
        failing = true
        throw new SinkUnavailable(`webhook: ${typeof last === "number" ? `HTTP ${last}` : last}`)
    }
}

/**
 * Several sinks as one: each batch goes to all of them at once, and is taken when every one took
 * it. One refusal refuses the batch (SinkUnavailable), and the device resends it: the sinks that
 * had taken it then see it again, with the same ids. Undefined for none.
 */
export function composeSinks(sinks: readonly (Sink | undefined)[]): Sink | undefined {
    const all = sinks.filter((s): s is Sink => s !== undefined)
    if (all.length <= 1) return all[0]
    return async batch => {
        const results = await Promise.allSettled(all.map(s => s(batch)))
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected")
        if (failed !== undefined) throw failed.reason instanceof SinkUnavailable ? failed.reason : new SinkUnavailable("a sink failed")
    }
}

/** What `serve`'s flags add to the config file's "sinks" section. */
export interface SinkFlags {
    /** --sink-stdout */
    readonly stdout?: unknown
    /** --sink-file FILE */
    readonly file?: unknown
    /** --webhook URL (replaces the section's webhook URL, keeps its other settings) */
    readonly webhook?: unknown
}

/**
 * The sinks of a serve configuration and its flags, ready for NodeOptions.sinks: the JSON lines
 * on `out` (stdout: the same stream as the log lines, told apart by `"event": "publish"`), the
 * file and the webhook (paths resolved against `cwd`; the authorization file read now).
 * @throws SinksConfigError for a bad --webhook URL, Error naming a file it cannot read (never its contents)
 */
export function startSinks(
    section: SinksConfig | undefined,
    flags: SinkFlags,
    opts: { readonly cwd: string; readonly out: (line: string) => void; readonly log: (l: LogLine) => void }
): Sink[] {
    const sinks: Sink[] = []
    if (flags.stdout === true || section?.stdout === true) sinks.push(jsonLinesSink(opts.out))
    const file = typeof flags.file === "string" ? flags.file : section?.file
    if (file !== undefined) sinks.push(fileSink(resolve(opts.cwd, file)))
    let webhook = section?.webhook
    if (typeof flags.webhook === "string") {
        const { url: _, ...rest } = webhook ?? { url: "" }
        webhook = parseWebhookConfig({ ...rest, url: flags.webhook })
    }
    if (webhook !== undefined) {
        let authorization: string | undefined
        if (webhook.authorizationFile !== undefined) {
            const path = resolve(opts.cwd, webhook.authorizationFile)
            try {
                authorization = readFileSync(path, "utf8").replace(/\r?\n$/, "")
            } catch (err) {
                throw new Error(
                    `sinks: cannot read the webhook's authorizationFile ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`
                )
            }
        }
        sinks.push(webhookSink({ ...webhook, authorization, log: opts.log }))
    }
    return sinks
}
