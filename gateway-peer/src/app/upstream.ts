// The funnel (PROTOCOL.md 12.2): routes from the gateway's configuration, an allow-list per
// route, and the upstream HTTP call made on the device's behalf with Node's global fetch.
//
//     { "routes": { "weather": { "url": "http://127.0.0.1:8080/w", "method": "POST",
//                                "timeoutMs": 5000, "maxResponseBytes": 993,
//                                "devices": ["*"] } },
//       "mqtt": { "url": "mqtt://127.0.0.1:1883", ... },   (app/mqtt-config.ts)
//       "sinks": { "stdout": true, "webhook": { "url": ... } } }   (app/sinks-config.ts)
import { MqttConfigError, parseMqttConfig, type MqttConfig } from "./mqtt-config.js"
import { parseSinksConfig, SinksConfigError, type SinksConfig } from "./sinks-config.js"
import { AppError, MAX_NAME_LEN, MAX_RESPONSE_PAYLOAD, MAX_STATUS, MIN_STATUS, STATUS_GATEWAY_ERROR } from "./codec.js"

/** One upstream route. */
export interface Route {
    readonly url: string
    readonly method: string
    readonly timeoutMs: number
    readonly maxResponseBytes: number
    /** device names allowed to use the route; "*" allows every device */
    readonly devices: readonly string[]
}

/** The parsed configuration. */
export interface UpstreamConfig {
    readonly routes: ReadonlyMap<string, Route>
    /** the MQTT bridge's section (PROTOCOL.md 12.3), if the file has one */
    readonly mqtt?: MqttConfig
    /** the sinks' section (PROTOCOL.md 12.4), if the file has one */
    readonly sinks?: SinksConfig
}

/** A configuration problem, with a message fit for the operator. */
export class ConfigError extends Error {
    constructor(message: string) {
        super(`config: ${message}`)
        this.name = "ConfigError"
    }
}

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"])
const DEFAULT_TIMEOUT_MS = 5000
/** The longest delay a Node timer waits (a larger one fires at once): 2^31 - 1 ms, about 24.8 days. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/**
 * Validates a parsed configuration file. Unknown keys are errors (a typo must not silently
 * open or close a route).
 * @throws ConfigError naming the bad field
 */
export function parseConfig(json: unknown): UpstreamConfig {
    const routes = new Map<string, Route>()
    if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConfigError("expected an object")
    // "$schema" names the schema for editors (gateway-peer/schema/config.schema.json)
    for (const k of Object.keys(json))
        if (k !== "routes" && k !== "mqtt" && k !== "sinks" && k !== "$schema") throw new ConfigError(`unknown key ${k}`)
    let mqtt: MqttConfig | undefined
    const m = (json as { mqtt?: unknown }).mqtt
    if (m !== undefined)
        try {
            mqtt = parseMqttConfig(m)
        } catch (err) {
            if (err instanceof MqttConfigError) throw new ConfigError(err.message)
            throw err
        }
    let sinks: SinksConfig | undefined
    const sk = (json as { sinks?: unknown }).sinks
    if (sk !== undefined)
        try {
            sinks = parseSinksConfig(sk)
        } catch (err) {
            if (err instanceof SinksConfigError) throw new ConfigError(err.message)
            throw err
        }
    const r = (json as { routes?: unknown }).routes ?? {}
    if (r === null || typeof r !== "object" || Array.isArray(r)) throw new ConfigError("routes must be an object")
    for (const [name, v] of Object.entries(r as Record<string, unknown>)) {
        const where = `routes.${name}`
        const len = Buffer.byteLength(name, "utf8")
        if (len === 0 || len > MAX_NAME_LEN) throw new ConfigError(`${where}: a route name is 1..${MAX_NAME_LEN} bytes`)
        if (v === null || typeof v !== "object") throw new ConfigError(`${where} must be an object`)
        const o = v as Record<string, unknown>
        for (const k of Object.keys(o))
            if (!["url", "method", "timeoutMs", "maxResponseBytes", "devices"].includes(k))
                throw new ConfigError(`${where}: unknown key ${k}`)
        if (typeof o.url !== "string") throw new ConfigError(`${where}.url must be a string`)
        let url: URL
        try {
            url = new URL(o.url)
        } catch {
            throw new ConfigError(`${where}.url is not a URL`)
        }
        if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(`${where}.url must be http or https`)
        if (o.method !== undefined && typeof o.method !== "string") throw new ConfigError(`${where}.method must be a string`)
        const method = o.method === undefined ? "POST" : o.method.toUpperCase()
        if (!METHODS.has(method)) throw new ConfigError(`${where}.method ${method} is not one of ${[...METHODS].join(", ")}`)
        const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS
        if (!Number.isInteger(timeoutMs) || (timeoutMs as number) <= 0 || (timeoutMs as number) > MAX_TIMEOUT_MS)
            throw new ConfigError(`${where}.timeoutMs must be an integer in 1..${MAX_TIMEOUT_MS}`)
        const maxResponseBytes = o.maxResponseBytes ?? MAX_RESPONSE_PAYLOAD
        if (!Number.isInteger(maxResponseBytes) || (maxResponseBytes as number) < 0 || (maxResponseBytes as number) > MAX_RESPONSE_PAYLOAD)
            throw new ConfigError(`${where}.maxResponseBytes must be 0..${MAX_RESPONSE_PAYLOAD}`)
        const devices = o.devices
        if (!Array.isArray(devices) || !devices.every(d => typeof d === "string" && d.length > 0))
            throw new ConfigError(`${where}.devices must be a list of device names or ["*"]`)
        routes.set(name, { url: url.href, method, timeoutMs: timeoutMs as number, maxResponseBytes: maxResponseBytes as number, devices })
    }
    return { routes, ...(mqtt !== undefined ? { mqtt } : {}), ...(sinks !== undefined ? { sinks } : {}) }
}

/** The route `name` if `device` may use it; undefined otherwise (refused). */
export function allowedRoute(config: UpstreamConfig, name: string, device: string): Route | undefined {
    const r = config.routes.get(name)
    if (r === undefined) return undefined
    return r.devices.includes("*") || r.devices.includes(device) ? r : undefined
}

/** An upstream answer: HTTP status and body, or status 0 and one AppError byte. */
export interface UpstreamResult {
    readonly status: number
    readonly payload: Buffer
    /** for the log line: "ok" or the error's name */
    readonly outcome: "ok" | keyof typeof AppError
    /** for the log line: what failed, when there is more to say than the outcome */
    readonly detail?: string
}

/** A failure answer. */
export function gatewayError(code: AppError): UpstreamResult {
    const outcome = (Object.keys(AppError) as (keyof typeof AppError)[]).find(k => AppError[k] === code) ?? "UPSTREAM_FAILED"
    return { status: STATUS_GATEWAY_ERROR, payload: Buffer.from([code]), outcome }
}

class TooLarge extends Error {}

async function readCapped(res: Response, max: number): Promise<Buffer> {
    const declared = Number(res.headers.get("content-length") ?? NaN)
    if (Number.isFinite(declared) && declared > max) throw new TooLarge()
    if (res.body === null) return Buffer.alloc(0)
    const chunks: Buffer[] = []
    let size = 0
    const reader = res.body.getReader()
    try {
        for (;;) {
            const { done, value } = await reader.read()
            if (done) break
            size += value.length
            if (size > max) throw new TooLarge()
            chunks.push(Buffer.from(value))
        }
    } finally {
        reader.releaseLock()
    }
    return Buffer.concat(chunks)
}

/**
 * Calls the upstream for a device (PROTOCOL.md 12.2): the payload is the request body (none
 * for GET and DELETE), the device's name goes in `x-tether-device`, and a request that came as
 * early data carries `Early-Data: 1` (RFC 8470, PROTOCOL.md 9.3). The timeout covers the whole
 * call, body included. Never throws.
 */
export async function callUpstream(
    route: Route,
    payload: Buffer,
    device: string,
    fetchImpl: typeof fetch = fetch,
    opts: { early?: boolean } = {}
): Promise<UpstreamResult> {
    const ac = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
        timedOut = true
        ac.abort()
    }, route.timeoutMs)
    try {
        const hasBody = route.method !== "GET" && route.method !== "DELETE"
        const res = await fetchImpl(route.url, {
            method: route.method,
            headers: {
                "content-type": "application/octet-stream",
                "x-tether-device": device,
                ...(opts.early === true ? { "early-data": "1" } : {}),
            },
            body: hasBody ? new Uint8Array(payload) : undefined,
            signal: ac.signal,
            redirect: "error",
        })
        try {
            // HTTP status codes are three digits from 100 (RFC 9110 15), but Node's fetch passes
            // 600 to 999 through; RESPONSE carries 100 to 599 only (PROTOCOL.md 12.2), so any
            // other status is a failed call, not a status to forward
            if (!Number.isInteger(res.status) || res.status < MIN_STATUS || res.status > MAX_STATUS) {
                ac.abort() // the body is not wanted: release the connection
                return { ...gatewayError(AppError.UPSTREAM_FAILED), detail: `status ${res.status}` }
            }
            const body = await readCapped(res, route.maxResponseBytes)
            return { status: res.status, payload: body, outcome: "ok" }
        } catch (err) {
            ac.abort() // release the connection
            throw err
        }
    } catch (err) {
        if (err instanceof TooLarge) return gatewayError(AppError.UPSTREAM_TOO_LARGE)
        if (timedOut) return gatewayError(AppError.UPSTREAM_TIMEOUT)
        return gatewayError(AppError.UPSTREAM_FAILED)
    } finally {
        clearTimeout(timer)
    }
}
