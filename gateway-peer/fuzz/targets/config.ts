// The routes config loader, parseConfig, two ways. Input byte 0 even: the rest is JSON text
// (JSON.parse's SyntaxError is not the loader's business). Odd: the rest drives edits of a valid
// configuration, two bytes an edit (which field or key, which value from a list of awkward ones),
// so that most inputs are valid JSON a step away from a valid config. It throws ConfigError or
// returns routes that keep the documented limits (a name of 1..255 bytes, an http(s) URL, a
// known method, a timeout setTimeout can honour, 0..993 response bytes, named devices), and
// parsing its own output again gives the same routes.
import { MAX_RESPONSE_PAYLOAD } from "../../src/app/codec.js"
import { ConfigError, parseConfig, type UpstreamConfig } from "../../src/app/upstream.js"
import { check, InvariantError, type Target } from "../engine.js"

/** setTimeout's limit: a longer delay is replaced by 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

const BASE = {
    routes: {
        weather: { url: "http://127.0.0.1:8080/w", method: "POST", timeoutMs: 5000, maxResponseBytes: 993, devices: ["*"] },
        time: { url: "https://example.invalid/t", method: "get", devices: ["sensor-1", "sensor-2"] },
    },
}

const VALUES: unknown[] = [
    null,
    true,
    false,
    0,
    -1,
    1,
    1.5,
    992,
    993,
    994,
    2 ** 31 - 1,
    2 ** 31,
    1e10,
    2 ** 53,
    1e308,
    -0,
    "",
    "*",
    "GET",
    "get",
    "CONNECT",
    "http://x",
    "https://[::1]:8443/p",
    "ftp://x",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://a:99999",
    "x".repeat(255),
    "x".repeat(256),
    "é".repeat(128),
    "__proto__",
    "constructor",
    "toString",
    [],
    [""],
    ["*"],
    ["a", 1],
    [[]],
    {},
    { url: "http://a" },
    { toString: "x" },
]
const KEYS = [
    "routes",
    "url",
    "method",
    "timeoutMs",
    "maxResponseBytes",
    "devices",
    "__proto__",
    "constructor",
    "",
    "x".repeat(256),
    "é".repeat(128),
    "route",
]

type Json = Record<string, unknown>

/** Every (object, key) pair in the tree, depth first. */
function slots(o: unknown, out: [Json, string][] = []): [Json, string][] {
    if (o !== null && typeof o === "object")
        for (const k of Object.keys(o)) {
            out.push([o as Json, k])
            slots((o as Json)[k], out)
        }
    return out
}

function edited(data: Buffer): unknown {
    const j = JSON.parse(JSON.stringify(BASE)) as unknown
    for (let i = 0; i + 1 < data.length; i += 2) {
        const all = slots(j)
        const [obj, key] = all[(data[i] as number) % all.length] as [Json, string]
        const v = data[i + 1] as number
        if (v < 0xe0) obj[key] = JSON.parse(JSON.stringify(VALUES[v % VALUES.length]))
        else {
            // rename the key (defineProperty: a "__proto__" key stays an own key, as JSON.parse makes it)
            const value = obj[key]
            delete obj[key]
            Object.defineProperty(obj, KEYS[v % KEYS.length] as string, { value, enumerable: true, writable: true, configurable: true })
        }
    }
    // back through JSON text: what a config file can hold (no holes, no undefined)
    return JSON.parse(JSON.stringify(j))
}

function checkRoutes(c: UpstreamConfig): void {
    for (const [name, r] of c.routes) {
        const len = Buffer.byteLength(name, "utf8")
        check(len >= 1 && len <= 255, `route name of ${len} bytes`)
        const u = new URL(r.url)
        check(u.protocol === "http:" || u.protocol === "https:", `route ${name}: url ${r.url}`)
        check(METHODS.includes(r.method), `route ${name}: method ${r.method}`)
        check(
            Number.isInteger(r.timeoutMs) && r.timeoutMs > 0 && r.timeoutMs <= MAX_TIMER_MS,
            `route ${name}: timeoutMs ${r.timeoutMs} (setTimeout runs a delay above ${MAX_TIMER_MS} after 1 ms)`
        )
        check(
            Number.isInteger(r.maxResponseBytes) && r.maxResponseBytes >= 0 && r.maxResponseBytes <= MAX_RESPONSE_PAYLOAD,
            `route ${name}: maxResponseBytes ${r.maxResponseBytes}`
        )
        check(Array.isArray(r.devices) && r.devices.every(d => typeof d === "string" && d.length > 0), `route ${name}: devices`)
    }
}

const canonical = (c: UpstreamConfig) => JSON.stringify([...c.routes.entries()])

export async function create(): Promise<Target> {
    return {
        name: "config",
        maxLen: 8192,
        dictionary: [
            '"routes"',
            '"url"',
            '"method"',
            '"timeoutMs"',
            '"maxResponseBytes"',
            '"devices"',
            '"__proto__"',
            '"http://a/"',
            '["*"]',
            "1e10",
            "-1",
            "null",
            "{}",
            "[]",
            ":",
            ",",
        ].map(s => Buffer.from(s)),
        run(data) {
            if (data.length === 0) return
            let json: unknown
            if (((data[0] as number) & 1) === 0) {
                try {
                    json = JSON.parse(data.subarray(1).toString("utf8"))
                } catch (err) {
                    if (err instanceof SyntaxError) return
                    throw err
                }
            } else json = edited(data.subarray(1))
            let c: UpstreamConfig
            try {
                c = parseConfig(json)
            } catch (err) {
                if (err instanceof ConfigError) return
                throw err
            }
            checkRoutes(c)
            let again: UpstreamConfig
            try {
                again = parseConfig(JSON.parse(JSON.stringify({ routes: Object.fromEntries(c.routes) })))
            } catch (err) {
                throw new InvariantError(`the parsed routes do not parse again: ${(err as Error).message}`)
            }
            check(canonical(again) === canonical(c), "parsing the parsed routes again gives other routes")
        },
    }
}
