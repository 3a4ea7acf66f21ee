// The config file's schema against app/upstream.ts parseConfig (they agree on good and bad
// files; what only parseConfig can say stays its), and serve's pino log: levels, redaction.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { parseConfig } from "../../src/app/upstream.js"
import { CONFIG_SCHEMA_URL, schemaErrors } from "../../src/cli/config.js"
import { createLogSink, levelOf, REDACTED } from "../../src/log.js"
import { NodeMetrics } from "../../src/app/metrics.js"
import { DEFAULT_POLICY } from "../../src/policy.js"

const up = "http://127.0.0.1:8080/w"

/** parseConfig's verdict on a whole file (its `policy` is the CLI's, a schema-only section here). */
function parsed(json: unknown): boolean {
    try {
        if (json !== null && typeof json === "object" && !Array.isArray(json)) {
            const { policy: _p, ...rest } = json as Record<string, unknown>
            parseConfig(rest)
        } else parseConfig(json)
        return true
    } catch {
        return false
    }
}

test("the schema and parseConfig agree on good and bad configs", () => {
    const good: unknown[] = [
        {},
        { $schema: "./config.schema.json" },
        { routes: {} },
        { routes: { w: { url: up, devices: ["*"] } } },
        { routes: { w: { url: "https://x.example/", method: "get", timeoutMs: 1, maxResponseBytes: 0, devices: ["a", "b"] } } },
        { routes: { w: { url: up, timeoutMs: 2 ** 31 - 1, maxResponseBytes: 993, devices: [] } } },
        { mqtt: { url: "mqtt://127.0.0.1:1883", qos: 2, protocolVersion: 5, envelope: "raw", shareGroup: null } },
        { mqtt: { publishTimeoutMs: 600000, clientId: "n", shareGroup: "g" } },
        { policy: { lingerMs: 0, perSourceConnections: 7 } },
        { sinks: {} },
        { sinks: { stdout: true, file: "p.jsonl" } },
        { sinks: { webhook: { url: "https://x.example/in", timeoutMs: 1, attempts: 100, backoffMs: 1, maxBackoffMs: 600000 } } },
        { sinks: { webhook: { url: up, authorizationFile: "auth" } } },
    ]
    const bad: unknown[] = [
        [],
        null,
        "routes",
        { extra: 1 },
        { routes: [] },
        { routes: { w: { url: "ftp://x/", devices: ["*"] } } },
        { routes: { w: { url: up } } },
        { routes: { w: { url: up, devices: "all" } } },
        { routes: { w: { url: up, devices: [""] } } },
        { routes: { w: { url: up, devices: ["*"], method: "TRACE" } } },
        { routes: { w: { url: up, devices: ["*"], timeoutMs: 0 } } },
        { routes: { w: { url: up, devices: ["*"], timeoutMs: 1.5 } } },
        { routes: { w: { url: up, devices: ["*"], timeoutMs: 2 ** 31 } } },
        { routes: { w: { url: up, devices: ["*"], maxResponseBytes: 994 } } },
        { routes: { w: { url: up, devices: ["*"], retries: 1 } } },
        { routes: { "": { url: up, devices: ["*"] } } },
        { mqtt: { url: "http://x" } },
        { mqtt: { qos: 0 } },
        { mqtt: { protocolVersion: 3 } },
        { mqtt: { envelope: "xml" } },
        { mqtt: { publishTimeoutMs: 0 } },
        { mqtt: { shareGroup: "a/b" } },
        { mqtt: { clientId: "" } },
        { mqtt: { bogus: 1 } },
        { sinks: [] },
        { sinks: { stdout: "yes" } },
        { sinks: { file: "" } },
        { sinks: { kafka: {} } },
        { sinks: { webhook: {} } },
        { sinks: { webhook: { url: "ftp://x/" } } },
        { sinks: { webhook: { url: up, attempts: 0 } } },
        { sinks: { webhook: { url: up, timeoutMs: 1.5 } } },
        { sinks: { webhook: { url: up, retries: 3 } } },
        { sinks: { webhook: { url: up, authorizationFile: "" } } },
    ]
    for (const c of good) {
        assert.deepEqual(schemaErrors(c), [], JSON.stringify(c))
        assert.ok(parsed(c), JSON.stringify(c))
    }
    for (const c of bad) {
        assert.notDeepEqual(schemaErrors(c), [], `schema: ${JSON.stringify(c)}`)
        assert.ok(!parsed(c), `parseConfig: ${JSON.stringify(c)}`)
    }
    // what only parseConfig checks: a URL that parses, a name's length in bytes, the templates
    for (const c of [
        { routes: { w: { url: "http://[nope/", devices: ["*"] } } },
        { routes: { ["é".repeat(200)]: { url: up, devices: ["*"] } } },
        { mqtt: { topicTemplate: "tether/{topic}" } },
        { sinks: { webhook: { url: "http://user:pw@x.example/" } } },
        { sinks: { webhook: { url: up, backoffMs: 5000, maxBackoffMs: 1000 } } },
    ]) {
        assert.deepEqual(schemaErrors(c), [], JSON.stringify(c))
        assert.ok(!parsed(c), JSON.stringify(c))
    }
    // the policy's fields are the server's
    const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, "utf8")) as { properties: { policy: { properties: object } } }
    assert.deepEqual(Object.keys(schema.properties.policy.properties).sort(), Object.keys(DEFAULT_POLICY).sort())
    assert.notDeepEqual(schemaErrors({ policy: { lingerMs: -1 } }), [])
    assert.notDeepEqual(schemaErrors({ policy: { noSuch: 1 } }), [])
})

test("every schema error at once, each with its JSON path", () => {
    const errors = schemaErrors({
        routes: { weather: { url: "ftp://x", timeoutMs: "5", devices: [1] } },
        policy: { lingerMs: -1 },
        nope: {},
    })
    for (const e of [
        "/: unknown key nope",
        "/routes/weather/url: must be an http:// or https:// URL",
        "/routes/weather/timeoutMs: must be integer",
        "/routes/weather/devices/0: must be string",
        "/policy/lingerMs: must be >= 0",
    ])
        assert.ok(errors.includes(e), `${e} in ${JSON.stringify(errors)}`)
})

test("serve's log: pino lines with a level label, the LogLine fields kept, secret-named fields redacted", () => {
    const lines: string[] = []
    const sink = createLogSink({ level: "info", write: l => lines.push(l) })
    sink.log({ ts: "t", event: "connection", outcome: "established", deviceName: "d1", source: "127.0.0.1" })
    sink.log({
        ts: "t",
        event: "x",
        outcome: "reject",
        deviceName: "d1",
        psk: "00ff",
        secret: "s",
        ticket: "01",
        payload: "hello",
        key: "k",
        password: "p",
    })
    sink.log({ ts: "t", event: "x", outcome: "noise", debug: true })
    assert.equal(lines.length, 2, "the debug line is below info")
    const [a, b] = lines.map(l => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(a, { level: "info", ts: "t", event: "connection", outcome: "established", deviceName: "d1", source: "127.0.0.1" })
    assert.equal(b?.level, "warn")
    for (const f of ["psk", "secret", "ticket", "payload", "key", "password"]) assert.equal(b?.[f], REDACTED, f)
    assert.ok(!lines.join("\n").includes("00ff") && !lines.join("\n").includes("hello"))
    // an opt-in keeps payloads; a secret stays redacted
    const kept: string[] = []
    createLogSink({ write: l => kept.push(l), allowPayload: true }).log({ event: "x", payload: "hello", psk: "00ff" })
    assert.deepEqual(JSON.parse(kept[0]!), { level: "info", event: "x", payload: "hello", psk: REDACTED })
    // levels per line kind
    assert.equal(levelOf({ event: "unhandled", outcome: "kept-running" }), "error")
    assert.equal(levelOf({ event: "app", outcome: "internal-error" }), "error")
    assert.equal(levelOf({ event: "connection", outcome: "handshake-timeout" }), "warn")
    assert.equal(levelOf({ event: "app", outcome: "publish" }), "info")
    const silent: string[] = []
    createLogSink({ level: "silent", write: l => silent.push(l) }).log({ event: "unhandled" })
    assert.deepEqual(silent, [])
})

test("the metrics still count every LogLine whatever the level", () => {
    const m = new NodeMetrics()
    const sink = createLogSink({ level: "silent", write: () => {} })
    const log = (l: Record<string, string | number | boolean | undefined>) => {
        m.observe(l)
        sink.log(l)
    }
    log({ event: "connection", outcome: "reject", code: "BUSY", source: "1.2.3.4", ms: 0 })
    return m.registry.metrics().then(text => assert.match(text, /tether_rejects_total\{[^}]*\} 1/))
})
