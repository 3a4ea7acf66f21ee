// The server's per-connection object without a network: a socket twin that records what is
// written (and how it was batched), a host twin that records what the server would be told, and
// a fake clock. Then the per-source window through the real server, with the clock moved by
// hand instead of sleeping.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Connection, ConnPhase, type ConnectionHost, type ConnectionSocket, type LogLine } from "../src/connection.js"
import { keyPairFromPrivate } from "../src/crypto/x25519.js"
import { resolvePolicy, type ServerPolicy } from "../src/policy.js"
import { MemoryRegistry } from "../src/registry/memory.js"
import { newDevice, type DeviceRecord } from "../src/registry/registry.js"
import { Phase, Responder } from "../src/session/responder.js"
import { Session } from "../src/session/session.js"
import { SourceAttempts } from "../src/server.js"
import { TicketKeySet } from "../src/tickets.js"
import { encodeResumeInit } from "../src/session/resume.js"
import { AGE_LEN, Code, encodeFrame, FrameType, InnerType, NONCE_I_LEN, NONCE_R_LEN, TAG_LEN, TICKET_LEN } from "../src/wire.js"
import { RejectedError } from "../peer/initiator.js"
import { fixtures } from "./helpers.js"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "vectors", "generated")
const KK = JSON.parse(readFileSync(join(dir, "tether-kk.json"), "utf8")).tests[0]
const b = (h: string) => Buffer.from(h, "hex")
const hex = (x: Buffer) => x.toString("hex")

/** Writes in batches: a corked run of writes is one batch, an uncorked write is a batch of one. */
class SocketTwin implements ConnectionSocket {
    readonly batches: Buffer[][] = []
    #corked: Buffer[] | undefined
    ended = 0
    destroyed = 0
    writableLength = 0
    write(data: Buffer): boolean {
        if (this.#corked !== undefined) this.#corked.push(data)
        else this.batches.push([data])
        return true
    }
    cork(): void {
        this.#corked = []
    }
    uncork(): void {
        if (this.#corked !== undefined && this.#corked.length > 0) this.batches.push(this.#corked)
        this.#corked = undefined
    }
    end(): void {
        this.ended++
    }
    destroy(): void {
        this.destroyed++
    }
}

interface HostTwin extends ConnectionHost {
    readonly logs: LogLine[]
    readonly calls: string[]
    readonly delivered: Buffer[]
    /** the early flag of each delivery */
    readonly early: boolean[]
    admitting: boolean
    time: number
}

function hostTwin(policy: Partial<ServerPolicy> = {}): HostTwin {
    const h: HostTwin = {
        policy: resolvePolicy(policy),
        clock: { nowMs: () => h.time },
        logs: [],
        calls: [],
        delivered: [],
        early: [],
        admitting: true,
        time: 1_767_225_600_000,
        log: l => h.logs.push(l),
        admit: () => {
            h.calls.push(`admit:${h.admitting}`)
            return h.admitting
        },
        handshakeEnded: () => void h.calls.push("handshakeEnded"),
        established: (_c, d) => {
            h.calls.push(`established:${d.name}`)
            return true
        },
        confirmed: (_c, d) => void h.calls.push(`confirmed:${d.name}`),
        closed: (_c, d?: DeviceRecord) => void h.calls.push(`closed:${d?.name ?? "-"}`),
        deliver: (_d, content, _c, early) => {
            h.delivered.push(content)
            h.early.push(early)
        },
    }
    return h
}

/** The KK vector's gateway as a Responder: its device on the vector's pseudonym, generation 4 issued. */
async function vectorResponder(): Promise<Responder> {
    const registry = new MemoryRegistry()
    await registry.putDevice({
        ...newDevice({ id: KK.device_id, name: "vector-device", publicKey: b(KK.device_static_public), psk: b(KK.psk), now: KK.now }),
        issued_generation: 4,
        accepted_generation: 3,
        full_generation: 1,
        pseudonym: b(KK.pseudonym),
    })
    return new Responder({
        registry,
        identity: keyPairFromPrivate(b(KK.gateway_static_private)),
        ticketKeys: TicketKeySet.fromKeys([{ id: KK.ticket_key_id, key: b(KK.ticket_key), createdAt: KK.now }]),
        now: () => KK.now,
        ephemeral: () => keyPairFromPrivate(b(KK.gateway_ephemeral_private)),
        rng: n => (n === NONCE_R_LEN ? Buffer.alloc(n) : b(KK.next_pseudonym)),
    })
}

async function connection(policy: Partial<ServerPolicy> = {}) {
    const socket = new SocketTwin()
    const host = hostTwin(policy)
    const c = new Connection(socket, "192.0.2.7", await vectorResponder(), host)
    return { socket, host, c }
}

/** The Connection's phase and its Responder's agree whenever no step is in flight. */
function agrees(c: Connection): boolean {
    const r = c.responder.state.phase
    if (c.phase === ConnPhase.Established) return r === Phase.Established
    if (c.phase === ConnPhase.Handshaking) return r === Phase.AwaitFirst || r === Phase.AwaitHsInit
    return true // Closed: the Responder may be in any state, nothing reads it again
}

test("HS_INIT split over two chunks: HS_RESP alone, Established, indexed, the clock's ms logged; the TICKET follows the first record", async () => {
    const { socket, host, c } = await connection()
    assert.equal(c.phase, ConnPhase.Handshaking)
    const frame = b(KK.hs_init)
    host.time += 25
    c.receive(frame.subarray(0, 20))
    c.receive(frame.subarray(20))
    await c.settled
    assert.deepEqual(
        socket.batches.map(x => x.map(hex)),
        [[KK.hs_resp]],
        "the answer alone: no TICKET before the device's first record"
    )
    assert.equal(c.phase, ConnPhase.Established)
    assert.ok(agrees(c))
    assert.equal(c.device?.name, "vector-device")
    assert.ok(c.session)
    assert.deepEqual(host.calls, ["admit:true", "handshakeEnded", "established:vector-device"])
    const line = host.logs.find(l => l.outcome === "full-handshake")
    assert.ok(line)
    assert.equal(line.ms, 25, "ms comes from the injected clock")
    assert.equal(line.ts, new Date(host.time).toISOString())
    assert.equal(line.source, "192.0.2.7")
    // the first record: delivered (not as early data), and the TICKET it brings in one write
    c.receive(b(KK.record_data_i2r))
    await c.settled
    assert.deepEqual(host.delivered.map(hex), [KK.data_i2r])
    assert.deepEqual(host.early, [false])
    assert.deepEqual(socket.batches.at(-1)?.map(hex), [KK.record_ticket])
    assert.ok(host.logs.some(l => l.outcome === "confirmed"))
    c.send(b(KK.data_r2i))
    assert.deepEqual(socket.batches.at(-1)?.map(hex), [KK.record_data_r2i])
    // close(): CLOSE record, end (not destroy), forgotten by the server once
    c.close(Code.REVOKED, "closed")
    c.close(Code.REVOKED, "closed")
    c.finish(true)
    c.peerGone()
    assert.equal(c.phase, ConnPhase.Closed)
    assert.equal(socket.ended, 1)
    assert.equal(socket.destroyed, 0)
    assert.equal(host.calls.filter(x => x.startsWith("closed")).length, 1)
    assert.deepEqual(host.calls.at(-1), "closed:vector-device")
    assert.equal(host.logs.filter(l => l.outcome === "closed").length, 1)
    assert.ok(!host.logs.some(l => l.outcome === "peer-gone"), "a connection we closed is not logged as gone")
    const before = socket.batches.length
    c.receive(b(KK.record_data_i2r))
    await c.settled
    assert.equal(socket.batches.length, before, "bytes after close are ignored")
})

test("accepted early data: RESUME_RESP and the TICKET in one corked batch, delivered as early, established confirmed", async () => {
    const RESUME = JSON.parse(readFileSync(join(dir, "tether-resume.json"), "utf8")).tests
    for (const v of [RESUME[0], RESUME[1]]) {
        const registry = new MemoryRegistry()
        await registry.putDevice({
            ...newDevice({ id: v.device_id, name: "vector-device", publicKey: b(KK.device_static_public), psk: b(KK.psk), now: v.now }),
            issued_generation: v.generation,
            accepted_generation: v.accepted_generation,
            full_generation: 1,
        })
        const responder = new Responder({
            registry,
            identity: keyPairFromPrivate(b(KK.gateway_static_private)),
            ticketKeys: TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key), createdAt: v.now }]),
            now: () => v.now,
            nowMs: () => v.now_ms,
            rng: n => (n === NONCE_R_LEN ? b(v.nonce_r) : b(v.next_pseudonym)),
        })
        const socket = new SocketTwin()
        const host = hostTwin()
        const established: boolean[] = []
        host.established = (_c, _d, confirmed) => {
            established.push(confirmed)
            return true
        }
        const c = new Connection(socket, "192.0.2.7", responder, host)
        c.receive(b(v.resume_init))
        await c.settled
        const accepted = v.flags === 1
        assert.deepEqual(
            socket.batches.map(x => x.map(hex)),
            [accepted ? [v.resume_resp, v.record_ticket] : [v.resume_resp]],
            v.name
        )
        assert.deepEqual(established, [accepted], "accepted early data is a confirmed session")
        assert.deepEqual(host.delivered.map(hex), accepted ? [v.early_data] : [])
        assert.deepEqual(host.early, accepted ? [true] : [])
        c.receive(b(v.record_data_i2r))
        await c.settled
        assert.deepEqual(host.early.at(-1), false, "a record is not early data")
        assert.deepEqual(socket.batches.at(-1)?.map(hex), accepted ? [v.resume_resp, v.record_ticket] : [v.record_ticket])
        c.finish(true)
    }
})

test("refused by the server's limits: REJECT(BUSY), ended, never counted as a handshake", async () => {
    const { socket, host, c } = await connection()
    host.admitting = false
    c.receive(b(KK.hs_init))
    await c.settled
    assert.deepEqual(socket.batches, [[encodeFrame(FrameType.REJECT, Buffer.from([Code.BUSY]))]])
    assert.equal(c.phase, ConnPhase.Closed)
    assert.deepEqual(host.calls, ["admit:false", "closed:-"])
    assert.equal(socket.ended, 1)
    assert.equal(c.responder.state.phase, Phase.AwaitFirst, "the Responder never saw the frame")
})

test("a wrong frame type before a handshake frame is not admitted; a refused ticket releases its handshake slot", async () => {
    const { socket, host, c } = await connection()
    c.receive(encodeFrame(FrameType.RECORD, Buffer.alloc(20)))
    await c.settled
    assert.deepEqual(socket.batches, [[encodeFrame(FrameType.REJECT, Buffer.from([Code.PROTOCOL_ERROR]))]])
    assert.deepEqual(host.calls, ["closed:-"], "no admit for a frame that starts no handshake")
    const t = await connection()
    t.c.receive(
        encodeFrame(
            FrameType.RESUME_INIT,
            encodeResumeInit(Buffer.alloc(TICKET_LEN, 9), Buffer.alloc(AGE_LEN, 9), Buffer.alloc(NONCE_I_LEN, 9), Buffer.alloc(TAG_LEN, 9))
        )
    )
    await t.c.settled
    assert.equal(t.c.phase, ConnPhase.Handshaking)
    assert.ok(agrees(t.c))
    t.c.receive(b(KK.hs_init))
    await t.c.settled
    assert.equal(t.c.phase, ConnPhase.Established)
    assert.deepEqual(
        t.host.calls,
        ["admit:true", "handshakeEnded", "admit:true", "handshakeEnded", "established:vector-device"],
        "the slot is released at TICKET_REJECTED and HS_INIT is admitted against the cap again"
    )
    t.c.finish(true)
    assert.equal(t.socket.destroyed, 1)
})

test("a bad length field: logged, destroyed, forgotten; a finished handshake is uncounted exactly once", async () => {
    const { socket, host, c } = await connection()
    c.receive(b(KK.hs_init).subarray(0, 30)) // half a frame: nothing yet
    await c.settled
    assert.deepEqual(host.calls, [])
    const t = await connection()
    t.c.receive(Buffer.from([0xff, 0xff, 1]))
    await t.c.settled
    assert.equal(t.c.phase, ConnPhase.Closed)
    assert.equal(t.socket.destroyed, 1)
    assert.ok(t.host.logs.some(l => l.outcome === "bad-frame-length"))
    // a counted handshake that ends in a REJECT is uncounted at finish
    const u = await connection()
    const body = Buffer.from(b(KK.hs_init).subarray(3))
    body[40] = (body[40] as number) ^ 1
    u.c.receive(encodeFrame(FrameType.HS_INIT, body))
    await u.c.settled
    assert.deepEqual(u.host.calls, ["admit:true", "handshakeEnded", "closed:-"])
    assert.deepEqual(u.socket.batches, [[encodeFrame(FrameType.REJECT, Buffer.from([Code.HANDSHAKE_FAILED]))]])
    c.finish(true)
    assert.equal(socket.destroyed, 1)
})

test("SourceAttempts: fixed windows per source, time passed in", () => {
    const a = new SourceAttempts(10_000)
    assert.deepEqual([a.count("x", 0), a.count("x", 1), a.count("x", 9_999)], [1, 2, 3])
    assert.equal(a.count("y", 5_000), 1, "sources count apart")
    assert.equal(a.count("x", 10_000), 1, "the window ends windowMs after its first attempt")
    assert.equal(a.count("x", 19_999), 2)
    assert.equal(a.count("y", 14_999), 2)
    assert.equal(a.count("y", 15_000), 1)
})

test("SourceAttempts drops the entries of ended windows once the table has doubled, and counts the same", () => {
    const a = new SourceAttempts(1_000)
    for (let i = 0; i < 1024; i++) a.count(`old-${i}`, 0)
    assert.equal(a.size, 1024)
    a.count("old-0", 500) // a known source never sweeps
    assert.equal(a.size, 1024)
    a.count("new-0", 1_000) // a new source at the threshold: every ended window goes
    assert.equal(a.size, 1)
    assert.equal(a.count("old-1", 1_000), 1, "a dropped source starts afresh, as it would have anyway")
    for (let i = 0; i < 1100; i++) a.count(`live-${i}`, 1_500) // sweeps at 1024 entries, all in their window
    assert.equal(a.size, 1102, "entries still in their window are kept")
    assert.equal(a.count("live-0", 1_999), 2)
    assert.equal(a.count("new-0", 1_999), 2)
})

const fx = fixtures()

test("the per-source limit follows the injected clock: BUSY within the window, admitted once it moved on", async () => {
    const clock = { ms: 1_000_000 }
    const f = await fx({ policy: { perSourceAttempts: 2, perSourceWindowMs: 60_000 }, clock: { nowMs: () => clock.ms } })
    const p = await f.pair("windowed")
    ;(await f.client(p).connect()).close()
    clock.ms += 59_999
    ;(await f.client(p).connect()).close()
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.BUSY)
    clock.ms += 1 // 60 s after the window's first attempt, on the gateway's clock only
    ;(await f.client(p).connect()).close()
    const busy = f.logs.find(l => l.code === "BUSY")
    assert.ok(busy)
    assert.equal(busy.ts, new Date(1_059_999).toISOString(), "log timestamps come from the injected clock too")
})

test("issue 15: a confirmed session's records go to the application within receive(), in order; the first waits for the registry and holds the rest", async () => {
    const { host, c } = await connection()
    c.receive(b(KK.hs_init))
    await c.settled
    const s = c.session
    assert.ok(s)
    // the device's sending side: the same key and nonce as the gateway's receiving CipherState
    const device = new Session(s.recv.clone(), s.send.clone())
    const rec = (text: string) =>
        Buffer.concat(device.encrypt(InnerType.DATA, Buffer.from(text)).map(x => encodeFrame(FrameType.RECORD, x)))
    // the first record confirms (the registry: a promise); the two behind it in the same chunk wait
    c.receive(Buffer.concat([rec("one"), rec("two"), rec("three")]))
    const texts = (): string[] => host.delivered.map(x => x.toString())
    assert.deepEqual(texts(), [], "nothing is delivered before the confirmation is written")
    await c.settled
    assert.deepEqual(texts(), ["one", "two", "three"])
    // confirmed: the records of a chunk are delivered before receive() returns, no promise per frame
    c.receive(Buffer.concat([rec("four"), rec("five")]))
    assert.deepEqual(texts(), ["one", "two", "three", "four", "five"], "delivered synchronously")
    // a record split across chunks still arrives whole, and a bad one closes at once
    const six = rec("six")
    c.receive(six.subarray(0, 5))
    c.receive(six.subarray(5))
    assert.equal(texts().at(-1), "six")
    const bad = rec("seven")
    bad.writeUInt8((bad.at(-1) as number) ^ 1, bad.length - 1)
    c.receive(Buffer.concat([bad, rec("eight")]))
    assert.equal(c.phase, ConnPhase.Closed)
    assert.equal(texts().at(-1), "six", "nothing after a record that fails")
    assert.ok(host.logs.some(l => l.outcome === "bad-record"))
})
