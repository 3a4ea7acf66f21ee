// The gateway's sending queue under a device that never acknowledges (PROTOCOL.md 12.2): the
// queue is bounded for every kind (a RESPONSE past maxQueue closes the session with
// PROTOCOL_ERROR), and the log lines a device causes per message are rate-limited.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { AppError, AppKind, encodeApp } from "../../src/app/codec.js"
import { GatewayApp } from "../../src/app/gateway-app.js"
import { LogLimiter } from "../../src/app/log-limit.js"
import { parseConfig } from "../../src/app/upstream.js"
import { StoreUnavailable, type Outbox } from "../../src/store/types.js"
import { Code } from "../../src/wire.js"
import { type AppFixture, appFixture, FakeLink, until, memoryStores } from "./app-helpers.js"

const cleanup: (() => Promise<void> | void)[] = []
after(async () => {
    for (const c of cleanup.reverse()) await c()
})

async function fx(opts: Parameters<typeof appFixture>[0] = {}): Promise<AppFixture> {
    const f = await appFixture(opts)
    cleanup.push(() => f.close())
    return f
}

test("a device that sends thousands of refused REQUESTs and never acknowledges is closed at the queue bound", async () => {
    const device = { id: "00ff00ff00ff00ff", name: "flooder" }
    const logs: Record<string, unknown>[] = []
    const app = new GatewayApp({
        ...memoryStores(),
        config: parseConfig({}),
        lookup: async () => device,
        log: l => logs.push(l),
        maxQueue: 100,
    })
    const link = new FakeLink()
    app.data(device, encodeApp({ kind: AppKind.STREAM, streamId: 5, peerStreamId: 0, delivered: 0 }), link)
    for (let id = 1; id <= 3000; id++)
        app.data(device, encodeApp({ kind: AppKind.REQUEST, id, route: "nowhere", payload: Buffer.alloc(0) }), link)
    await app.idle()
    assert.deepEqual(link.closed, [Code.PROTOCOL_ERROR], "closed once, with PROTOCOL_ERROR")
    assert.equal(await app.queued(device.id), 100, "the queue stopped at its bound")
    const responses = link.sent.filter(m => m.kind === AppKind.RESPONSE)
    assert.equal(responses.length, 100, "every queued RESPONSE was sent once, nothing past the bound")
    assert.ok(responses.every(r => r.kind === AppKind.RESPONSE && r.payload[0] === AppError.ROUTE_REFUSED))
    const refusedLines = logs.filter(l => l.outcome === "route-refused")
    assert.ok(refusedLines.length <= 12, `refusals are rate-limited (${refusedLines.length} lines)`)
    assert.ok(logs.some(l => l.outcome === "queue-overflow" && l.device === "flooder" && l.queued === 100))
    assert.ok(logs.length < 30, `${logs.length} log lines for 3000 records`)

    // the device comes back and acknowledges: it gets the queue, and is served again
    const link2 = new FakeLink()
    app.data(device, encodeApp({ kind: AppKind.STREAM, streamId: 5, peerStreamId: 0, delivered: 0 }), link2)
    await app.idle()
    const resent = link2.sent.filter(m => m.kind === AppKind.RESPONSE)
    assert.equal(resent.length, 100)
    const last = resent[resent.length - 1]?.id ?? 0
    app.data(device, encodeApp({ kind: AppKind.ACK, id: last }), link2)
    await app.idle()
    assert.equal(await app.queued(device.id), 0)
})

test("sendMessage and RESPONSEs share the bound: a queue full of MESSAGEs refuses more, and a RESPONSE past it closes", async () => {
    const device = { id: "00ee00ee00ee00ee", name: "busy" }
    const app = new GatewayApp({ ...memoryStores(), config: parseConfig({}), lookup: async () => device, maxQueue: 8 })
    for (let i = 0; i < 8; i++) await app.sendMessage("busy", "t", Buffer.from([i]))
    await assert.rejects(app.sendMessage("busy", "t", Buffer.alloc(0)), /queue is full/)
    const link = new FakeLink()
    app.data(
        device,
        Buffer.concat([
            encodeApp({ kind: AppKind.STREAM, streamId: 6, peerStreamId: 0, delivered: 0 }),
            encodeApp({ kind: AppKind.REQUEST, id: 1, route: "x", payload: Buffer.alloc(0) }),
        ]),
        link
    )
    await app.idle()
    assert.deepEqual(link.closed, [Code.PROTOCOL_ERROR])
    assert.equal(await app.queued(device.id), 8)
})

test("through the server: a device flooding refused REQUESTs without ACKs is cut off; another device is served meanwhile", async () => {
    const f = await fx({ quiet: true })
    const flooder = await f.pair("flooder-2")
    const other = await f.pair("other-2")
    const d = f.device(flooder)
    const conn = await d.client.connect(encodeApp({ kind: AppKind.STREAM, streamId: 77, peerStreamId: 0, delivered: 0 }))
    // reads what the gateway sends (so its CLOSE is seen) but never acknowledges
    const reading = (async () => {
        const end = Date.now() + 20000
        while (Date.now() < end && (await conn.recv(1000)) !== null) {}
    })()
    let sent = 0
    for (let id = 1; id <= 5000 && conn.isOpen(); id++) {
        conn.send(encodeApp({ kind: AppKind.REQUEST, id, route: "not-configured", payload: Buffer.alloc(8) }))
        sent = id
        if (id % 50 === 0) await new Promise(r => setImmediate(r))
    }
    await reading
    assert.equal(conn.closeCode, Code.PROTOCOL_ERROR)
    assert.ok(sent < 5000, `cut off after ${sent} records`)
    assert.ok((await f.g.app.queued(flooder.deviceId.toString("hex"))) <= 256, "the queue is bounded at its default")
    // the gateway is not stuck: another device resumes and publishes at once
    const o = f.device(other)
    const t0 = Date.now()
    const c = await o.connect()
    assert.equal(c.resumed, true)
    o.publish("hi", Buffer.from("x"))
    await o.settled()
    assert.ok(Date.now() - t0 < 5000)
    await o.close()
    assert.ok(await until(() => f.g.gateway.stats.sessions === 0))
})

test("LogLimiter: a burst, then one line per interval carrying how many were held back", () => {
    let now = 0
    const l = new LogLimiter({ burst: 3, intervalMs: 1000, now: () => now })
    assert.deepEqual([l.take(), l.take(), l.take(), l.take(), l.take()], [0, 0, 0, undefined, undefined])
    now += 999
    assert.equal(l.take(), undefined)
    now += 1
    assert.equal(l.take(), 3, "three held back since the last line")
    assert.equal(l.take(), undefined)
    now += 10_000
    assert.deepEqual([l.take(), l.take(), l.take(), l.take()], [1, 0, 0, undefined])
})

test("a burst of upstream answers is stored in a few outbox transactions, not one per RESPONSE, and sent in full", async () => {
    const device = { id: "00ff00ff00ff00fe", name: "burst" }
    const logs: unknown[] = []
    const stores = memoryStores()
    const calls: number[] = []
    const outbox = stores.outbox
    const counting: Outbox = {
        enqueue: async (...a) => (calls.push(1), outbox.enqueue(...a)),
        enqueueAll: async (id, ms, max) => (calls.push(ms.length), outbox.enqueueAll(id, ms, max)),
        pending: (...a) => outbox.pending(...a),
        ack: (...a) => outbox.ack(...a),
        restart: (...a) => outbox.restart(...a),
        count: (...a) => outbox.count(...a),
        total: () => outbox.total(),
        clear: (...a) => outbox.clear(...a),
    }
    // the upstream answers all 16 calls at the same moment
    const waiting: (() => void)[] = []
    const fetchHook = (async () => {
        await new Promise<void>(r => {
            waiting.push(r)
            if (waiting.length === 16) for (const w of waiting) w()
        })
        return new Response("ok", { status: 200 })
    }) as unknown as typeof fetch
    const app = new GatewayApp({
        receiving: stores.receiving,
        outbox: counting,
        config: parseConfig({ routes: { up: { url: "http://127.0.0.1:9/up", devices: ["*"] } } }),
        lookup: async () => device,
        log: l => logs.push(l),
        fetch: fetchHook,
    })
    const link = new FakeLink()
    app.data(device, encodeApp({ kind: AppKind.STREAM, streamId: 6, peerStreamId: 0, delivered: 0 }), link)
    for (let id = 1; id <= 16; id++) app.data(device, encodeApp({ kind: AppKind.REQUEST, id, route: "up", payload: Buffer.alloc(0) }), link)
    assert.ok(await until(() => link.sent.filter(m => m.kind === AppKind.RESPONSE).length >= 16), JSON.stringify(logs))
    await app.idle()
    const responses = link.sent.filter(m => m.kind === AppKind.RESPONSE)
    assert.deepEqual(
        responses.map(r => (r.kind === AppKind.RESPONSE ? `${r.requestId}:${r.status}` : "")),
        Array.from({ length: 16 }, (_, i) => `${i + 1}:200`),
        "every RESPONSE once, in the order the answers came"
    )
    assert.equal(
        calls.reduce((a, b) => a + b, 0),
        16
    )
    assert.ok(calls.length <= 2, `${calls.length} outbox transactions for 16 answers (${JSON.stringify(calls)})`)
})

test("the store goes away under a DATA record: the session is closed with BUSY (not PROTOCOL_ERROR), nothing is acknowledged", async () => {
    const device = { id: "00ff00ff00ff00fd", name: "outage" }
    const logs: Record<string, unknown>[] = []
    const stores = memoryStores()
    let down = false
    const real = stores.receiving
    const flaky = {
        get: (id: string) => (down ? Promise.reject(new StoreUnavailable("57P01")) : real.get(id)),
        put: (...a: Parameters<typeof real.put>) => (down ? Promise.reject(new StoreUnavailable("57P01")) : real.put(...a)),
        close: () => real.close(),
    }
    const app = new GatewayApp({
        receiving: flaky,
        outbox: stores.outbox,
        config: parseConfig({}),
        lookup: async () => device,
        log: l => logs.push(l),
    })
    const link = new FakeLink()
    app.data(device, encodeApp({ kind: AppKind.STREAM, streamId: 7, peerStreamId: 0, delivered: 0 }), link)
    app.data(device, encodeApp({ kind: AppKind.PUBLISH, id: 1, topic: "t", payload: Buffer.alloc(0) }), link)
    await app.idle()
    const acks = () => link.sent.filter(m => m.kind === AppKind.ACK).length
    const acked = acks()
    down = true
    app.data(device, encodeApp({ kind: AppKind.PUBLISH, id: 2, topic: "t", payload: Buffer.alloc(0) }), link)
    await app.idle()
    assert.deepEqual(link.closed, [Code.BUSY])
    assert.equal(acks(), acked, "the PUBLISH met the outage: not acknowledged")
    assert.ok(logs.some(l => l.outcome === "store-unavailable" && l.where === "data"))
    assert.ok(!logs.some(l => l.outcome === "internal-error" || l.outcome === "protocol-error"), JSON.stringify(logs))
})
