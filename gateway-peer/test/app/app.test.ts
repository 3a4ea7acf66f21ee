// The application layer (PROTOCOL.md 12): codec, streams, the funnel to a local HTTP upstream,
// gateway -> device messages, exactly once across dropped connections and gateway restarts.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { createServer, type Server } from "node:http"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as A from "../../src/app/codec.js"
import { AppKind, AppError, decodeApp, encodeApp, AppProtocolError } from "../../src/app/codec.js"
import { ReceiveStream, SendStream } from "../../src/app/stream.js"
import { GatewayApp, type AppLink } from "../../src/app/gateway-app.js"
import { MemoryAppStateStore, MemoryOutbox } from "../../src/store/memory-app.js"
import type { AppStateStore, Outbox } from "../../src/store/types.js"
import { parseConfig, ConfigError } from "../../src/app/upstream.js"
import { AppClient, DeviceApp } from "../../peer/device-app.js"
import { SqliteRegistry } from "../../src/registry/sqlite.js"
import { Code, MAX_RECORD_CONTENT } from "../../src/wire.js"
import { type AppFixture, appFixture, FakeLink, memoryStores, sqliteStores, until } from "./app-helpers.js"

const cleanup: (() => Promise<void> | void)[] = []
after(async () => {
    for (const c of cleanup.reverse()) await c()
})

async function fx(opts: Parameters<typeof appFixture>[0] = {}): Promise<AppFixture> {
    const f = await appFixture(opts)
    cleanup.push(() => f.close())
    return f
}

// ---- a local upstream --------------------------------------------------------------------

interface Upstream {
    url: string
    seen: { path: string; method: string; device: string | undefined; body: string }[]
}

async function upstream(): Promise<Upstream> {
    const seen: Upstream["seen"] = []
    const server: Server = createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on("data", c => chunks.push(c))
        req.on("end", () => {
            const body = Buffer.concat(chunks).toString()
            seen.push({ path: req.url ?? "", method: req.method ?? "", device: req.headers["x-tether-device"] as string | undefined, body })
            if (req.url === "/echo") {
                res.writeHead(201, { "content-type": "text/plain" })
                res.end(`echo:${body}`)
            } else if (req.url === "/slow") {
                setTimeout(() => res.end("late"), 2000).unref()
            } else if (req.url === "/big") {
                res.end(Buffer.alloc(5000, 0x61))
            } else if (req.url === "/big-chunked") {
                res.write(Buffer.alloc(600, 0x62))
                res.write(Buffer.alloc(600, 0x62))
                res.end()
            } else if (req.url === "/exact") {
                res.end(Buffer.alloc(A.MAX_RESPONSE_PAYLOAD, 0x63))
            } else {
                res.writeHead(404)
                res.end()
            }
        })
    })
    await new Promise<void>(r => server.listen(0, "127.0.0.1", r))
    const addr = server.address()
    const port = typeof addr === "object" && addr !== null ? addr.port : 0
    cleanup.push(() => {
        server.closeAllConnections()
        return new Promise<void>(r => server.close(() => r()))
    })
    return { url: `http://127.0.0.1:${port}`, seen }
}

// ---- codec ---------------------------------------------------------------------------------

test("codec: sizes follow PROTOCOL.md 12", () => {
    assert.equal(A.APP_HEADER_LEN, 7)
    assert.equal(A.MAX_RESPONSE_PAYLOAD, 993)
    assert.equal(A.STREAM_BODY_LEN, 12)
    assert.equal(A.MAX_APP_BODY, MAX_RECORD_CONTENT - 7)
})

test("codec: every kind round-trips; several messages per DATA", () => {
    const dev: A.AppMessage[] = [
        { kind: AppKind.STREAM, streamId: 0xdeadbeef, peerStreamId: 0, delivered: 7 },
        { kind: AppKind.PUBLISH, id: 1, topic: "t/é", payload: Buffer.from("hello") },
        { kind: AppKind.REQUEST, id: 2, route: "weather", payload: Buffer.alloc(0) },
        { kind: AppKind.ACK, id: 9 },
    ]
    const content = Buffer.concat(dev.map(encodeApp))
    assert.deepEqual(decodeApp(content, "device"), dev)
    const gw: A.AppMessage[] = [
        { kind: AppKind.RESPONSE, id: 1, requestId: 2, status: 200, payload: Buffer.from("ok") },
        { kind: AppKind.RESPONSE, id: 2, requestId: 3, status: 0, payload: Buffer.from([AppError.ROUTE_REFUSED]) },
        { kind: AppKind.MESSAGE, id: 3, topic: "cmd", payload: Buffer.from([1, 2, 3]) },
    ]
    assert.deepEqual(decodeApp(Buffer.concat(gw.map(encodeApp)), "gateway"), gw)
    // the header layout: kind || id || length || body
    assert.equal(encodeApp({ kind: AppKind.ACK, id: 258 }).toString("hex"), "05" + "00000102" + "0000")
})

test("codec: decoding checks lengths, kinds and directions first", () => {
    const pub = encodeApp({ kind: AppKind.PUBLISH, id: 1, topic: "t", payload: Buffer.from("x") })
    const bad: [string, Buffer, A.Direction][] = [
        ["empty", Buffer.alloc(0), "device"],
        ["truncated header", pub.subarray(0, 6), "device"],
        ["truncated body", pub.subarray(0, pub.length - 1), "device"],
        ["trailing byte", Buffer.concat([pub, Buffer.from([1])]), "device"],
        ["unknown kind", Buffer.from("09000000010000", "hex"), "device"],
        ["PUBLISH from the gateway", pub, "gateway"],
        ["MESSAGE from the device", encodeApp({ kind: AppKind.MESSAGE, id: 1, topic: "t", payload: Buffer.alloc(0) }), "device"],
        ["id 0", Buffer.from("01000000000002" + "0174", "hex"), "device"],
        ["topic longer than the body", Buffer.from("01000000010002" + "0574", "hex"), "device"],
        ["empty topic", Buffer.from("01000000010001" + "00", "hex"), "device"],
        ["topic not UTF-8", Buffer.from("01000000010002" + "01ff", "hex"), "device"],
        ["STREAM short", Buffer.from("06000000000004" + "00000001", "hex"), "device"],
        ["STREAM with an id", Buffer.concat([Buffer.from("0600000001000c", "hex"), Buffer.alloc(12)]), "device"],
        ["ACK with a body", Buffer.from("05000000010001" + "00", "hex"), "device"],
        ["RESPONSE status 42", Buffer.from("03000000010006" + "00000001" + "002a", "hex"), "gateway"],
    ]
    for (const [what, content, from] of bad) assert.throws(() => decodeApp(content, from), AppProtocolError, what)
    assert.throws(() => encodeApp({ kind: AppKind.PUBLISH, id: 1, topic: "x".repeat(256), payload: Buffer.alloc(0) }), RangeError)
    assert.throws(() => encodeApp({ kind: AppKind.PUBLISH, id: 1, topic: "t", payload: Buffer.alloc(A.MAX_APP_BODY) }), RangeError)
})

// ---- streams -------------------------------------------------------------------------------

test("streams: the receiver delivers id + 1, drops duplicates, refuses gaps; STREAM restarts", () => {
    const r = new ReceiveStream()
    assert.throws(() => r.arrive(1), AppProtocolError, "before STREAM")
    assert.equal(r.peerStream(77), true)
    assert.equal(r.arrive(1), "deliver")
    assert.equal(r.arrive(2), "deliver")
    assert.equal(r.arrive(2), "duplicate")
    assert.equal(r.arrive(1), "duplicate")
    assert.equal(r.peerStream(77), false)
    assert.deepEqual(r.state, { streamId: 77, delivered: 2 })
    assert.equal(r.peerStream(78), true, "a new stream starts over at 0")
    assert.deepEqual(r.state, { streamId: 78, delivered: 0 })
})

test("streams: a gap means the receiver lost its state: it forgets the stream; a gap again before any delivery is an error", () => {
    const r = new ReceiveStream()
    r.peerStream(77)
    assert.equal(r.arrive(1), "deliver")
    assert.equal(r.arrive(4), "lost")
    assert.deepEqual(r.state, { streamId: 0, delivered: 0 }, "STREAM now reports peer_stream_id 0")
    assert.equal(r.arrive(5), "ignore", "the rest of that stream, until its next STREAM")
    r.sessionEnd()
    r.peerStream(78)
    assert.throws(() => r.arrive(2), AppProtocolError, "the new stream must start at 1")
    const q = new ReceiveStream()
    q.peerStream(79)
    assert.equal(q.arrive(3), "lost")
    q.peerStream(80)
    assert.equal(q.arrive(1), "deliver")
    assert.equal(q.arrive(3), "lost", "after a delivery, a later loss is a loss again")
})

test("streams: a STREAM not naming the current stream restarts it, renumbered from 1", () => {
    const s = new SendStream({ streamId: 5 })
    s.sessionStart(false)
    for (const x of "abcd") s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.from(x) })
    assert.equal(s.peerStream(5, 0), false)
    assert.deepEqual(
        s.take().map(m => m.id),
        [1, 2, 3, 4]
    )
    s.ack(2)
    s.sessionEnd()
    s.sessionStart(false)
    assert.equal(s.peerStream(0, 0), true, "the receiver restarted")
    assert.notEqual(s.streamId, 5)
    assert.notEqual(s.streamId, 0)
    assert.deepEqual(
        s.take().map(m => [m.id, m.kind === AppKind.MESSAGE ? m.payload.toString() : ""]),
        [
            [1, "c"],
            [2, "d"],
        ]
    )
    assert.equal(s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.from("e") }).id, 3)
    assert.deepEqual(
        s.take().map(m => m.id),
        [3]
    )
    // RESPONSEs of a gone device stream are dropped; the ids stay consecutive
    s.enqueue({ kind: AppKind.RESPONSE, requestId: 9, status: 200, payload: Buffer.alloc(0) })
    s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.from("f") })
    const before = s.streamId
    assert.equal(
        s.drop(m => m.kind === AppKind.RESPONSE),
        1
    )
    assert.notEqual(s.streamId, before)
    assert.deepEqual(
        s.pending().map(m => m.id),
        [1, 2, 3, 4]
    )
})

test("streams: the sender keeps until ACK, sends once per session, resends after STREAM", () => {
    const s = new SendStream({ streamId: 5 })
    s.sessionStart(false)
    s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.from("1") })
    assert.deepEqual(s.take(), [], "waits for the peer's STREAM")
    s.peerStream(5, 0)
    s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.from("2") })
    assert.deepEqual(
        s.take().map(m => m.id),
        [1, 2]
    )
    assert.deepEqual(s.take(), [], "once per session")
    s.ack(1)
    assert.throws(() => s.ack(3), AppProtocolError, "an ACK of a message never sent")
    s.sessionEnd()
    s.sessionStart(false)
    s.peerStream(5, 0)
    assert.deepEqual(
        s.take().map(m => m.id),
        [2],
        "unacknowledged: resent"
    )
    s.sessionStart(false)
    s.peerStream(5, 2)
    assert.deepEqual(s.take(), [], "the peer's delivered counts as an ACK of its stream")
    assert.equal(s.unacked, 0)
})

// ---- config --------------------------------------------------------------------------------

test("config: routes are validated; typos are errors", () => {
    const c = parseConfig({ routes: { w: { url: "http://127.0.0.1:1/w", devices: ["*"] } } })
    assert.deepEqual(c.routes.get("w"), {
        url: "http://127.0.0.1:1/w",
        method: "POST",
        timeoutMs: 5000,
        maxResponseBytes: 993,
        devices: ["*"],
    })
    for (const bad of [
        { routs: {} },
        { routes: { w: { url: "ftp://x/", devices: ["*"] } } },
        { routes: { w: { url: "http://x/", devices: "*" } } },
        { routes: { w: { url: "http://x/", devices: ["*"], maxResponseBytes: 994 } } },
        { routes: { w: { url: "http://x/", devices: ["*"], timeout: 5 } } },
        { routes: { w: { url: "http://x/", devices: ["*"], method: "TRACE" } } },
    ])
        assert.throws(() => parseConfig(bad), ConfigError, JSON.stringify(bad))
})

// found by the fuzzer (gateway-peer/fuzz/corpus/config/crashes/)
test("config: a url or method that is not a string is a ConfigError, not a TypeError", () => {
    for (const bad of [
        { routes: { a: { url: "http://a/", method: { toString: "x" }, devices: ["*"] } } },
        { routes: { a: { url: { toString: "x" }, devices: ["*"] } } },
        { routes: { a: { url: 42, devices: ["*"] } } },
        { routes: { a: { url: "http://a/", method: ["GET"], devices: ["*"] } } },
    ])
        assert.throws(() => parseConfig(bad), ConfigError, JSON.stringify(bad))
})

test("config: timeoutMs at most 2^31 - 1 ms, which a timer can wait (a larger one fired at once)", () => {
    const route = (timeoutMs: number) => ({ routes: { a: { url: "http://a/", timeoutMs, devices: ["*"] } } })
    assert.equal(parseConfig(route(2 ** 31 - 1)).routes.get("a")?.timeoutMs, 2 ** 31 - 1)
    for (const t of [2 ** 31, 10_000_000_000, Number.MAX_SAFE_INTEGER]) assert.throws(() => parseConfig(route(t)), ConfigError, String(t))
})

// ---- end to end over loopback ----------------------------------------------------------------

test("publish: delivered to the event API and the log, in order, payloads never logged", async () => {
    const f = await fx()
    const p = await f.pair("sensor-1")
    const got: string[] = []
    f.g.app.events.on("publish", e => got.push(`${e.device}:${e.id}:${e.topic}:${e.payload.toString()}`))
    const d = f.device(p)
    d.app.publish("boot", Buffer.from("early-secret-payload")) // rides as 0-RTT early data
    const conn = await d.connect()
    assert.equal(conn.resumed, true, "first connection resumes with the out-of-band ticket")
    for (let i = 0; i < 20; i++) d.publish("temp", Buffer.from(`t${i}`))
    await d.settled()
    assert.equal(got.length, 21)
    assert.equal(got[0], "sensor-1:1:boot:early-secret-payload")
    assert.deepEqual(
        got.slice(1),
        Array.from({ length: 20 }, (_, i) => `sensor-1:${i + 2}:temp:t${i}`)
    )
    const text = JSON.stringify(f.logs)
    assert.ok(f.logs.some(l => l.event === "app" && l.outcome === "publish" && l.device === "sensor-1"))
    assert.ok(!text.includes("early-secret-payload") && !text.includes("t19"), "no payloads in logs")
    await d.close()
})

test("request: an allowed route reaches the upstream; status and body come back", async () => {
    const up = await upstream()
    const f = await fx({
        config: {
            routes: {
                echo: { url: `${up.url}/echo`, devices: ["dev-a"] },
                notfound: { url: `${up.url}/nope`, method: "GET", devices: ["*"] },
            },
        },
    })
    const d = f.device(await f.pair("dev-a"))
    await d.connect()
    const r = await d.request("echo", Buffer.from("ping"))
    assert.equal(r.status, 201)
    assert.equal(r.payload.toString(), "echo:ping")
    assert.deepEqual(up.seen[0], { path: "/echo", method: "POST", device: "dev-a", body: "ping" })
    const nf = await d.request("notfound", Buffer.from("ignored"))
    assert.equal(nf.status, 404)
    assert.equal(up.seen[1]?.body, "", "GET carries no body")
    assert.ok(f.logs.some(l => l.outcome === "request" && l.route === "echo" && l.status === 201))
    await d.close()
})

test("request: a route not on the device's allow-list is refused (ROUTE_REFUSED) and logged", async () => {
    const up = await upstream()
    const f = await fx({ config: { routes: { echo: { url: `${up.url}/echo`, devices: ["someone-else"] } } } })
    const d = f.device(await f.pair("dev-b"))
    await d.connect()
    for (const route of ["echo", "http://evil.example/", "unknown"]) {
        const r = await d.request(route, Buffer.from("x"))
        assert.equal(r.status, 0)
        assert.deepEqual(r.payload, Buffer.from([AppError.ROUTE_REFUSED]))
    }
    assert.equal(up.seen.length, 0, "nothing reached the upstream")
    assert.equal(f.logs.filter(l => l.outcome === "route-refused" && l.device === "dev-b").length, 3)
    await d.close()
})

test("request: upstream timeout, oversized responses, connection refused", async () => {
    const up = await upstream()
    const f = await fx({
        config: {
            routes: {
                slow: { url: `${up.url}/slow`, timeoutMs: 200, devices: ["*"] },
                big: { url: `${up.url}/big`, devices: ["*"] },
                chunked: { url: `${up.url}/big-chunked`, devices: ["*"] },
                small: { url: `${up.url}/echo`, maxResponseBytes: 4, devices: ["*"] },
                exact: { url: `${up.url}/exact`, devices: ["*"] },
                down: { url: "http://127.0.0.1:1/", devices: ["*"] },
            },
        },
    })
    const d = f.device(await f.pair("dev-c"))
    await d.connect()
    const t0 = Date.now()
    const slow = await d.request("slow", Buffer.alloc(0))
    assert.deepEqual([slow.status, slow.payload], [0, Buffer.from([AppError.UPSTREAM_TIMEOUT])])
    assert.ok(Date.now() - t0 < 1500, "answered at the timeout, not when the upstream finished")
    for (const route of ["big", "chunked", "small"]) {
        const r = await d.request(route, Buffer.from("abcdef"))
        assert.deepEqual([r.status, r.payload], [0, Buffer.from([AppError.UPSTREAM_TOO_LARGE])], route)
    }
    const exact = await d.request("exact", Buffer.alloc(0))
    assert.equal(exact.status, 200)
    assert.equal(exact.payload.length, 993, "the largest RESPONSE payload fits")
    const down = await d.request("down", Buffer.alloc(0))
    assert.deepEqual([down.status, down.payload], [0, Buffer.from([AppError.UPSTREAM_FAILED])])
    await d.close()
})

test("request: more upstream calls in flight than the per-device cap are answered UPSTREAM_FAILED", async () => {
    const up = await upstream()
    const f = await fx({ config: { routes: { slow: { url: `${up.url}/slow`, timeoutMs: 300, devices: ["*"] } } } })
    const d = f.device(await f.pair("dev-i"))
    await d.connect()
    const answers = await Promise.all(Array.from({ length: 20 }, () => d.request("slow", Buffer.alloc(0))))
    const codes = answers.map(a => a.payload[0])
    assert.equal(codes.filter(c => c === AppError.UPSTREAM_TIMEOUT).length, 16)
    assert.equal(codes.filter(c => c === AppError.UPSTREAM_FAILED).length, 4)
    assert.equal(f.logs.filter(l => l.outcome === "too-many-requests").length, 4)
    await d.close()
})

test("sendMessage: delivered to the device, acknowledged; queued while it is offline", async () => {
    const f = await fx()
    const p = await f.pair("dev-d")
    const acked: number[] = []
    f.g.app.events.on("acked", e => acked.push(e.id))
    // queued before the device ever connected
    assert.equal(await f.g.app.sendMessage("dev-d", "cmd", Buffer.from("m1")), 1)
    const d = f.device(p)
    const got: string[] = []
    d.app.events.on("message", m => got.push(`${m.id}:${m.topic}:${m.payload.toString()}`))
    await d.connect()
    await f.g.app.sendMessage("dev-d", "cmd", Buffer.from("m2"))
    assert.ok(await until(() => got.length === 2))
    assert.deepEqual(got, ["1:cmd:m1", "2:cmd:m2"])
    assert.ok(await until(async () => (await f.g.app.queued(p.deviceId.toString("hex"))) === 0))
    assert.ok(acked.includes(2))
    await assert.rejects(f.g.app.sendMessage("nobody", "cmd", Buffer.alloc(0)), /no device/)
    await assert.rejects(f.g.app.sendMessage("dev-d", "cmd", Buffer.alloc(1000)), RangeError)
    await d.close()
})

/** A device twin whose radio loses what it is told to lose (for the exactly-once test). */
class LossyDeviceApp extends DeviceApp {
    /** "in": lose everything from the gateway; "out": process it but lose the ACKs back */
    lose: "none" | "in" | "out" = "none"
    override data(content: Buffer): Buffer[] {
        if (this.lose === "in") return []
        const out = super.data(content)
        return this.lose === "out" ? [] : out
    }
}

test("exactly once, in order, both directions, across dropped connections and lost ACKs", async () => {
    const f = await fx()
    const p = await f.pair("dev-e")
    const up: number[] = []
    f.g.app.events.on("publish", e => up.push(Number(e.payload.toString())))
    const app = new LossyDeviceApp()
    const down: number[] = []
    app.events.on("message", m => down.push(Number(m.payload.toString())))
    const d = f.device(p, app)
    let sentUp = 0
    let sentDown = 0
    for (let round = 0; round < 9; round++) {
        app.lose = "none"
        await d.connect()
        app.lose = (["none", "in", "out"] as const)[round % 3] ?? "none"
        for (let i = 0; i < 15; i++) {
            d.publish("n", Buffer.from(String(++sentUp)))
            await f.g.app.sendMessage("dev-e", "n", Buffer.from(String(++sentDown)))
        }
        // the gateway got everything, but (rounds 1, 4, 7) its ACKs and messages were lost, or
        // (rounds 2, 5, 8) the device's ACKs were; round 0 drops mid-flight
        if (round % 3 !== 0) await until(() => up.length === sentUp)
        await d.drop()
        // while offline both sides queue more
        d.app.publish("n", Buffer.from(String(++sentUp)))
        await f.g.app.sendMessage("dev-e", "n", Buffer.from(String(++sentDown)))
        await until(() => f.g.gateway.stats.sessions === 0)
    }
    app.lose = "none"
    await d.connect()
    await d.settled()
    assert.ok(await until(async () => down.length === sentDown && (await f.g.app.queued(p.deviceId.toString("hex"))) === 0))
    assert.deepEqual(
        up,
        Array.from({ length: sentUp }, (_, i) => i + 1),
        "gateway delivered every PUBLISH once, in order"
    )
    assert.deepEqual(
        down,
        Array.from({ length: sentDown }, (_, i) => i + 1),
        "device delivered every MESSAGE once, in order"
    )
    await d.close()
})

test("a malformed application message closes the session with CLOSE(PROTOCOL_ERROR)", async () => {
    const f = await fx()
    const d = f.device(await f.pair("dev-f"))
    const conn = await d.connect()
    conn.send(Buffer.from("05000000ff0000", "hex")) // ACK of a message the gateway never sent
    await d.ended()
    assert.equal(conn.closeCode, Code.PROTOCOL_ERROR)
    assert.ok(f.logs.some(l => l.event === "app" && l.outcome === "protocol-error" && l.device === "dev-f"))
})

// ---- persistence of the receiving state ------------------------------------------------------

interface Stores {
    receiving: AppStateStore
    outbox: Outbox
    close(): Promise<void>
}

async function replayAfterRestart(store: () => Stores): Promise<void> {
    const device = { id: "0011223344556677", name: "dev-g" }
    const mk = (s: Stores) =>
        new GatewayApp({ receiving: s.receiving, outbox: s.outbox, config: parseConfig({}), lookup: async () => device })
    const stream = encodeApp({ kind: AppKind.STREAM, streamId: 4242, peerStreamId: 0, delivered: 0 })
    const pub = (id: number) => encodeApp({ kind: AppKind.PUBLISH, id, topic: "t", payload: Buffer.from(`p${id}`) })

    const s1 = store()
    const app1 = mk(s1)
    const got1: number[] = []
    app1.events.on("publish", e => got1.push(e.id))
    app1.data(device, Buffer.concat([stream, pub(1), pub(2)]), new FakeLink())
    await app1.idle()
    assert.deepEqual(got1, [1, 2])
    await s1.close()

    // the gateway restarts; the device never saw the ACK and resends 1, 2, then sends 3
    const s2 = store()
    const app2 = mk(s2)
    const got2: number[] = []
    app2.events.on("publish", e => got2.push(e.id))
    const link = new FakeLink()
    app2.data(device, Buffer.concat([stream, pub(1), pub(2), pub(3)]), link)
    await app2.idle()
    assert.deepEqual(got2, [3], "nothing redelivered after the restart")
    const first = link.sent[0]
    assert.ok(
        first?.kind === AppKind.STREAM && first.peerStreamId === 4242 && first.delivered === 3,
        "the gateway's STREAM reports what it had and what came in the same record (PROTOCOL.md 12.1)"
    )
    assert.deepEqual(
        link.sent.filter(m => m.kind === AppKind.ACK).map(m => m.id),
        [3]
    )
    await s2.close()
}

test("the gateway's STREAM goes before a RESPONSE sent at once (a refused route) and counts the record it answers", async () => {
    const device = { id: "0011223344556688", name: "dev-o" }
    const app = new GatewayApp({ ...memoryStores(), config: parseConfig({}), lookup: async () => device })
    const link = new FakeLink()
    const stream = encodeApp({ kind: AppKind.STREAM, streamId: 99, peerStreamId: 0, delivered: 0 })
    const req = encodeApp({ kind: AppKind.REQUEST, id: 1, route: "nowhere", payload: Buffer.alloc(0) })
    app.data(device, Buffer.concat([stream, req]), link)
    await app.idle()
    const kinds = link.sent.map(m => m.kind)
    assert.equal(kinds[0], AppKind.STREAM, "the STREAM is the gateway's first application message (PROTOCOL.md 12.1)")
    const first = link.sent[0]
    assert.ok(
        first?.kind === AppKind.STREAM && first.peerStreamId === 99 && first.delivered === 1,
        "it counts the REQUEST of the same record"
    )
    const r = link.sent.find(m => m.kind === AppKind.RESPONSE)
    assert.ok(r?.kind === AppKind.RESPONSE && r.requestId === 1 && r.payload[0] === AppError.ROUTE_REFUSED)
    assert.ok(kinds.indexOf(AppKind.RESPONSE) > 0)
})

test("receiving state survives a gateway restart (memory store)", async () => {
    const receiving = new MemoryAppStateStore()
    const outbox = new MemoryOutbox()
    await replayAfterRestart(() => ({ receiving, outbox, close: async () => {} }))
})

test("receiving state survives a gateway restart (SQLite, in the registry's file)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-app-"))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, "registry.db")
    await new SqliteRegistry(path, { create: true }).close()
    await replayAfterRestart(() => sqliteStores(path))
    // the registry still opens: the extra table does not make it foreign
    await new SqliteRegistry(path).close()
})

test("a bad message leaves the receiving state as it was (the good ones before it are redelivered)", async () => {
    const device = { id: "0011223344556688", name: "dev-h" }
    const app = new GatewayApp({ ...memoryStores(), config: parseConfig({}), lookup: async () => device })
    const got: number[] = []
    app.events.on("publish", e => got.push(e.id))
    const link = new FakeLink()
    const stream = encodeApp({ kind: AppKind.STREAM, streamId: 9, peerStreamId: 0, delivered: 0 })
    const pub = (id: number) => encodeApp({ kind: AppKind.PUBLISH, id, topic: "t", payload: Buffer.alloc(0) })
    app.data(device, Buffer.concat([stream, pub(1), encodeApp({ kind: AppKind.ACK, id: 99 })]), link)
    await app.idle()
    assert.deepEqual(link.closed, [Code.PROTOCOL_ERROR])
    assert.deepEqual(got, [])
    app.data(device, Buffer.concat([stream, pub(1), pub(2)]), new FakeLink()) // the next session
    await app.idle()
    assert.deepEqual(got, [1, 2])
})

// ---- a receiver that restarts (PROTOCOL.md 12.1) ----------------------------------------------

test("the device restarts mid-stream: what it acknowledged stays delivered once, the rest arrives renumbered", async () => {
    const f = await fx()
    const p = await f.pair("dev-r")
    const devId = p.deviceId.toString("hex")
    const up: string[] = []
    f.g.app.events.on("publish", e => up.push(e.payload.toString()))
    // boot 1: messages 1..5 delivered and acknowledged; 6 delivered but its ACK lost; 7..10 lost
    const boot1 = new LossyDeviceApp()
    const got1: string[] = []
    boot1.events.on("message", m => got1.push(m.payload.toString()))
    const d1 = f.device(p, boot1)
    await d1.connect()
    for (let i = 1; i <= 5; i++) await f.g.app.sendMessage("dev-r", "n", Buffer.from(`g${i}`))
    assert.ok(await until(async () => (await f.g.app.queued(devId)) === 0))
    boot1.lose = "out"
    await f.g.app.sendMessage("dev-r", "n", Buffer.from("g6"))
    assert.ok(await until(() => got1.length === 6))
    boot1.lose = "in"
    for (let i = 7; i <= 10; i++) await f.g.app.sendMessage("dev-r", "n", Buffer.from(`g${i}`))
    d1.publish("n", Buffer.from("d1"))
    assert.ok(await until(() => up.length === 1))
    await d1.drop()
    await until(() => f.g.gateway.stats.sessions === 0)
    assert.equal(await f.g.app.queued(devId), 5, "6..10 unacknowledged")

    // boot 2: a fresh application state (RAM lost), the same ticket store
    const boot2 = new DeviceApp()
    const got2: { id: number; text: string }[] = []
    boot2.events.on("message", m => got2.push({ id: m.id, text: m.payload.toString() }))
    const d2 = new AppClient(d1.client, boot2)
    await d2.connect()
    d2.publish("n", Buffer.from("d2"))
    assert.ok(await until(async () => got2.length === 5 && (await f.g.app.queued(devId)) === 0))
    assert.deepEqual(got1, ["g1", "g2", "g3", "g4", "g5", "g6"])
    // acknowledged 1..5 never again; 6 (delivered, ACK lost before the restart) again; 7..10 once
    assert.deepEqual(
        got2.map(m => m.text),
        ["g6", "g7", "g8", "g9", "g10"]
    )
    assert.deepEqual(
        got2.map(m => m.id),
        [1, 2, 3, 4, 5],
        "a new stream, renumbered from 1"
    )
    await d2.settled()
    assert.deepEqual(up, ["d1", "d2"])
    // and the gateway's messages keep flowing on the new stream
    assert.equal(await f.g.app.sendMessage("dev-r", "n", Buffer.from("g11")), 6)
    assert.ok(await until(() => got2.length === 6))
    assert.ok(f.logs.some(l => l.event === "app" && l.outcome === "stream-restarted" && l.device === "dev-r"))
    await d2.close()
})

/** Carries one session between a GatewayApp and a DeviceApp twin, in memory. */
class Pipe implements AppLink {
    toDevice: Buffer[] = []
    closed: number[] = []
    send(content: Buffer): void {
        this.toDevice.push(content)
    }
    close(code: number): void {
        this.closed.push(code)
    }
    /** Runs `first` (device -> gateway) and every answer back and forth until quiet. */
    async run(g: GatewayApp, device: { id: string; name: string }, dev: DeviceApp, first: Buffer[]): Promise<void> {
        let up = first
        for (let i = 0; i < 20; i++) {
            for (const c of up) g.data(device, c, this)
            await g.idle()
            const down = this.toDevice.splice(0)
            up = down.flatMap(c => dev.data(c))
            if (up.length === 0) return
        }
        throw new Error("Pipe: no quiet after 20 rounds")
    }
}

test("the gateway lost its receiving state: the device's stream restarts, nothing it acknowledged is lost", async () => {
    const device = { id: "00112233445566aa", name: "dev-l" }
    const mk = (receiving: AppStateStore) =>
        new GatewayApp({ receiving, outbox: new MemoryOutbox(), config: parseConfig({}), lookup: async () => device })
    const g1 = mk(new MemoryAppStateStore())
    const got: string[] = []
    g1.events.on("publish", e => got.push(e.payload.toString()))
    const dev = new DeviceApp()
    for (let i = 1; i <= 3; i++) dev.publish("t", Buffer.from(`p${i}`))
    const firstStream = dev.send.streamId
    await new Pipe().run(g1, device, dev, dev.sessionStart())
    assert.deepEqual(got, ["p1", "p2", "p3"])
    assert.equal(dev.send.unacked, 0)
    dev.sessionEnd()
    // 4 and 5 are queued while offline; the gateway comes back with an empty store
    dev.publish("t", Buffer.from("p4"))
    dev.publish("t", Buffer.from("p5"))
    const g2 = mk(new MemoryAppStateStore())
    g2.events.on("publish", e => got.push(`${e.id}:${e.payload.toString()}`))
    const pipe = new Pipe()
    await pipe.run(g2, device, dev, dev.sessionStart()) // STREAM and 4, 5 as early data: a gap
    assert.deepEqual(pipe.closed, [], "not a protocol error")
    assert.notEqual(dev.send.streamId, firstStream, "the device started a new stream")
    assert.deepEqual(got.slice(3), ["1:p4", "2:p5"], "4 and 5 once, renumbered")
    assert.equal(dev.send.unacked, 0)
})
