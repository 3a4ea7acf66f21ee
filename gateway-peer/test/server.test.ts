// The responder and the server over real loopback TCP, driven by the Node initiator.
import { test } from "node:test"
import assert from "node:assert/strict"
import { FramedSocket, MemoryTicketStore, RejectedError } from "../peer/initiator.js"
import { BoundedMap, SS_CACHE_MAX } from "../src/server.js"
import { Phase } from "../src/session/responder.js"
import { mintTicket, TicketKeySet } from "../src/tickets.js"
import { randomBytes } from "../src/crypto/random.js"
import { pseudonym0 } from "../src/registry/registry.js"
import { encodeHsInit } from "../src/session/handshake.js"
import { encodeResumeInit } from "../src/session/resume.js"
import {
    AGE_LEN,
    Code,
    encodeFrame,
    FrameType,
    HS_INIT_MESSAGE_LEN,
    InnerType,
    KEY_UPDATE_AT,
    NONCE_I_LEN,
    PSEUDONYM_LEN,
    TAG_LEN,
    TICKET_CONTENT_LEN,
    TICKET_LEN,
    TICKET_LIFETIME,
} from "../src/wire.js"
import { connectTicketed, type Fixture, fixture, fixtures, until } from "./helpers.js"

const fx = fixtures()

/** The gateway still serves a full handshake and a record afterwards. */
async function stillServes(f: Fixture): Promise<void> {
    const p = await f.pair(`check-${Math.random()}`)
    const conn = await f.client(p).connect()
    conn.send(Buffer.from("alive"))
    assert.ok(await until(() => f.delivered.some(d => d.content === "alive")))
    f.gw.send(p.deviceId.toString("hex"), Buffer.from("pong"))
    assert.equal((await conn.recv())?.toString(), "pong")
    conn.close()
}

async function raw(f: Fixture): Promise<FramedSocket> {
    return FramedSocket.connect("127.0.0.1", f.gw.port)
}

test("full handshake, records both ways, the TICKET after the device's first record, CLOSE", async () => {
    const f = await fx()
    const p = await f.pair("d1")
    const store = new MemoryTicketStore()
    const conn = await f.client(p, store).connect()
    assert.equal(conn.resumed, false)
    assert.equal(store.history.length, 0, "no TICKET before the device's first record")
    await new Promise(r => setTimeout(r, 30))
    assert.deepEqual(await f.registry.getDevice(p.deviceId.toString("hex")), p.record, "nothing counted yet")
    for (let i = 0; i < 5; i++) conn.send(Buffer.from(`up${i}`))
    assert.ok(await until(() => f.delivered.length === 5))
    assert.deepEqual(
        f.delivered.map(d => d.content),
        ["up0", "up1", "up2", "up3", "up4"]
    )
    assert.ok(f.delivered.every(d => !d.early))
    assert.equal(f.gw.send(p.deviceId.toString("hex"), Buffer.from("down")), 1)
    assert.equal((await conn.recv())?.toString(), "down")
    assert.equal(store.history.length, 1, "the TICKET, stored on the way")
    assert.ok(store.ticket?.receivedAt !== undefined)
    const rec = await f.registry.getDevice(p.deviceId.toString("hex"))
    assert.equal(rec?.issued_generation, 2, "pairing's generation 1, then this session's")
    assert.equal(rec?.full_generation, 2)
    assert.deepEqual(rec?.pseudonym, store.ticket?.pseudonym, "the pseudonym the TICKET carried")
    conn.close()
    assert.ok(await until(() => f.logs.some(l => l.outcome === "closed-by-peer")))
    const text = JSON.stringify(f.logs)
    assert.ok(!text.includes(store.ticket!.ticket.toString("hex")) && !text.includes("up0"), "no tickets or payloads in logs")
    assert.ok(f.logs.some(l => l.outcome === "full-handshake" && l.deviceName === "d1"))
})

test("send and closeDevice reach the device's one live session and no other, and forget closed ones", async () => {
    const f = await fx()
    const a = await f.pair("multi-a")
    const b = await f.pair("multi-b")
    const idA = a.deviceId.toString("hex")
    // a session is live from its first record (PROTOCOL.md 8)
    const a1 = await connectTicketed(f.client(a))
    const a2 = await f.client(a).connect()
    const b1 = await connectTicketed(f.client(b))
    // a2 is not live until its first record; then it replaces a1 (one live session per device)
    assert.equal(f.gw.send(idA, Buffer.from("to-a")), 1)
    assert.equal((await a1.recv())?.toString(), "to-a")
    a2.send(Buffer.from("a2-here"))
    assert.equal(await a1.recv(), null)
    assert.equal(a1.closeCode, Code.SUPERSEDED)
    assert.ok(await until(() => f.gw.sessionsOf(idA).length === 1), "a closed session leaves the index")
    assert.equal(f.gw.send(idA, Buffer.from("again")), 1)
    assert.equal((await a2.recv())?.toString(), "again")
    assert.equal(f.gw.closeDevice(idA, Code.REVOKED), 1)
    assert.equal(f.gw.send(idA, Buffer.from("gone")), 0)
    assert.equal(f.gw.sessionsOf(idA).length, 0)
    assert.equal(f.gw.send(b.deviceId.toString("hex"), Buffer.from("to-b")), 1, "the other device is untouched")
    assert.equal((await b1.recv())?.toString(), "to-b")
    b1.close()
})

test("an application that answers 0-RTT early data at once reaches the device", async () => {
    // onData runs inside the step that establishes the session: send() must already find it
    let gw: Fixture["gw"] | undefined
    const f = await fx({
        onData: (d, c) => {
            gw?.send(d.id, Buffer.concat([Buffer.from("ack:"), c]))
        },
    })
    gw = f.gw
    const p = await f.pair("answer-at-once")
    const store = new MemoryTicketStore()
    const first = await connectTicketed(f.client(p, store))
    assert.equal((await first.recv())?.toString(), "ack:first")
    first.close()
    const conn = await f.client(p, store).connect(Buffer.from("early"))
    assert.equal(conn.resumed, true)
    assert.equal(conn.earlyAccepted, true)
    assert.equal((await conn.recv())?.toString(), "ack:early")
    conn.close()
})

test("resumption with 0-RTT early data delivered once; replay of the RESUME_INIT delivers nothing", async () => {
    const f = await fx()
    const p = await f.pair("d2")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store))).close()
    const dh0 = f.dhCount.n
    const sent: { type: number; body: Buffer }[] = []
    const conn = await f.client(p, store, { onSend: (type, body) => sent.push({ type, body }) }).connect(Buffer.from("early-1"))
    assert.equal(conn.resumed, true)
    assert.equal(conn.earlyAccepted, true)
    assert.equal(f.dhCount.n, dh0, "no X25519 on the gateway for a resumption")
    assert.ok(await until(() => f.delivered.some(d => d.content === "early-1")))
    assert.equal(f.delivered.find(d => d.content === "early-1")?.early, true, "onData is told it came as early data")
    assert.equal(store.history.length, 2, "the TICKET followed RESUME_RESP at once")
    conn.send(Buffer.from("after"))
    f.gw.send(p.deviceId.toString("hex"), Buffer.from("down"))
    assert.equal((await conn.recv())?.toString(), "down")
    conn.close()
    assert.ok(await until(() => f.delivered.some(d => d.content === "after")))
    assert.equal(f.delivered.find(d => d.content === "after")?.early, false)
    // an attacker replays the captured frame, several times
    const captured = sent.find(s => s.type === FrameType.RESUME_INIT)
    assert.ok(captured)
    await new Promise(r => setTimeout(r, 30))
    const before = await f.registry.getDevice(p.deviceId.toString("hex"))
    for (let i = 0; i < 3; i++) {
        const s = await raw(f)
        s.sendFrame(FrameType.RESUME_INIT, captured.body)
        const resp = await s.recvFrame(2000)
        assert.equal(resp?.type, FrameType.RESUME_RESP, "it resumes, but the replayer cannot read it")
        // the replayer cannot produce a valid record: anything it sends kills the session, no TICKET comes
        s.sendFrame(FrameType.RECORD, Buffer.alloc(40, 1))
        assert.equal(await s.recvFrame(1000), null)
        s.close()
    }
    await new Promise(r => setTimeout(r, 50))
    assert.equal(f.delivered.filter(d => d.content === "early-1").length, 1)
    assert.deepEqual(await f.registry.getDevice(p.deviceId.toString("hex")), before, "the replays moved nothing")
    await stillServes(f)
})

test("torn connection after TICKET: the older ticket resumes, early data redelivered once under 1-RTT", async () => {
    const f = await fx()
    const p = await f.pair("d3")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store), Buffer.from("stream"))).close() // ticket g2 (pairing had g1)
    const g2 = store.ticket!
    const c = await f.client(p, store).connect(Buffer.from("first")) // uses g2 (accepted), gets g3
    assert.equal(c.earlyAccepted, true)
    c.close()
    // the device never stored g3: it still has g2 (and g2's pseudonym, now previous_pseudonym)
    const old = new MemoryTicketStore(g2)
    const conn = await f.client(p, old).connect(Buffer.from("second"))
    assert.equal(conn.resumed, true)
    assert.equal(conn.earlyAccepted, false)
    assert.ok(await until(() => f.delivered.some(d => d.content === "second")))
    await new Promise(r => setTimeout(r, 50))
    assert.deepEqual(
        f.delivered.map(d => [d.content, d.early]),
        [
            ["stream", false],
            ["first", true],
            ["second", false],
        ]
    )
    const rec = await f.registry.getDevice(p.deviceId.toString("hex"))
    assert.equal(rec?.issued_generation, 4)
    assert.equal(rec?.accepted_generation, 2, "g2's early data was accepted once; its second use raised nothing")
    conn.close()
})

test("tampered, foreign and expired tickets: TICKET_REJECTED then the full handshake on the same connection", async () => {
    const f = await fx()
    const p = await f.pair("d4")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store))).close()
    const good = store.ticket!
    const tampered = Buffer.from(good.ticket)
    tampered[10] = (tampered[10] as number) ^ 1 // sealed: unseals to another device id
    const badMac = Buffer.from(good.ticket)
    badMac[30] = (badMac[30] as number) ^ 1
    const other = TicketKeySet.create(f.clock.now)
    const foreign = mintTicket({ deviceId: p.deviceId, generation: 2, issuedAt: f.clock.now, chainOrigin: 2, keySet: other })
    for (const t of [
        { ticket: tampered, secret: good.secret },
        { ticket: badMac, secret: good.secret },
        { ticket: foreign.ticket, secret: foreign.resumptionSecret },
    ]) {
        const s = new MemoryTicketStore(t)
        // no record on these sessions: unconfirmed, they leave the chain (and `good`) alone
        const conn = await f.client(p, s).connect()
        assert.equal(conn.fellBack, true)
        assert.equal(conn.resumed, false)
        conn.close()
    }
    // expired: the clock moves past issued_at + ticketLifetime
    const s = new MemoryTicketStore(good)
    f.clock.now += TICKET_LIFETIME
    const conn = await f.client(p, s).connect()
    assert.equal(conn.fellBack, true)
    conn.close()
    assert.ok(f.logs.some(l => l.detail === "ticket: expired"))
    assert.ok(f.logs.some(l => l.detail === "ticket: bad mac or an older chain"))
    assert.ok(f.logs.some(l => l.detail === "ticket: unknown device or bad mac"))
    await stillServes(f)
})

test("revoked and unknown devices are rejected with UNKNOWN_DEVICE before any X25519", async () => {
    const f = await fx()
    const p = await f.pair("d5")
    const store = new MemoryTicketStore()
    const live = await connectTicketed(f.client(p, store))
    await f.registry.revoke("d5")
    assert.equal(f.gw.closeDevice(p.deviceId.toString("hex"), Code.REVOKED), 1)
    assert.equal(await live.recv(), null)
    assert.equal(live.closeCode, Code.REVOKED)
    const dh0 = f.dhCount.n
    // the ticket is refused (revoked), then the full handshake is refused too
    await assert.rejects(f.client(p, store).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.UNKNOWN_DEVICE)
    // a stranger: a PSK whose pseudonym0 names no device
    const stranger = { ...p, psk: randomBytes(32) }
    await assert.rejects(f.client(stranger).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.UNKNOWN_DEVICE)
    assert.equal(f.dhCount.n, dh0, "no X25519 for unknown or revoked devices")
    await stillServes(f)
})

test("tampered bytes in HS_INIT, HS_RESP and a record", async () => {
    const f = await fx()
    const p = await f.pair("d6")
    // HS_INIT under the device's pseudonym0: every byte of e and the tag
    for (const i of [9, 20, 40, 56]) {
        const s = await raw(f)
        const body = encodeHsInit(pseudonym0(p.psk), Buffer.alloc(HS_INIT_MESSAGE_LEN, 7))
        body[i] = (body[i] as number) ^ 1
        s.sendFrame(FrameType.HS_INIT, body)
        const r = await s.recvFrame(2000)
        assert.deepEqual(r, { type: FrameType.REJECT, body: Buffer.from([Code.HANDSHAKE_FAILED]) })
        assert.equal(await s.recvFrame(1000), null)
    }
    // the device id in the pseudonym's place names nothing: the id is never sent in clear
    const s = await raw(f)
    s.sendFrame(FrameType.HS_INIT, encodeHsInit(p.deviceId, Buffer.alloc(HS_INIT_MESSAGE_LEN, 7)))
    assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.UNKNOWN_DEVICE]) })
    // HS_RESP tampered on the way to the device: the client refuses it
    const c = f.client(p)
    const conn = await c.connect()
    // a record tampered on the way to the gateway: closed without an answer
    const bodies = conn.session.encrypt(InnerType.DATA, Buffer.from("secret"))
    const b = Buffer.from(bodies[0]!)
    b[3] = (b[3] as number) ^ 1
    conn.sock.sendFrame(FrameType.RECORD, b)
    assert.equal(await conn.sock.recvFrame(2000), null)
    assert.ok(!f.delivered.some(d => d.content === "secret"))
    await stillServes(f)
})

test("HS_RESP tampered: the initiator rejects it", async () => {
    const { consumeHsInit, readHsInit, readHsResp, writeHsInit, writeHsResp } = await import("../src/session/handshake.js")
    const { generateKeyPair } = await import("../src/crypto/x25519.js")
    const sI = generateKeyPair(),
        sR = generateKeyPair(),
        psk = Buffer.alloc(32, 3),
        pseudonym = Buffer.alloc(PSEUDONYM_LEN, 1)
    const pend = writeHsInit({ pseudonym, s: sI, rs: sR.publicKey, psk }, generateKeyPair())
    const init = readHsInit(pend.body)
    assert.ok(!("error" in init))
    const msg2 = writeHsResp(consumeHsInit({ pseudonym, s: sR, rs: sI.publicKey, psk }, init.message)!, generateKeyPair()).body
    for (let i = 0; i < msg2.length; i += 7) {
        const bad = Buffer.from(msg2)
        bad[i] = (bad[i] as number) ^ 0x80
        assert.equal(readHsResp(pend, bad), undefined, `byte ${i}`)
    }
    assert.ok(readHsResp(pend, msg2))
})

test("truncated frame, oversized length, garbage, wrong frame types", async () => {
    const f = await fx({ policy: { handshakeTimeoutMs: 300 } })
    const p = await f.pair("d7")
    // truncated: half a frame, then silence -> handshake timeout closes it
    let s = await raw(f)
    s.sendRaw(encodeFrame(FrameType.HS_INIT, Buffer.alloc(57)).subarray(0, 30))
    assert.equal(await s.recvFrame(2000), null)
    // oversized length
    s = await raw(f)
    s.sendRaw(Buffer.from([0x04, 0x01, 0x01]))
    assert.equal(await s.recvFrame(2000), null)
    // length 0
    s = await raw(f)
    s.sendRaw(Buffer.from([0, 0]))
    assert.equal(await s.recvFrame(2000), null)
    // garbage
    s = await raw(f)
    s.sendRaw(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal(await s.recvFrame(2000), null)
    // wrong types in AwaitFirst: PROTOCOL_ERROR
    for (const t of [FrameType.HS_RESP, FrameType.RESUME_RESP, FrameType.RECORD, FrameType.REJECT, 0x55]) {
        s = await raw(f)
        s.sendFrame(t, Buffer.alloc(10))
        assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.PROTOCOL_ERROR]) })
        assert.equal(await s.recvFrame(1000), null)
    }
    // bad version, short bodies
    s = await raw(f)
    s.sendFrame(FrameType.HS_INIT, encodeHsInit(Buffer.alloc(PSEUDONYM_LEN), Buffer.alloc(HS_INIT_MESSAGE_LEN), 1))
    assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.UNSUPPORTED_VERSION]) }, "version 1")
    s = await raw(f)
    s.sendFrame(FrameType.RESUME_INIT, Buffer.from([2, 2, 3]))
    assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.PROTOCOL_ERROR]) })
    // wrong types in Established: closed without an answer
    for (const t of [FrameType.HS_INIT, FrameType.RESUME_INIT, FrameType.HS_RESP, FrameType.REJECT]) {
        const conn = await f.client(p).connect()
        conn.sock.sendFrame(t, Buffer.alloc(57, 1))
        assert.equal(await conn.sock.recvFrame(2000), null)
    }
    // a TICKET record from the device: closed
    const conn = await f.client(p).connect()
    conn.sendRecord(InnerType.TICKET, Buffer.alloc(TICKET_CONTENT_LEN))
    assert.equal(await conn.sock.recvFrame(2000), null)
    // after TICKET_REJECTED only HS_INIT is accepted
    s = await raw(f)
    const bad = encodeResumeInit(
        Buffer.alloc(TICKET_LEN, 9),
        Buffer.alloc(AGE_LEN, 9),
        Buffer.alloc(NONCE_I_LEN, 9),
        Buffer.alloc(TAG_LEN, 9)
    )
    s.sendFrame(FrameType.RESUME_INIT, bad)
    assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.TICKET_REJECTED]) })
    s.sendFrame(FrameType.RESUME_INIT, bad)
    assert.deepEqual(await s.recvFrame(2000), { type: FrameType.REJECT, body: Buffer.from([Code.PROTOCOL_ERROR]) })
    await stillServes(f)
})

test("KEY_UPDATE near the nonce limit, both directions", async () => {
    const f = await fx()
    const p = await f.pair("d8")
    const conn = await connectTicketed(f.client(p), Buffer.from("k0"))
    const [gws] = f.gw.sessionsOf(p.deviceId.toString("hex"))
    assert.ok(gws)
    // test hook: both ends of each direction jump to just below KEY_UPDATE_AT
    conn.session.send.setNonce(KEY_UPDATE_AT - 1)
    gws.recv.setNonce(KEY_UPDATE_AT - 1)
    for (const m of ["k1", "k2", "k3"]) conn.send(Buffer.from(m))
    assert.equal(conn.session.send.n, 2, "KEY_UPDATE then n = 0 under the new key")
    assert.ok(await until(() => f.delivered.filter(d => d.device === "d8").length === 4))
    assert.deepEqual(
        f.delivered.map(d => d.content),
        ["k0", "k1", "k2", "k3"]
    )
    assert.equal(gws.recv.n, 2)
    gws.send.setNonce(KEY_UPDATE_AT)
    conn.session.recv.setNonce(KEY_UPDATE_AT)
    f.gw.send(p.deviceId.toString("hex"), Buffer.from("down"))
    assert.equal((await conn.recv())?.toString(), "down")
    assert.equal(gws.send.n, 1)
    assert.ok(f.logs.some(l => l.outcome === "key-update"))
    conn.close()
})

test("Session refuses n >= NONCE_LIMIT", async () => {
    const { Session } = await import("../src/session/session.js")
    const { CipherState } = await import("../src/noise/cipher-state.js")
    const { AESCCM } = await import("../src/noise/cipher.js")
    const { NONCE_LIMIT } = await import("../src/wire.js")
    const k = Buffer.alloc(32, 1)
    const a = new Session(new CipherState(AESCCM, k), new CipherState(AESCCM, k))
    a.recv.setNonce(NONCE_LIMIT)
    assert.equal(a.decrypt(Buffer.alloc(20)), undefined)
    assert.equal(a.dead, true)
    const b = new Session(new CipherState(AESCCM, k), new CipherState(AESCCM, k))
    b.send.setNonce(NONCE_LIMIT)
    assert.throws(() => b.encrypt(InnerType.DATA, Buffer.alloc(1)), /nonce limit/)
})

test("handshake cap and per-source limit answer BUSY", async () => {
    const f = await fx({ policy: { perSourceAttempts: 2, perSourceWindowMs: 60_000 } })
    const p = await f.pair("d9")
    ;(await f.client(p).connect()).close()
    ;(await f.client(p).connect()).close()
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
    const g = await fx({ policy: { maxConcurrentHandshakes: 0 } })
    const q = await g.pair("d10")
    await assert.rejects(g.client(q).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
})

test("idle timeout sends CLOSE(IDLE); shutdown sends CLOSE(SHUTDOWN)", async () => {
    const f = await fixture({ policy: { idleTimeoutMs: 150 } })
    const p = await f.pair("d11")
    // a confirmed (live) session idles out after idleTimeoutMs
    const conn = await connectTicketed(f.client(p))
    assert.equal(await conn.recv(2000), null)
    assert.equal(conn.closeCode, Code.IDLE)
    const conn2 = await connectTicketed(f.client(p))
    await f.gw.close()
    assert.equal(await conn2.recv(2000), null)
    assert.equal(conn2.closeCode, Code.SHUTDOWN)
    assert.equal(Phase.Closed, 3)
})

test("chain limit and min_generation refuse the ticket; the full handshake follows", async () => {
    const f = await fx({ policy: { chainLimit: 3 } })
    const p = await f.pair("d12")
    const store = new MemoryTicketStore()
    ;(await connectTicketed(f.client(p, store))).close() // full: ticket g2, full_generation 2
    let c = await connectTicketed(f.client(p, store)) // issued 2 - full 2 = 0 < 2: resumes, gets g3
    assert.equal(c.resumed, true)
    c.close()
    c = await connectTicketed(f.client(p, store)) // 3 - 2 = 1 < 2: resumes, gets g4
    assert.equal(c.resumed, true)
    c.close()
    c = await connectTicketed(f.client(p, store)) // 4 - 2 = 2: refused, full handshake (g5, a new chain)
    assert.equal(c.fellBack, true)
    c.close()
    c = await f.client(p, store).connect() // the new chain's ticket resumes
    assert.equal(c.resumed, true)
    c.close()
    const id = p.deviceId.toString("hex")
    const rec = await f.registry.getDevice(id)
    await f.registry.putDevice({ ...rec!, min_generation: rec!.issued_generation + 1 })
    c = await f.client(p, store).connect()
    assert.equal(c.fellBack, true)
    c.close()
    assert.ok(f.logs.some(l => l.detail === "ticket: chain limit"))
    assert.ok(f.logs.some(l => typeof l.detail === "string" && /generation 5 outside 6\.\.5/.test(l.detail)))
})

test("onData's session link: one object per session, reaching that session only, inert once it is replaced", async () => {
    const seen: { content: string; link: import("../src/server.js").SessionLink }[] = []
    const f = await fx({ onData: (_d, c, link) => void seen.push({ content: c.toString(), link }) })
    const p = await f.pair("linked")
    const a = await f.client(p).connect()
    a.send(Buffer.from("a1"))
    a.send(Buffer.from("a2"))
    assert.ok(await until(() => seen.length === 2))
    assert.equal(seen[0]?.link, seen[1]?.link, "the same link for one session")
    const b = await f.client(p).connect()
    b.send(Buffer.from("b1"))
    assert.ok(await until(() => seen.length === 3))
    assert.notEqual(seen[2]?.link, seen[0]?.link)
    assert.equal(await a.recv(), null, "a was replaced")
    assert.equal(seen[0]?.link.send(Buffer.from("to-old")), false, "the old session's link sends nothing")
    assert.equal(seen[2]?.link.send(Buffer.from("to-b")), true)
    assert.equal((await b.recv())?.toString(), "to-b")
    b.close()
})
