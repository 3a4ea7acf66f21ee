// The gateway against one hostile client on loopback: handshake slots, half-open sockets,
// generation overflow, replayed first frames, a peer that never reads, per-source limits and
// a shutdown with a silent peer. Every attack is bounded in count and time.
import { test } from "node:test"
import assert from "node:assert/strict"
import { connect, Socket } from "node:net"
import { FramedSocket, MemoryTicketStore, RejectedError } from "../peer/initiator.js"
import { DEFAULT_POLICY } from "../src/policy.js"
import { SourceAttempts } from "../src/server.js"
import { encodeResumeInit } from "../src/session/resume.js"
import { AGE_LEN, Code, FrameType, MAX_RECORD_PLAINTEXT, NONCE_I_LEN, TAG_LEN, TICKET_LEN } from "../src/wire.js"
import { randomBytes } from "../src/crypto/random.js"
import { MemoryRegistry } from "../src/registry/memory.js"
import type { Registry } from "../src/registry/registry.js"
import { StoreUnavailable } from "../src/store/types.js"
import { RegistryBusy } from "../src/registry/registry.js"
import { connectTicketed, fixture, fixtures, until } from "./helpers.js"

const fx = fixtures()

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** A well-sized RESUME_INIT whose ticket no gateway ever minted. */
const randomResumeInit = () =>
    encodeResumeInit(randomBytes(TICKET_LEN), randomBytes(AGE_LEN), randomBytes(NONCE_I_LEN), randomBytes(TAG_LEN))

/** A client socket that never sends its FIN: it does not end its side when the gateway ends its own. */
function halfOpen(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
        const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(s))
        s.on("error", reject)
    })
}

test("a refused ticket releases its handshake slot, and AwaitHsInit times out on its own", async () => {
    const f = await fx({ policy: { maxConcurrentHandshakes: 4, hsInitTimeoutMs: 300 } })
    const p = await f.pair("slot-victim")
    const socks: FramedSocket[] = []
    for (let i = 0; i < 8; i++) {
        const s = await FramedSocket.connect("127.0.0.1", f.gw.port)
        s.sendFrame(FrameType.RESUME_INIT, randomResumeInit())
        assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.TICKET_REJECTED]) }, `attacker ${i}`)
        socks.push(s)
    }
    assert.equal(f.gw.stats.handshakes, 0, "no slot held after TICKET_REJECTED")
    const conn = await f.client(p).connect()
    assert.equal(conn.resumed, false, "the paired device is not refused BUSY")
    conn.close()
    const t0 = Date.now()
    for (const s of socks) assert.equal(await s.recvFrame(3000), null, "dropped after hsInitTimeoutMs")
    assert.ok(Date.now() - t0 < 2500, "well before the 10 s handshake timeout")
    assert.ok(f.logs.filter(l => l.outcome === "handshake-timeout").length >= 8)
})

test("a peer that never sends its FIN loses its descriptor lingerMs after the gateway's end()", async () => {
    const f = await fx({ policy: { lingerMs: 200, maxConcurrentHandshakes: 0 } })
    const socks: Socket[] = []
    for (let i = 0; i < 5; i++) {
        const s = await halfOpen(f.gw.port)
        s.on("data", () => {})
        s.write(Buffer.from([0, 4, FrameType.HS_INIT, 1, 2, 3])) // REJECT(BUSY): the cap is 0
        socks.push(s)
    }
    assert.ok(await until(() => f.logs.filter(l => l.code === "BUSY").length === 5))
    assert.equal(f.gw.stats.connections, 0, "forgotten by the server at once")
    assert.ok(await until(() => f.gw.sockets === 0, 2000), "the sockets are destroyed after the linger")
    for (const s of socks) s.destroy()
})

test("replays of one captured RESUME_INIT from one source are bounded by the default per-source limit", async () => {
    const f = await fx()
    const p = await f.pair("replayed")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store))).close()
    let captured: Buffer | undefined
    ;(await f.client(p, store, { onSend: (t, body) => void (t === FrameType.RESUME_INIT && (captured = body)) }).connect()).close()
    assert.ok(captured)
    await sleep(20)
    const before = await f.registry.getDevice(p.deviceId.toString("hex"))
    // about 2,000 replays a second were measured from one source: the default allows a
    // source at most 20 attempts a second on average
    assert.ok(DEFAULT_POLICY.perSourceAttempts / (DEFAULT_POLICY.perSourceWindowMs / 1000) <= 20)
    assert.ok(DEFAULT_POLICY.perSourceAttempts <= 200)
    const answers = { resumed: 0, busy: 0 }
    const n = 250
    for (let i = 0; i < n; i++) {
        const s = await FramedSocket.connect("127.0.0.1", f.gw.port)
        s.sendFrame(FrameType.RESUME_INIT, captured)
        const r = await s.recvFrame(2000)
        if (r?.type === FrameType.RESUME_RESP) answers.resumed++
        else if (r?.type === FrameType.REJECT && r.body[0] === Code.BUSY) answers.busy++
        s.close()
    }
    // the two real connections counted too
    assert.equal(answers.resumed, DEFAULT_POLICY.perSourceAttempts - 2)
    assert.equal(answers.busy, n - answers.resumed)
    assert.deepEqual(await f.registry.getDevice(p.deviceId.toString("hex")), before, "no replay counted a generation")
})

test("50 replays of a captured RESUME_INIT while the device is connected: the device keeps its session, no replayer gets data", async () => {
    const f = await fx()
    const p = await f.pair("replay-victim")
    const id = p.deviceId.toString("hex")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store))).close()
    let captured: Buffer | undefined
    const device = await f
        .client(p, store, { onSend: (t, body) => void (t === FrameType.RESUME_INIT && (captured = body)) })
        .connect(Buffer.from("hello"))
    assert.ok(captured)
    assert.equal(device.earlyAccepted, true)
    const before = await f.registry.getDevice(id)
    const [session] = f.gw.sessionsOf(id)
    const replayers: { s: FramedSocket }[] = []
    for (let i = 0; i < 50; i++) {
        const s = await FramedSocket.connect("127.0.0.1", f.gw.port)
        s.sendFrame(FrameType.RESUME_INIT, captured)
        const r = await s.recvFrame(2000)
        assert.equal(r?.type, FrameType.RESUME_RESP, "answered: the gateway cannot tell a replay from a device that lost its ticket")
        replayers.push({ s })
    }
    assert.equal(f.gw.sessionsOf(id)[0], session, "the device's session is still the live one")
    for (let i = 0; i < 5; i++) assert.equal(f.gw.send(id, Buffer.from(`down-${i}`)), 1)
    for (let i = 0; i < 5; i++) assert.equal((await device.recv())?.toString(), `down-${i}`)
    device.send(Buffer.from("still-here"))
    assert.ok(await until(() => f.delivered.some(d => d.content === "still-here")))
    // each replayer got RESUME_RESP and nothing else: no TICKET (its session is never
    // confirmed), no application data
    await sleep(200)
    for (const r of replayers) {
        assert.equal(await r.s.recvFrame(1), undefined, "no TICKET, no application data")
        r.s.close()
    }
    assert.equal(f.delivered.filter(d => d.content === "hello").length, 1)
    assert.deepEqual(await f.registry.getDevice(id), before, "the replays moved no registry field")
    device.close()
})

test("an unconfirmed session never replaced the live one and is dropped after the handshake timeout", async () => {
    const f = await fx({ policy: { handshakeTimeoutMs: 300 } })
    const p = await f.pair("pending")
    const id = p.deviceId.toString("hex")
    const a = await connectTicketed(f.client(p)) // live once its first record confirmed it
    const b = await f.client(p).connect() // full handshake, but no record yet
    assert.equal(await b.recv(2000), null)
    assert.equal(b.closeCode, Code.IDLE)
    assert.ok(f.logs.some(l => l.outcome === "unconfirmed-timeout"))
    assert.equal(f.gw.send(id, Buffer.from("a")), 1)
    assert.equal((await a.recv())?.toString(), "a")
    a.close()
})

test("two concurrent authenticated sessions of one device end with exactly one live", async () => {
    const f = await fx()
    const p = await f.pair("twice")
    const id = p.deviceId.toString("hex")
    const [a, b] = await Promise.all([f.client(p).connect(), f.client(p).connect()])
    a.send(Buffer.from("from-a"))
    b.send(Buffer.from("from-b"))
    assert.ok(await until(() => f.delivered.filter(d => d.device === "twice").length >= 1))
    const closedOne = await Promise.race([a.recv(2000).then(() => a), b.recv(2000).then(() => b)])
    assert.equal(closedOne.closeCode, Code.SUPERSEDED)
    const survivor = closedOne === a ? b : a
    assert.equal(f.gw.sessionsOf(id).length, 1)
    assert.equal(f.gw.send(id, Buffer.from("only")), 1)
    assert.equal((await survivor.recv())?.toString(), "only")
    assert.ok(survivor.isOpen())
    survivor.close()
})

test("a peer that completes a handshake and never reads is destroyed once its write buffer passes the bound", async () => {
    const f = await fx({ policy: { maxWriteBufferBytes: 64 * 1024 } })
    const p = await f.pair("no-reader")
    const id = p.deviceId.toString("hex")
    const conn = await f.client(p).connect()
    conn.send(Buffer.from("confirm"))
    assert.ok(await until(() => f.delivered.some(d => d.content === "confirm")))
    conn.sock.socket.pause()
    const chunk = Buffer.alloc(MAX_RECORD_PLAINTEXT - 1, 7)
    let sent = 0
    // loopback's kernel buffers take some megabytes first; 40 MB bounds the test
    while (sent < 40_000 && f.gw.send(id, chunk) === 1) {
        sent++
        if (sent % 500 === 0) await sleep(1)
    }
    assert.ok(sent < 40_000, "the gateway stopped sending")
    assert.ok(f.logs.some(l => l.outcome === "write-buffer-full" && l.deviceName === "no-reader"))
    assert.ok(await until(() => f.gw.sockets === 0, 500), "destroyed, not ended (no linger)")
    conn.sock.socket.destroy()
})

test("accepted sockets use TCP keepalive after keepAliveMs of silence", async () => {
    const calls: [boolean | undefined, number | undefined][] = []
    const original = Socket.prototype.setKeepAlive
    Socket.prototype.setKeepAlive = function (enable?: boolean, delay?: number) {
        calls.push([enable, delay])
        return original.call(this, enable, delay)
    }
    try {
        const f = await fx({ policy: { keepAliveMs: 12_345 } })
        const s = await halfOpen(f.gw.port)
        assert.ok(await until(() => f.gw.sockets === 1))
        assert.deepEqual(calls, [[true, 12_345]])
        s.destroy()
    } finally {
        Socket.prototype.setKeepAlive = original
    }
})

test("per-source connections: one more than the cap is answered BUSY at accept; a freed place is usable again", async () => {
    const f = await fx({ policy: { perSourceConnections: 3 } })
    const p = await f.pair("crowded")
    const held: Socket[] = []
    for (let i = 0; i < 3; i++) held.push(await halfOpen(f.gw.port))
    assert.ok(await until(() => f.gw.sockets === 3))
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
    assert.ok(f.logs.some(l => l.detail === "per-source connections"))
    held.pop()!.destroy()
    assert.ok(await until(() => f.gw.sockets === 2))
    const conn = await f.client(p).connect()
    conn.close()
    for (const s of held) s.destroy()
})

test("SourceAttempts holds at most maxSources entries, forgetting the least recently seen", () => {
    const a = new SourceAttempts(10_000, 3)
    a.count("a", 0)
    a.count("b", 1)
    a.count("c", 2)
    a.count("a", 3) // a is the most recently seen now
    a.count("d", 4) // b goes
    assert.equal(a.size, 3)
    assert.equal(a.count("a", 5), 3, "a was kept")
    assert.equal(a.count("b", 6), 1, "b was forgotten and starts afresh")
    assert.equal(a.size, 3)
    assert.equal(new SourceAttempts(1).maxSources, DEFAULT_POLICY.maxSources)
})

test("shutdown with a silent peer ends after shutdownGraceMs, every socket destroyed", async () => {
    const f = await fixture({ policy: { shutdownGraceMs: 300, lingerMs: 60_000 } })
    const p = await f.pair("silent")
    const conn = await f.client(p).connect()
    conn.sock.socket.pause() // reads nothing, closes nothing
    const silent = await halfOpen(f.gw.port)
    assert.ok(await until(() => f.gw.sockets === 2))
    const t0 = Date.now()
    await f.gw.close()
    assert.ok(Date.now() - t0 < 2000, `close() took ${Date.now() - t0} ms`)
    assert.ok(await until(() => f.gw.sockets === 0, 500))
    assert.ok(f.logs.some(l => l.event === "shutdown" && l.outcome === "destroyed" && l.sockets === 2))
    silent.destroy()
    conn.sock.socket.destroy()
})

test("the registry busy (SQLite's write lock, issue 15): a handshake is answered REJECT(BUSY), a confirmation CLOSE(BUSY)", async () => {
    let failing = ""
    const wrap = (r: Registry): Registry =>
        new Proxy(r, {
            get(t, k) {
                const v = Reflect.get(t, k, t) as unknown
                if (typeof v !== "function") return v
                return (...a: unknown[]) => (k === failing ? Promise.reject(new RegistryBusy()) : (v as Function).apply(t, a))
            },
        })
    const inner = new MemoryRegistry()
    const f = await fx({ registry: wrap(inner) })
    const p = await f.pair("busy")
    await inner.putDevice(p.record)
    failing = "getDeviceByPseudonym"
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
    failing = "confirmSession"
    const c = await f.client(p).connect()
    c.send(Buffer.from("first"))
    assert.equal(await c.recv(3000), null)
    assert.equal(c.closeCode, Code.BUSY)
    failing = ""
    const ok = await connectTicketed(f.client(p))
    assert.ok(ok.isOpen())
    ok.close()
    assert.ok(!f.logs.some(l => l["outcome"] === "error"), JSON.stringify(f.logs))
})

test("the store unreachable: a handshake is answered REJECT(BUSY), a confirmation CLOSE(BUSY); nothing logged as an error", async () => {
    let failing = ""
    const wrap = (r: Registry): Registry =>
        new Proxy(r, {
            get(t, k) {
                const v = Reflect.get(t, k, t) as unknown
                if (typeof v !== "function") return v
                return (...a: unknown[]) => (k === failing ? Promise.reject(new StoreUnavailable("test")) : (v as Function).apply(t, a))
            },
        })
    const inner = new MemoryRegistry()
    const f = await fx({ registry: wrap(inner) })
    const p = await f.pair("flaky")
    await inner.putDevice(p.record)
    // the registry lookup of a handshake fails
    failing = "getDeviceByPseudonym"
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
    // the confirmation (the device's first record) fails: the session ends with CLOSE(BUSY)
    failing = "confirmSession"
    const c = await f.client(p).connect()
    c.send(Buffer.from("first"))
    assert.equal(await c.recv(3000), null)
    assert.equal(c.closeCode, Code.BUSY)
    // back: the device gets in
    failing = ""
    const ok = await connectTicketed(f.client(p))
    assert.ok(ok.isOpen())
    ok.close()
    assert.ok(f.logs.some(l => l["outcome"] === "store-unavailable"))
    assert.ok(!f.logs.some(l => l["outcome"] === "error"), JSON.stringify(f.logs))
})
