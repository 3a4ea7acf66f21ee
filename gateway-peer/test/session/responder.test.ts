// The pure Responder, driven frame by frame without a socket: the committed vectors
// (tether-kk.json, tether-resume.json: fixed keys, ephemerals, nonces and `now`) give the exact
// frames it must send; the rest is PROTOCOL.md 4.1, 6.2, 6.4, 7 and 8 state by state. A counting
// DH shows what costs X25519.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { keyPairFromPrivate, x25519, x25519Base } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import { newDevice, type DeviceRecord } from "../../src/registry/registry.js"
import { encodeHsInit, readHsResp, writeHsInit } from "../../src/session/handshake.js"
import { Phase, Responder, type ResponderContext, type ResponderState, type Step } from "../../src/session/responder.js"
import { encodeResumeInit } from "../../src/session/resume.js"
import type { Session } from "../../src/session/session.js"
import { decodeTicketContent, peekTicket, TicketKeySet } from "../../src/tickets.js"
import { Code, encodeFrame, FrameType, HEADER_LEN, InnerType, RESUME_NONCE_LEN, TAG_LEN, TICKET_LEN, type Frame } from "../../src/wire.js"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "test", "vectors", "generated")
const load = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8")).tests as any[] // eslint-disable-line @typescript-eslint/no-explicit-any
const b = (h: string) => Buffer.from(h, "hex")
const hex = (x: Buffer) => x.toString("hex")
/** A whole frame of a vector as the decoder hands it over. */
const frameOf = (h: string): Frame => ({ type: b(h)[2] as number, body: b(h).subarray(HEADER_LEN) })

const KK = load("tether-kk.json")[0]
const RESUME = load("tether-resume.json")
const EARLY_ACCEPTED_CASE = RESUME[0]
const NO_EARLY_CASE = RESUME[1]
const ALREADY_ACCEPTED_CASE = RESUME[2]

interface Setup {
    responder: Responder
    registry: MemoryRegistry
    dh: { n: number }
    deviceId: string
}

/** The vector's gateway: its keys, ephemeral, nonce_r and clock, and its device in a memory registry. */
async function setup(
    v: { now: number; ticket_key_id: number; ticket_key: string; nonce_r?: string },
    device: Partial<DeviceRecord> = {},
    extra: Partial<ResponderContext> = {}
): Promise<Setup> {
    const registry = new MemoryRegistry()
    const deviceId = KK.device_id as string
    await registry.putDevice({
        ...newDevice({ id: deviceId, name: "vector-device", publicKey: b(KK.device_static_public), psk: b(KK.psk), now: v.now }),
        ...device,
    })
    const dh = { n: 0 }
    const ctx: ResponderContext = {
        registry,
        identity: keyPairFromPrivate(b(KK.gateway_static_private)),
        ticketKeys: TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key), createdAt: v.now }]),
        now: () => v.now,
        ephemeral: () => keyPairFromPrivate(b(KK.gateway_ephemeral_private)),
        rng: n => {
            assert.equal(n, RESUME_NONCE_LEN, "the only randomness a responder draws is nonce_r")
            return b(v.nonce_r ?? "")
        },
        dh: {
            x25519: (k, u) => {
                dh.n++
                return x25519(k, u)
            },
            x25519Base: k => {
                dh.n++
                return x25519Base(k)
            },
        },
        ssCache: new Map(),
        ...extra,
    }
    return { responder: new Responder(ctx), registry, dh, deviceId }
}

/** The registry state of a resume vector: `generation` issued, `accepted_generation` accepted, one full handshake at 1. */
const resumeDevice = (v: { generation: number; accepted_generation: number }): Partial<DeviceRecord> => ({
    issued_generation: v.generation,
    accepted_generation: v.accepted_generation,
    full_generation: 1,
})

const rejectFrame = (code: number) => encodeFrame(FrameType.REJECT, Buffer.from([code]))

function assertReject(step: Step, code: number, next: number = Phase.Closed): void {
    assert.deepEqual(step.frames, [rejectFrame(code)])
    assert.deepEqual(step.delivered, [])
    assert.equal(step.next.phase, next)
    assert.equal(step.close, next === Phase.Closed)
}

function established(s: ResponderState): Extract<ResponderState, { phase: typeof Phase.Established }> {
    assert.equal(s.phase, Phase.Established)
    return s as Extract<ResponderState, { phase: typeof Phase.Established }>
}

/** The device's session of the KK vector: its HS_INIT again, and the vector's HS_RESP read. */
function deviceSession(): Session {
    const keys = {
        deviceId: b(KK.device_id),
        s: keyPairFromPrivate(b(KK.device_static_private)),
        rs: b(KK.gateway_static_public),
        psk: b(KK.psk),
    }
    const done = readHsResp(writeHsInit(keys, keyPairFromPrivate(b(KK.device_ephemeral_private))), frameOf(KK.hs_resp).body)
    assert.ok(done)
    return done.session
}

/** A RESUME_INIT whose ticket opens under no key: TICKET_REJECTED. */
const forgedResume: Frame = {
    type: FrameType.RESUME_INIT,
    body: encodeResumeInit(Buffer.alloc(TICKET_LEN, 9), Buffer.alloc(RESUME_NONCE_LEN), Buffer.alloc(TAG_LEN)),
}

/** The gateway's side of the KK vector after HS_INIT. */
async function fullHandshake(): Promise<Setup & { step: Step }> {
    const s = await setup(KK)
    const step = await s.responder.receive(frameOf(KK.hs_init))
    return { ...s, step }
}

test("HS_INIT -> Established with the vector's exact HS_RESP and TICKET record, then records both ways", async () => {
    const { responder, registry, dh, step, deviceId } = await fullHandshake()
    assert.deepEqual(step.frames.map(hex), [KK.hs_resp, KK.record_ticket])
    assert.deepEqual(step.delivered, [])
    assert.equal(step.close, false)
    assert.equal(step.event?.outcome, "full-handshake")
    assert.equal(step.event?.generation, KK.generation)
    const s = established(responder.state)
    assert.equal(s.resumed, false)
    assert.equal(s.device.id, deviceId)
    assert.equal(dh.n, 4, "ss (then cached), es, ee, se")
    const rec = await registry.getDevice(deviceId)
    assert.equal(rec?.issued_generation, KK.generation)
    assert.equal(rec?.full_generation, KK.generation)
    // the device's record (n = 0) is delivered; the gateway's record (n = 1) is the vector's
    const up = await responder.receive(frameOf(KK.record_data_i2r))
    assert.deepEqual(up.delivered.map(hex), [KK.data_i2r])
    assert.equal(up.next, responder.state, "a record keeps the state object")
    assert.deepEqual(responder.data(b(KK.data_r2i)).map(hex), [KK.record_data_r2i])
})

test("the TICKET record carries ticket || resumption_secret, expiring after the policy's lifetime", async () => {
    const { step } = await fullHandshake()
    const tk = frameOf(KK.record_ticket)
    assert.deepEqual(step.frames[1], encodeFrame(tk.type, tk.body))
    // an overridden lifetime moves expires_at: the responder reads the policy, not a constant
    const short = await setup(KK, {}, { policy: { ticketLifetime: 60 } })
    const r = await short.responder.receive(frameOf(KK.hs_init))
    assert.equal(hex(r.frames[0] as Buffer), KK.hs_resp, "HS_RESP does not depend on the lifetime")
    assert.notEqual(hex(r.frames[1] as Buffer), KK.record_ticket)
    const rec = deviceSession().decrypt((r.frames[1] as Buffer).subarray(HEADER_LEN))
    assert.equal(rec?.type, InnerType.TICKET)
    const content = decodeTicketContent(rec!.content)
    assert.ok(content)
    assert.equal(peekTicket(content.ticket)?.expiresAt, KK.now + 60)
})

test("RESUME_INIT: each resume vector's exact RESUME_RESP and TICKET record; early data delivered once when newer", async () => {
    for (const v of RESUME) {
        const { responder, registry, dh, deviceId } = await setup(v, resumeDevice(v))
        const step = await responder.receive(frameOf(v.resume_init))
        assert.deepEqual(step.frames.map(hex), [v.resume_resp, v.record_ticket], v.name)
        assert.deepEqual(step.delivered.map(hex), v.flags === 1 ? [v.early_data] : [], v.name)
        assert.equal(step.event?.earlyAccepted, v.flags === 1)
        assert.equal(established(responder.state).resumed, true)
        assert.equal(dh.n, 0, "a resumption costs no X25519")
        const rec = await registry.getDevice(deviceId)
        assert.equal(rec?.issued_generation, v.next_generation)
        assert.equal(rec?.accepted_generation, Math.max(v.generation, v.accepted_generation))
        assert.equal(rec?.full_generation, 1, "a resumption is not a full handshake")
        assert.deepEqual((await responder.receive(frameOf(v.record_data_i2r))).delivered.map(hex), [v.data_i2r])
        assert.deepEqual(responder.data(b(v.data_r2i)).map(hex), [v.record_data_r2i])
    }
    assert.equal(NO_EARLY_CASE.early, false)
    assert.equal(ALREADY_ACCEPTED_CASE.flags, 0)
})

test("a replayed RESUME_INIT resumes but does not deliver its early data twice", async () => {
    const v = EARLY_ACCEPTED_CASE
    const first = await setup(v, resumeDevice(v))
    const a = await first.responder.receive(frameOf(v.resume_init))
    assert.deepEqual(a.delivered.map(hex), [v.early_data])
    for (let i = 0; i < 3; i++) {
        // the replay arrives on a new connection of the same gateway (same registry)
        const again = new Responder(first.responder.ctx)
        const r = await again.receive(frameOf(v.resume_init))
        assert.equal(r.frames[0]?.[2], FrameType.RESUME_RESP)
        assert.deepEqual(r.delivered, [], `replay ${i}`)
        assert.equal(r.event?.earlyAccepted, false)
        assert.equal(hex(r.frames[0] as Buffer), ALREADY_ACCEPTED_CASE.resume_resp, "flags clear, as in the already-accepted vector")
    }
    const rec = await first.registry.getDevice(first.deviceId)
    assert.equal(rec?.accepted_generation, v.generation)
    assert.equal(rec?.issued_generation, v.generation + 4, "each replay is issued a ticket (PROTOCOL.md 9.4)")
})

test("unknown and revoked devices: REJECT(UNKNOWN_DEVICE) with zero DH calls", async () => {
    const { responder, dh } = await setup(KK)
    const stranger = encodeHsInit(Buffer.alloc(8, 0xee), frameOf(KK.hs_init).body.subarray(9))
    assertReject(await responder.receive({ type: FrameType.HS_INIT, body: stranger }), Code.UNKNOWN_DEVICE)
    assert.equal(dh.n, 0)
    const revoked = await setup(KK, { revoked: true })
    assertReject(await revoked.responder.receive(frameOf(KK.hs_init)), Code.UNKNOWN_DEVICE)
    assert.equal(revoked.dh.n, 0)
    // a payload in HS_INIT is refused after the lookup, still before any X25519
    const withPayload = await setup(KK)
    const longer = Buffer.concat([frameOf(KK.hs_init).body, Buffer.from([0])])
    assertReject(await withPayload.responder.receive({ type: FrameType.HS_INIT, body: longer }), Code.HANDSHAKE_FAILED)
    assert.equal(withPayload.dh.n, 0)
})

test("bad version and bad lengths, before anything else", async () => {
    const hsInit = frameOf(KK.hs_init).body
    const cases: [Frame, number][] = [
        [{ type: FrameType.HS_INIT, body: Buffer.from([2, ...hsInit.subarray(1)]) }, Code.UNSUPPORTED_VERSION],
        [{ type: FrameType.HS_INIT, body: Buffer.from([2]) }, Code.UNSUPPORTED_VERSION],
        [{ type: FrameType.HS_INIT, body: Buffer.alloc(0) }, Code.PROTOCOL_ERROR],
        [{ type: FrameType.HS_INIT, body: hsInit.subarray(0, hsInit.length - 1) }, Code.PROTOCOL_ERROR],
        [
            { type: FrameType.RESUME_INIT, body: Buffer.from([0, ...frameOf(NO_EARLY_CASE.resume_init).body.subarray(1)]) },
            Code.UNSUPPORTED_VERSION,
        ],
        [{ type: FrameType.RESUME_INIT, body: Buffer.from([1, 2, 3]) }, Code.PROTOCOL_ERROR],
        [{ type: FrameType.RESUME_INIT, body: Buffer.alloc(0) }, Code.PROTOCOL_ERROR],
    ]
    for (const [f, code] of cases) {
        const { responder, dh, registry, deviceId } = await setup(NO_EARLY_CASE, resumeDevice(NO_EARLY_CASE))
        assertReject(await responder.receive(f), code)
        assert.equal(dh.n, 0)
        assert.equal((await registry.getDevice(deviceId))?.issued_generation, NO_EARLY_CASE.generation, "nothing issued")
    }
})

test("a corrupted HS_INIT in AwaitHsInit: HANDSHAKE_FAILED, nothing stored, nothing issued", async () => {
    const { responder, registry, deviceId } = await setup(KK)
    assertReject(await responder.receive(forgedResume), Code.TICKET_REJECTED, Phase.AwaitHsInit)
    const before = responder.state
    const recBefore = { ...(await registry.getDevice(deviceId)) }
    for (const i of [0, 9, 40, 56]) {
        // a connection of its own in AwaitHsInit for each corruption: a failure closes it
        const r = new Responder(responder.ctx)
        await r.receive(forgedResume)
        assert.equal(r.state.phase, Phase.AwaitHsInit)
        const body = Buffer.from(frameOf(KK.hs_init).body)
        body[i] = (body[i] as number) ^ 1
        assertReject(
            await r.receive({ type: FrameType.HS_INIT, body }),
            i === 0 ? Code.UNSUPPORTED_VERSION : i < 9 ? Code.UNKNOWN_DEVICE : Code.HANDSHAKE_FAILED
        )
    }
    assert.deepEqual(before, { phase: Phase.AwaitHsInit }, "the state object was not touched")
    assert.equal(responder.state, before)
    assert.deepEqual({ ...(await registry.getDevice(deviceId)) }, recBefore, "no generation issued, no full handshake marked")
    // and the genuine HS_INIT still gives the vector's frames on the untouched connection
    const ok = await responder.receive(frameOf(KK.hs_init))
    assert.deepEqual(ok.frames.map(hex), [KK.hs_resp, KK.record_ticket])
})

test("a corrupted RECORD in Established: closed silently, nothing delivered, the state's n unchanged", async () => {
    const { responder } = await fullHandshake()
    const before = established(responder.state)
    const snapshot = {
        device: before.device,
        session: before.session,
        resumed: before.resumed,
        n: before.session.recv.n,
        sendN: before.session.send.n,
    }
    for (const i of [0, 3, 20]) {
        const body = Buffer.from(frameOf(KK.record_data_i2r).body)
        body[i] = (body[i] as number) ^ 1
        const again = await fullHandshake()
        const s = established(again.responder.state)
        const step = await again.responder.receive({ type: FrameType.RECORD, body })
        assert.deepEqual(step.frames, [], "no answer after a session exists")
        assert.deepEqual(step.delivered, [])
        assert.equal(step.close, true)
        assert.equal(step.event?.outcome, "bad-record")
        assert.equal(s.session.recv.n, 0, `byte ${i}: n did not move`)
        assert.equal(s.session.send.n, 1, "only the TICKET was sent")
    }
    assert.equal(before.session.recv.n, snapshot.n)
    assert.equal(before.device, snapshot.device)
    // the untouched connection still takes the genuine record
    assert.deepEqual((await responder.receive(frameOf(KK.record_data_i2r))).delivered.map(hex), [KK.data_i2r])
})

test("a transition that throws (registry down) leaves the state exactly as it was", async () => {
    const { responder, registry } = await setup(KK)
    const before = responder.state
    registry.getDevice = async () => {
        throw new Error("registry unavailable")
    }
    await assert.rejects(responder.receive(frameOf(KK.hs_init)), /registry unavailable/)
    assert.equal(responder.state, before)
})

test("wrong frame types: PROTOCOL_ERROR before a session, silent close after (PROTOCOL.md 2.1, 7, 8)", async () => {
    for (const t of [FrameType.HS_RESP, FrameType.RESUME_RESP, FrameType.RECORD, FrameType.REJECT, 0x55]) {
        const { responder } = await setup(KK)
        assertReject(await responder.receive({ type: t, body: Buffer.alloc(10) }), Code.PROTOCOL_ERROR)
    }
    for (const t of [FrameType.HS_INIT, FrameType.RESUME_INIT, FrameType.HS_RESP, FrameType.RESUME_RESP, FrameType.REJECT, 0x55]) {
        const { responder } = await fullHandshake()
        const s = established(responder.state)
        const step = await responder.receive(t === FrameType.HS_INIT ? frameOf(KK.hs_init) : { type: t, body: Buffer.alloc(57, 1) })
        assert.deepEqual(step.frames, [])
        assert.equal(step.close, true)
        assert.equal(step.next.phase, Phase.Closed)
        assert.equal(s.session.dead, true, "the session is closed")
        const after = await responder.receive(frameOf(KK.record_data_i2r))
        assert.deepEqual([after.frames, after.delivered, after.close], [[], [], true], "Closed answers nothing")
    }
    // a TICKET record from the device: "gateway -> device only"
    const { responder } = await fullHandshake()
    const [body] = deviceSession().encrypt(InnerType.TICKET, Buffer.alloc(65))
    const step = await responder.receive({ type: FrameType.RECORD, body: body as Buffer })
    assert.deepEqual([step.frames, step.delivered, step.close], [[], [], true])
})

test("REJECT(TICKET_REJECTED) -> AwaitHsInit accepts HS_INIT only; the full handshake then matches the vector", async () => {
    // the chain limit refuses the vector's ticket: 5 - 1 >= 4
    const { responder, dh } = await setup(NO_EARLY_CASE, resumeDevice(NO_EARLY_CASE), { policy: { chainLimit: 4 } })
    const refused = await responder.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(refused, Code.TICKET_REJECTED, Phase.AwaitHsInit)
    assert.equal(refused.event?.detail, "ticket: chain limit")
    assert.equal(dh.n, 0)
    // one resumption attempt per connection
    const second = new Responder(responder.ctx)
    await second.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(await second.receive(frameOf(NO_EARLY_CASE.resume_init)), Code.PROTOCOL_ERROR)
    const third = new Responder(responder.ctx)
    await third.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(await third.receive(frameOf(KK.record_data_i2r)), Code.PROTOCOL_ERROR)
    // HS_INIT on the first connection: the KK vector's device is this registry's device, but
    // its generations differ from the KK vector's, so compare HS_RESP exactly and the TICKET by type
    const full = await responder.receive(frameOf(KK.hs_init))
    assert.equal(hex(full.frames[0] as Buffer), KK.hs_resp)
    assert.equal(full.frames.length, 2)
    assert.equal(established(responder.state).resumed, false)
    // with the default chain limit (64) the same ticket resumes
    const fine = await setup(NO_EARLY_CASE, resumeDevice(NO_EARLY_CASE))
    assert.deepEqual((await fine.responder.receive(frameOf(NO_EARLY_CASE.resume_init))).frames.map(hex), [
        NO_EARLY_CASE.resume_resp,
        NO_EARLY_CASE.record_ticket,
    ])
})
