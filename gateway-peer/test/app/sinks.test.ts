// The sinks for operators without a broker (app/sinks.ts, PROTOCOL.md 12.4), against real
// node:http servers on loopback: the webhook takes a batch only on a 2xx, retries with a bounded
// exponential backoff and a per-attempt timeout, and survives a webhook that answers nonsense
// (a redirect, 4xx, 5xx, a socket that never answers, a body that never ends); JSON lines; the
// composition of several sinks; and, through the application layer and the Node twin of the
// device, a webhook that is down holds the device's messages (CLOSE(BUSY), nothing
// acknowledged) until it is back, and then has every one, duplicates named by their ids.
import { test } from "node:test"
import assert from "node:assert/strict"
import http from "node:http"
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import type { AddressInfo, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SinkUnavailable, type SinkMessage } from "../../src/app/gateway-app.js"
import { startAppGateway } from "../../src/app/serve.js"
import { composeSinks, fileSink, jsonLinesSink, printable, startSinks, webhookSink, type Sink } from "../../src/app/sinks.js"
import { parseSinksConfig, SinksConfigError, WEBHOOK_DEFAULTS } from "../../src/app/sinks-config.js"
import { parseConfig, ConfigError } from "../../src/app/upstream.js"
import { pairDevice } from "../../src/cli/pair.js"
import { generateKeyPair } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import type { LogLine } from "../../src/server.js"
import { MemoryAppStateStore, MemoryOutbox } from "../../src/store/memory-app.js"
import { TicketKeySet } from "../../src/tickets.js"
import { Code } from "../../src/wire.js"
import { AppClient } from "../../peer/device-app.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"

/** A webhook: `answer` decides each request; every body received is kept, with its headers. */
async function webhook(answer: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void) {
    const got: { at: number; body: { messages: Record<string, unknown>[] }; headers: http.IncomingHttpHeaders }[] = []
    const sockets = new Set<Socket>()
    const server = http.createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on("data", c => chunks.push(c))
        req.on("end", () => {
            got.push({ at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString()), headers: req.headers })
            answer(req, res, got.length)
        })
    })
    server.on("connection", s => {
        sockets.add(s)
        s.on("close", () => sockets.delete(s))
    })
    await new Promise<void>(r => server.listen(0, "127.0.0.1", r))
    return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest?token=secret-in-query`,
        got,
        close: () =>
            new Promise<void>(r => {
                for (const s of sockets) s.destroy()
                server.close(() => r())
            }),
    }
}

const msg = (id: number, payload: string | Buffer = `m-${id}`): SinkMessage => ({
    device: "dev",
    deviceId: "00112233445566aa",
    stream: 77,
    id,
    topic: "t/x",
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
})

const fast = { ...WEBHOOK_DEFAULTS, timeoutMs: 300, attempts: 3, backoffMs: 40, maxBackoffMs: 100 }

test("webhook: a 2xx takes the batch, POSTed as JSON with the ids, the payload, the Authorization", async () => {
    const w = await webhook((_q, res) => res.writeHead(204).end())
    try {
        const logs: LogLine[] = []
        const sink = webhookSink({ ...fast, url: w.url, authorization: "Bearer tok-123", log: l => logs.push(l) })
        await sink([msg(1), msg(2, Buffer.from([0, 1, 2, 255]))])
        assert.equal(w.got.length, 1)
        const [a, b] = w.got[0]!.body.messages
        assert.deepEqual(a, {
            device: "dev",
            deviceId: "00112233445566aa",
            stream: 77,
            id: 1,
            topic: "t/x",
            bytes: 3,
            payload: "bS0x",
            text: "m-1",
        })
        assert.equal(b!["payload"], Buffer.from([0, 1, 2, 255]).toString("base64"))
        assert.equal(b!["text"], undefined, "binary: no text")
        assert.equal(w.got[0]!.headers["content-type"], "application/json")
        assert.equal(w.got[0]!.headers["authorization"], "Bearer tok-123")
        assert.equal(w.got[0]!.headers["x-tether-device"], "dev")
        assert.deepEqual(logs, [])
    } finally {
        await w.close()
    }
})

test("webhook: a 503, then a 200: retried after the backoff, taken, one log line each way", async () => {
    const w = await webhook((_q, res, n) => res.writeHead(n <= 1 ? 503 : 200).end("ok"))
    try {
        const logs: LogLine[] = []
        const sink = webhookSink({ ...fast, attempts: 1, url: w.url, log: l => logs.push(l) })
        await assert.rejects(sink([msg(1)]), (e: Error) => e instanceof SinkUnavailable && /HTTP 503/.test(e.message))
        await sink([msg(1)])
        assert.equal(w.got.length, 2, "the same batch again")
        assert.deepEqual(
            logs.map(l => [l["outcome"], l["status"]]),
            [
                ["unavailable", 503],
                ["available", undefined],
            ]
        )
        // the log names the webhook without its query (a token may be there), never a payload
        assert.ok(logs.every(l => l["url"] === new URL(w.url).origin + "/ingest"))
        assert.doesNotMatch(JSON.stringify(logs), /secret-in-query|m-1/)
    } finally {
        await w.close()
    }
})

test("webhook: always 500: `attempts` attempts with doubling, bounded delays, then SinkUnavailable", async () => {
    const w = await webhook((_q, res) => res.writeHead(500).end())
    try {
        const sink = webhookSink({ ...fast, attempts: 4, backoffMs: 50, maxBackoffMs: 120, url: w.url })
        await assert.rejects(sink([msg(1)]), SinkUnavailable)
        assert.equal(w.got.length, 4)
        const gaps = w.got.slice(1).map((g, i) => g.at - w.got[i]!.at)
        // 50, 100, then capped at 120 (timers fire late, never early)
        assert.ok(gaps[0]! >= 45 && gaps[1]! >= 95 && gaps[2]! >= 115, `gaps ${gaps}`)
        assert.ok(gaps[2]! < 400, `capped: ${gaps}`)
    } finally {
        await w.close()
    }
})

test("webhook: a redirect is not followed, a 4xx is not taken", async () => {
    let redirected = 0
    const target = await webhook((_q, res) => {
        redirected++
        res.writeHead(200).end()
    })
    const w = await webhook((_q, res, n) =>
        n === 1 ? res.writeHead(307, { location: target.url }).end() : res.writeHead(400).end("bad request")
    )
    try {
        const sink = webhookSink({ ...fast, attempts: 2, url: w.url })
        await assert.rejects(sink([msg(1)]), (e: Error) => e instanceof SinkUnavailable && /HTTP 400/.test(e.message))
        assert.equal(w.got.length, 2)
        assert.equal(redirected, 0, "the 307 was not followed")
    } finally {
        await w.close()
        await target.close()
    }
})

test("webhook: a socket that never answers times out per attempt; a body that never ends does not hold a 200", async () => {
    const hung = await webhook(() => {}) // reads the request, never answers
    const endless = await webhook((_q, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" })
        // a huge body, slowly: the status line is all that counts
        const chunk = Buffer.alloc(64 * 1024, 7)
        const t = setInterval(() => res.write(chunk), 5)
        res.on("close", () => clearInterval(t))
    })
    try {
        const t0 = Date.now()
        await assert.rejects(webhookSink({ ...fast, attempts: 2, timeoutMs: 200, url: hung.url })([msg(1)]), /timeout/)
        const ms = Date.now() - t0
        assert.ok(ms >= 400 && ms < 2000, `two attempts of 200 ms and one backoff took ${ms} ms`)
        assert.equal(hung.got.length, 2)
        const t1 = Date.now()
        await webhookSink({ ...fast, url: endless.url })([msg(1)])
        assert.ok(Date.now() - t1 < 1000)
    } finally {
        await hung.close()
        await endless.close()
    }
})

test("webhook: nothing listening is a refused batch, not an exception of another kind", async () => {
    const w = await webhook((_q, res) => res.end())
    const url = w.url
    await w.close()
    await assert.rejects(
        webhookSink({ ...fast, attempts: 2, url })([msg(1)]),
        (e: Error) => e instanceof SinkUnavailable && /ECONNREFUSED/.test(e.message)
    )
})

test("JSON lines: one line per message, the text only when printable; a file sink appends them (mode 0600)", async () => {
    const out: string[] = []
    await jsonLinesSink(l => void out.push(l))([msg(1), msg(2, Buffer.from([0x1b, 0x5b]))])
    const lines = out
        .join("\n")
        .split("\n")
        .map(l => JSON.parse(l) as Record<string, unknown>)
    assert.equal(lines.length, 2)
    assert.equal(lines[0]!["event"], "publish")
    assert.equal(lines[0]!["text"], "m-1")
    assert.equal(lines[0]!["stream"], 77)
    assert.equal(lines[1]!["text"], undefined, "an escape sequence is not printable")
    assert.equal(printable(Buffer.from("héllo\n\tok")), "héllo\n\tok")
    assert.equal(printable(Buffer.from([0xc3])), undefined, "not UTF-8")
    const dir = mkdtempSync(join(tmpdir(), "tether-sink-"))
    try {
        const f = join(dir, "p.jsonl")
        await fileSink(f)([msg(1)])
        await fileSink(f)([msg(2)])
        const ids = readFileSync(f, "utf8")
            .trim()
            .split("\n")
            .map(l => (JSON.parse(l) as { id: number }).id)
        assert.deepEqual(ids, [1, 2])
        assert.equal(statSync(f).mode & 0o777, 0o600)
        await assert.rejects(fileSink(join(dir, "no", "such", "dir"))([msg(1)]), SinkUnavailable)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("composeSinks: taken when every sink took it; one refusal refuses the batch", async () => {
    const a: number[] = []
    const b: number[] = []
    let bDown = true
    const sa: Sink = async batch => void a.push(...batch.map(m => m.id))
    const sb: Sink = async batch => {
        if (bDown) throw new SinkUnavailable("b is down")
        b.push(...batch.map(m => m.id))
    }
    assert.equal(composeSinks([]), undefined)
    assert.equal(composeSinks([undefined, sa]), sa)
    const both = composeSinks([sa, undefined, sb])!
    await assert.rejects(both([msg(1)]), /b is down/)
    bDown = false
    await both([msg(1)])
    assert.deepEqual(a, [1, 1], "a saw it twice: the resend, same ids")
    assert.deepEqual(b, [1])
    await assert.rejects(composeSinks([sa, async () => Promise.reject(new TypeError("x"))])!([msg(2)]), SinkUnavailable)
})

test('config: the "sinks" section and serve\'s flags', () => {
    const c = parseConfig({ sinks: { stdout: true, webhook: { url: "http://127.0.0.1:9/x", attempts: 2 } } })
    assert.deepEqual(c.sinks, {
        stdout: true,
        webhook: { url: "http://127.0.0.1:9/x", timeoutMs: 5000, attempts: 2, backoffMs: 250, maxBackoffMs: 4000 },
    })
    assert.throws(
        () => parseConfig({ sinks: { stdot: true } }),
        (e: Error) => e instanceof ConfigError && /unknown key stdot/.test(e.message)
    )
    assert.throws(() => parseSinksConfig({ webhook: { url: "ftp://x/" } }), SinksConfigError)
    assert.throws(() => parseSinksConfig({ webhook: { url: "http://u:p@x/" } }), /credentials/)
    assert.throws(() => parseSinksConfig({ webhook: { url: "http://x/", backoffMs: 500, maxBackoffMs: 100 } }), /maxBackoffMs/)
    const opts = { cwd: "/", out: () => {}, log: () => {} }
    assert.equal(startSinks(undefined, {}, opts).length, 0)
    assert.equal(startSinks(undefined, { stdout: true, file: "/tmp/x.jsonl", webhook: "https://example.org/h" }, opts).length, 3)
    assert.equal(startSinks(c.sinks, {}, opts).length, 2)
    assert.throws(() => startSinks(undefined, { webhook: "nope" }, opts), SinksConfigError)
    assert.throws(
        () => startSinks({ stdout: false, webhook: { ...c.sinks!.webhook!, authorizationFile: "/nonexistent/tok" } }, {}, opts),
        /authorizationFile \/nonexistent\/tok: ENOENT/
    )
})

test("through the app: a webhook that is down holds the device's messages; back up, it has every one, in order", async () => {
    let down = true
    const w = await webhook((_q, res) => res.writeHead(down ? 503 : 200).end())
    const registry = new MemoryRegistry()
    const identity = generateKeyPair()
    const ticketKeys = TicketKeySet.create(Math.floor(Date.now() / 1000))
    const logs: LogLine[] = []
    const g = await startAppGateway({
        port: 0,
        registry,
        state: { identity, ticketKeys },
        log: l => logs.push(l),
        app: {
            receiving: new MemoryAppStateStore(),
            outbox: new MemoryOutbox(),
            config: parseConfig({}),
            sink: composeSinks([webhookSink({ ...fast, attempts: 2, url: w.url })]),
        },
    })
    try {
        const p = await pairDevice({ registry, ticketKeys, name: "dev", now: Math.floor(Date.now() / 1000) })
        const store = new MemoryTicketStore(p.ticket)
        const device = () =>
            new AppClient(
                new TetherClient({
                    pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: identity.publicKey },
                    store,
                    host: "127.0.0.1",
                    port: g.gateway.port,
                    timeoutMs: 5000,
                })
            )
        const first = device()
        const conn = await first.connect()
        for (let i = 1; i <= 5; i++) first.publish("temp", Buffer.from(`v-${i}`))
        first.flush()
        await first.ended()
        assert.equal(conn.closeCode, Code.BUSY, "the webhook refused: CLOSE(BUSY)")
        assert.equal(first.app.send.unacked, 5, "nothing acknowledged")
        assert.ok(logs.some(l => l["outcome"] === "sink-unavailable"))

        down = false
        const second = new AppClient(
            new TetherClient({
                pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: identity.publicKey },
                store,
                host: "127.0.0.1",
                port: g.gateway.port,
                timeoutMs: 5000,
            }),
            first.app // the same device: its queue is still there
        )
        await second.connect()
        await second.settled()
        assert.equal(second.app.send.unacked, 0)
        const taken = w.got.slice(-1)[0]!.body.messages
        assert.deepEqual(
            taken.map(m => m["text"]),
            ["v-1", "v-2", "v-3", "v-4", "v-5"]
        )
        // every attempt the webhook saw is one of those messages under the same (stream, id)
        const key = new Map<string, unknown>()
        for (const r of w.got)
            for (const m of r.body.messages) {
                const k = `${m["stream"]}:${m["id"]}`
                if (key.has(k)) assert.equal(key.get(k), m["text"])
                key.set(k, m["text"])
            }
        assert.equal(key.size, 5)
        await second.close()
    } finally {
        await g.close()
        await w.close()
    }
})
