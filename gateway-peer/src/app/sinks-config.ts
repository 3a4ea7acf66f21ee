// The "sinks" section of the serve configuration (PROTOCOL.md 12.4): where a device's PUBLISH
// goes besides the MQTT bridge, for operators without a broker.
//
//     { "sinks": { "stdout": true,
//                  "file": "publishes.jsonl",
//                  "webhook": { "url": "https://ingest.example/tether", "timeoutMs": 5000,
//                               "attempts": 4, "backoffMs": 250, "maxBackoffMs": 4000,
//                               "authorizationFile": "webhook-token" } } }
//
// Nothing here does I/O: parsing a configuration file opens no file and no socket.

/** The webhook of the "sinks" section. */
export interface WebhookConfig {
    /** http:// or https://; POSTed one JSON batch per device record */
    readonly url: string
    /** per attempt: no 2xx status line within it is a failed attempt (default 5000) */
    readonly timeoutMs: number
    /** attempts per batch before the batch is refused to the device (SinkUnavailable; default 4) */
    readonly attempts: number
    /** the delay before the second attempt, doubled for each further one (default 250) */
    readonly backoffMs: number
    /** the longest delay between two attempts (default 4000) */
    readonly maxBackoffMs: number
    /** a file holding the Authorization header's value (one trailing newline dropped) */
    readonly authorizationFile?: string
}

/** The parsed "sinks" section. File paths are as written (the caller resolves them). */
export interface SinksConfig {
    /** one JSON line per device PUBLISH on stdout, payload included (opt-in) */
    readonly stdout: boolean
    /** the same JSON lines appended to this file */
    readonly file?: string
    readonly webhook?: WebhookConfig
}

export const WEBHOOK_DEFAULTS = { timeoutMs: 5000, attempts: 4, backoffMs: 250, maxBackoffMs: 4000 } as const

/** A problem in the section, in the words of parseConfig's ConfigError. */
export class SinksConfigError extends Error {}

/** Checks a webhook URL. @returns an error message, or undefined when it is fine */
export function checkWebhookUrl(url: string): string | undefined {
    let u: URL
    try {
        u = new URL(url)
    } catch {
        return "is not a URL"
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") return "must be http:// or https://"
    if (u.username !== "" || u.password !== "") return "must not hold credentials: use authorizationFile"
    return undefined
}

function int(o: Record<string, unknown>, k: keyof typeof WEBHOOK_DEFAULTS, min: number, max: number): number {
    const v = o[k] ?? WEBHOOK_DEFAULTS[k]
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max)
        throw new SinksConfigError(`sinks.webhook.${k} must be an integer in ${min}..${max}`)
    return v as number
}

/** Validates the webhook object (also `serve --webhook URL`, as `{ url }`). @throws SinksConfigError */
export function parseWebhookConfig(v: unknown): WebhookConfig {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new SinksConfigError("sinks.webhook must be an object")
    const o = v as Record<string, unknown>
    const known = ["url", "authorizationFile", ...Object.keys(WEBHOOK_DEFAULTS)]
    for (const k of Object.keys(o))
        if (!known.includes(k)) throw new SinksConfigError(`sinks.webhook: unknown key ${k} (known: ${known.join(", ")})`)
    if (typeof o.url !== "string") throw new SinksConfigError("sinks.webhook.url must be a string")
    const bad = checkWebhookUrl(o.url)
    if (bad !== undefined) throw new SinksConfigError(`sinks.webhook.url ${bad}`)
    const authorizationFile = o.authorizationFile
    if (authorizationFile !== undefined && (typeof authorizationFile !== "string" || authorizationFile.length === 0))
        throw new SinksConfigError("sinks.webhook.authorizationFile must be a non-empty string")
    const backoffMs = int(o, "backoffMs", 1, 60000)
    const maxBackoffMs = int(o, "maxBackoffMs", 1, 600000)
    if (maxBackoffMs < backoffMs) throw new SinksConfigError("sinks.webhook.maxBackoffMs must be at least backoffMs")
    return {
        url: o.url,
        timeoutMs: int(o, "timeoutMs", 1, 600000),
        attempts: int(o, "attempts", 1, 100),
        backoffMs,
        maxBackoffMs,
        ...(authorizationFile !== undefined ? { authorizationFile: authorizationFile as string } : {}),
    }
}

/** Validates the "sinks" section. Unknown keys are errors. @throws SinksConfigError naming the field */
export function parseSinksConfig(v: unknown): SinksConfig {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new SinksConfigError("sinks must be an object")
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o))
        if (k !== "stdout" && k !== "file" && k !== "webhook")
            throw new SinksConfigError(`sinks: unknown key ${k} (known: stdout, file, webhook)`)
    if (o.stdout !== undefined && typeof o.stdout !== "boolean") throw new SinksConfigError("sinks.stdout must be true or false")
    if (o.file !== undefined && (typeof o.file !== "string" || o.file.length === 0))
        throw new SinksConfigError("sinks.file must be a non-empty string")
    return {
        stdout: o.stdout === true,
        ...(o.file !== undefined ? { file: o.file as string } : {}),
        ...(o.webhook !== undefined ? { webhook: parseWebhookConfig(o.webhook) } : {}),
    }
}
