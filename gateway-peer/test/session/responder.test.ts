// The pure Responder, driven frame by frame without a socket: the committed vectors
// (tether-kk.json, tether-resume.json: fixed keys, ephemerals, nonces, pseudonyms and clocks)
// give the exact frames it must send; the rest is PROTOCOL.md 4.1, 4.4, 6.2, 6.3, 6.4, 7 and 8
// state by state. A counting DH shows what costs X25519; registry snapshots show that nothing
// moves before a session is confirmed.
import { test } from "node:test"
import assert from "node:assert/strict"
import { keyPairFromPrivate, x25519, x25519Base } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import { newDevice, type DeviceRecord } from "../../src/registry/registry.js"
import { encodeHsInit, readHsResp, writeHsInit } from "../../src/session/handshake.js"
import { isFresh, Phase, Responder, type ResponderContext, type ResponderState, type Step } from "../../src/session/responder.js"
import { encodeResumeInit, obfuscateAge, readResumeResp, writeResumeInit, type ResumePending } from "../../src/session/resume.js"
import type { Session } from "../../src/session/session.js"
import { decodeTicketContent, mintTicket, TicketKeySet, type TicketContent } from "../../src/tickets.js"
import {
    AGE_LEN,
    Code,
    DAY,
    EARLY_ACCEPTED,
    encodeFrame,
    FrameType,
    HEADER_LEN,
    InnerType,
    NONCE_I_LEN,
    NONCE_R_LEN,
    OOB_TICKET_LIFETIME,
    PSEUDONYM_LEN,
    TAG_LEN,
    TICKET_LEN,
    TICKET_LIFETIME,
    type Frame,
} from "../../src/wire.js"
import { readVectors } from "../vectors.js"

type Vector = any // eslint-disable-line @typescript-eslint/no-explicit-any
const load = (f: string) => readVectors<{ tests: Vector[] }>("generated", f).tests
const b = (h: string) => Buffer.from(h, "hex")
const hex = (x: Buffer) => x.toString("hex")
/** A whole frame of a vector as the decoder hands it over. */
const frameOf = (h: string): Frame => ({ type: b(h)[2] as number, body: b(h).subarray(HEADER_LEN) })

const KK = load("tether-kk.json")[0]
const RESUME = load("tether-resume.json")
const EARLY_ACCEPTED_CASE = RESUME[0]
const NO_EARLY_CASE = RESUME[1]
const ALREADY_ACCEPTED_CASE = RESUME[2]
const STALE_CASE = RESUME[3]
const DEVICE_ID = b(KK.device_id)
const DEVICE_STATIC = keyPairFromPrivate(b(KK.device_static_private))

interface Setup {
    responder: Responder
    registry: MemoryRegistry
    ticketKeys: TicketKeySet
    dh: { n: number }
    deviceId: string
    /** a new connection of the same gateway */
    connection(): Responder
    /** the device's record as the registry holds it now */
    record(): Promise<DeviceRecord>
}

/**
 * The vectors' gateway: its keys, ephemeral, nonce_r, next pseudonym and clock, and its device
 * in a memory registry on the pseudonym its last TICKET gave it (the KK vector's HS_INIT carries it).
 */
async function setup(
    v: { now: number; now_ms?: number; ticket_key_id: number; ticket_key: string },
    device: Partial<DeviceRecord> = {},
    extra: Partial<ResponderContext> = {}
): Promise<Setup> {
    const registry = new MemoryRegistry()
    const deviceId = KK.device_id as string
    await registry.putDevice({
        ...newDevice({ id: deviceId, name: "vector-device", publicKey: DEVICE_STATIC.publicKey, psk: b(KK.psk), now: v.now }),
        pseudonym: b(KK.pseudonym),
        ...device,
    })
    const dh = { n: 0 }
    const ticketKeys = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key), createdAt: v.now }])
    const ctx: ResponderContext = {
        registry,
        identity: keyPairFromPrivate(b(KK.gateway_static_private)),
        ticketKeys,
        now: () => v.now,
        nowMs: () => v.now_ms ?? v.now * 1000,
        ephemeral: () => keyPairFromPrivate(b(KK.gateway_ephemeral_private)),
        rng: n => {
            // the only randomness a responder draws: nonce_r, and the next pseudonym of a TICKET
            if (n === NONCE_R_LEN) return b(RESUME[0].nonce_r)
            assert.equal(n, PSEUDONYM_LEN)
            return b(KK.next_pseudonym)
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
    const responder = new Responder(ctx)
    return {
        responder,
        registry,
        ticketKeys,
        dh,
        deviceId,
        connection: () => new Responder(responder.ctx),
        record: async () => (await registry.getDevice(deviceId)) as DeviceRecord,
    }
}

/** The KK vector's registry before its handshake: generation 5 is the one its TICKET gets. */
const kkDevice: Partial<DeviceRecord> = { issued_generation: 4, accepted_generation: 3, full_generation: 1 }

/** The registry state of a resume vector: its ticket's generation issued, in the chain that started at 1. */
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

/** A device's HS_INIT of the KK vector's pairing, under `pseudonym` and a given ephemeral. */
function deviceHsInit(pseudonym: Buffer, ephemeral = b(KK.device_ephemeral_private)) {
    return writeHsInit({ pseudonym, s: DEVICE_STATIC, rs: b(KK.gateway_static_public), psk: b(KK.psk) }, keyPairFromPrivate(ephemeral))
}

/** The device's session of the KK vector: its HS_INIT again, and the vector's HS_RESP read. */
function deviceSession(): Session {
    const done = readHsResp(deviceHsInit(b(KK.pseudonym)), frameOf(KK.hs_resp).body)
    assert.ok(done)
    return done.session
}

/** A RESUME_INIT for a ticket, as a device that measured `ageMs` (undefined: unknown) builds it. */
function resumeInit(t: { ticket: Buffer; secret: Buffer }, ageMs: number | undefined, early?: Buffer): ResumePending & { frame: Frame } {
    const age = obfuscateAge(t.secret, ageMs, n => Buffer.alloc(n, 0x5a))
    const p = writeResumeInit(t, DEVICE_ID, age, Buffer.alloc(NONCE_I_LEN, 0xc1), early)
    return { ...p, frame: { type: FrameType.RESUME_INIT, body: p.body } }
}

/** A ticket for the vector's device, minted with the vector's key. */
function ticketOf(ticketKeys: TicketKeySet, f: { generation: number; issuedAt: number; chainOrigin: number; kind?: "session" | "oob" }) {
    const m = mintTicket({ deviceId: DEVICE_ID, keySet: ticketKeys, ...f })
    return { ticket: m.ticket, secret: m.resumptionSecret }
}

/** The TICKET record's content in a frame the gateway sent on `session`. */
function ticketIn(session: Session, frame: Buffer): TicketContent {
    const r = session.decrypt(frame.subarray(HEADER_LEN))
    assert.equal(r?.type, InnerType.TICKET)
    const t = decodeTicketContent(r!.content)
    assert.ok(t)
    return t
}

/** A RESUME_INIT whose ticket opens under no key: TICKET_REJECTED. */
const forgedResume: Frame = {
    type: FrameType.RESUME_INIT,
    body: encodeResumeInit(Buffer.alloc(TICKET_LEN, 9), Buffer.alloc(AGE_LEN), Buffer.alloc(NONCE_I_LEN), Buffer.alloc(TAG_LEN)),
}

/** The gateway's side of the KK vector after HS_INIT (not confirmed yet). */
async function fullHandshake(): Promise<Setup & { step: Step }> {
    const s = await setup(KK, kkDevice)
    const step = await s.responder.receive(frameOf(KK.hs_init))
    return { ...s, step }
}

/** The gateway's side of the KK vector after HS_INIT and the device's first record (confirmed). */
async function confirmedFullHandshake(): Promise<Setup> {
    const s = await fullHandshake()
    await s.responder.receive(frameOf(KK.record_data_i2r))
    return s
}

test("HS_INIT -> HS_RESP alone; the device's first record confirms: the vector's TICKET, the registry updated once", async () => {
    const { responder, dh, step, deviceId, record } = await fullHandshake()
    const before = await record()
    assert.deepEqual(step.frames.map(hex), [KK.hs_resp], "no TICKET before the device's first record")
    assert.deepEqual(step.delivered, [])
    assert.equal(step.close, false)
    assert.equal(step.event?.outcome, "full-handshake")
    assert.equal(step.event?.generation, undefined)
    const s = established(responder.state)
    assert.equal(s.resumed, false)
    assert.equal(s.device.id, deviceId)
    assert.deepEqual(s.unconfirmed, { full: true })
    assert.equal(dh.n, 4, "ss (then cached), es, ee, se")
    assert.deepEqual(
        [before.issued_generation, before.full_generation, before.accepted_generation, before.pseudonym],
        [4, 1, 3, b(KK.pseudonym)],
        "nothing changed at HS_INIT"
    )
    // the device's record (n = 0) is delivered and brings the vector's TICKET (gateway n = 0)
    const up = await responder.receive(frameOf(KK.record_data_i2r))
    assert.deepEqual(up.delivered.map(hex), [KK.data_i2r])
    assert.deepEqual(up.frames.map(hex), [KK.record_ticket])
    assert.equal(up.event?.outcome, "confirmed")
    assert.equal(up.event?.generation, KK.generation)
    assert.equal(established(responder.state).unconfirmed, undefined)
    const rec = await record()
    assert.equal(rec.issued_generation, KK.generation)
    assert.equal(rec.full_generation, KK.generation, "the full handshake's ticket starts a chain")
    assert.equal(rec.accepted_generation, 3)
    assert.deepEqual(rec.pseudonym, b(KK.next_pseudonym), "the pseudonym in the TICKET")
    assert.deepEqual(rec.previous_pseudonym, b(KK.pseudonym))
    assert.deepEqual(rec.pseudonym0, before.pseudonym0)
    // the next records: delivered, no second TICKET, nothing counted
    const again = deviceSession()
    again.encrypt(InnerType.DATA, b(KK.data_i2r)) // n = 0, sent above
    const [second] = again.encrypt(InnerType.DATA, Buffer.from("more"))
    const next = await responder.receive({ type: FrameType.RECORD, body: second as Buffer })
    assert.deepEqual(next.delivered, [Buffer.from("more")])
    assert.deepEqual(next.frames, [])
    assert.equal(next.next, responder.state, "a record keeps the state object")
    assert.deepEqual(await record(), rec)
    assert.deepEqual(responder.data(b(KK.data_r2i)).map(hex), [KK.record_data_r2i])
})

test("a replayed HS_INIT (5 times) is answered with HS_RESP and changes no registry field", async () => {
    const { responder, record, connection } = await setup(KK, kkDevice)
    const before = await record()
    const first = await responder.receive(frameOf(KK.hs_init))
    assert.deepEqual(first.frames.map(hex), [KK.hs_resp])
    for (let i = 0; i < 5; i++) {
        const r = connection()
        const step = await r.receive(frameOf(KK.hs_init))
        assert.deepEqual(step.frames.map(hex), [KK.hs_resp], `replay ${i}: the gateway cannot tell it from the device`)
        assert.equal(step.close, false)
        // the replayer cannot produce a record: a garbage one closes the session, confirming nothing
        const garbage = await r.receive({ type: FrameType.RECORD, body: Buffer.alloc(30, i) })
        assert.deepEqual([garbage.frames, garbage.close], [[], true])
    }
    assert.deepEqual(await record(), before, "no generation, no chain, no pseudonym moved")
    // the device's own connection then confirms as usual
    const up = await responder.receive(frameOf(KK.record_data_i2r))
    assert.deepEqual(up.frames.map(hex), [KK.record_ticket])
})

test("HS_INIT names the device by any of its three pseudonyms; a rotated-out or unknown one costs no X25519", async () => {
    const s = await confirmedFullHandshake()
    const rec = await s.record()
    // pseudonym (the one in the TICKET), previous_pseudonym (a device that lost it), pseudonym0
    for (const [what, p] of [
        ["pseudonym", rec.pseudonym],
        ["previous_pseudonym", rec.previous_pseudonym],
        ["pseudonym0", rec.pseudonym0],
    ] as const) {
        const pending = deviceHsInit(p)
        const step = await s.connection().receive({ type: FrameType.HS_INIT, body: pending.body })
        assert.equal(step.frames.length, 1, what)
        assert.ok(readHsResp(pending, (step.frames[0] as Buffer).subarray(HEADER_LEN)), `${what}: HS_RESP verifies`)
    }
    // a second confirmation rotates KK.pseudonym out (previous becomes the TICKET's pseudonym)
    const r = s.connection()
    const pending = deviceHsInit(rec.pseudonym0)
    const resp = await r.receive({ type: FrameType.HS_INIT, body: pending.body })
    const done = readHsResp(pending, (resp.frames[0] as Buffer).subarray(HEADER_LEN))
    assert.ok(done)
    const [body] = done.session.encrypt(InnerType.DATA, Buffer.from("x"))
    await r.receive({ type: FrameType.RECORD, body: body as Buffer })
    const after = await s.record()
    assert.deepEqual(after.previous_pseudonym, rec.pseudonym)
    const dh0 = s.dh.n
    for (const p of [b(KK.pseudonym), Buffer.alloc(8, 0xee)])
        assertReject(await s.connection().receive({ type: FrameType.HS_INIT, body: deviceHsInit(p).body }), Code.UNKNOWN_DEVICE)
    assert.equal(s.dh.n, dh0, "refused before any X25519")
})

test("the pseudonym is bound by the prologue: HS_INIT under another device's valid pseudonym fails", async () => {
    const s = await setup(KK, kkDevice)
    // another paired device whose pseudonym the attacker puts in front of this device's message 1
    const other = newDevice({ id: "0000000000000001", name: "other", publicKey: Buffer.alloc(32, 9), psk: Buffer.alloc(32, 7), now: 0 })
    await s.registry.putDevice(other)
    const mine = frameOf(KK.hs_init).body
    const swapped = encodeHsInit(other.pseudonym, mine.subarray(9))
    assertReject(await s.connection().receive({ type: FrameType.HS_INIT, body: swapped }), Code.HANDSHAKE_FAILED)
})

test("RESUME_INIT: each resume vector's exact frames; the TICKET follows RESUME_RESP at once only when early data was accepted", async () => {
    for (const v of RESUME) {
        const { responder, dh, record } = await setup(v, resumeDevice(v))
        const before = await record()
        const step = await responder.receive(frameOf(v.resume_init))
        const accepted = v.flags === EARLY_ACCEPTED
        assert.deepEqual(step.frames.map(hex), accepted ? [v.resume_resp, v.record_ticket] : [v.resume_resp], v.name)
        assert.deepEqual(step.delivered.map(hex), accepted ? [v.early_data] : [], v.name)
        assert.equal(step.early === true, accepted, "delivered as early data")
        assert.equal(step.event?.earlyAccepted, accepted)
        assert.equal(established(responder.state).resumed, true)
        assert.equal(established(responder.state).unconfirmed === undefined, accepted, "accepted early data confirms")
        assert.equal(dh.n, 0, "a resumption costs no X25519")
        const mid = await record()
        if (accepted) {
            assert.equal(mid.issued_generation, v.next_generation)
            assert.equal(mid.accepted_generation, v.generation)
        } else assert.deepEqual(mid, before, `${v.name}: nothing moves before the device's first record`)
        // the device's first record: its early data again when it was not accepted
        const up = await responder.receive(frameOf(v.record_data_i2r))
        assert.deepEqual(up.delivered.map(hex), [v.data_i2r])
        assert.equal(up.early, undefined, "a record is not early data")
        assert.deepEqual(up.frames.map(hex), accepted ? [] : [v.record_ticket], "one TICKET per session")
        const rec = await record()
        assert.equal(rec.issued_generation, v.next_generation)
        assert.equal(rec.accepted_generation, Math.max(v.generation, v.accepted_generation))
        assert.equal(rec.full_generation, 1, "a resumption is not a full handshake")
        assert.deepEqual(rec.pseudonym, b(v.next_pseudonym))
        assert.deepEqual(responder.data(b(v.data_r2i)).map(hex), [v.record_data_r2i])
    }
    assert.equal(NO_EARLY_CASE.early, false)
    assert.equal(ALREADY_ACCEPTED_CASE.flags, 0)
    assert.equal(STALE_CASE.flags, 0)
})

test("100 replays of one RESUME_INIT change no registry field and deliver its early data at most once", async () => {
    const v = EARLY_ACCEPTED_CASE
    const s = await setup(v, resumeDevice(v))
    const a = await s.responder.receive(frameOf(v.resume_init))
    let deliveries = a.delivered.length
    assert.equal(deliveries, 1)
    const after = await s.record()
    for (let i = 0; i < 100; i++) {
        // each replay arrives on a new connection of the same gateway (same registry)
        const r = await s.connection().receive(frameOf(v.resume_init))
        deliveries += r.delivered.length
        assert.equal(hex(r.frames[0] as Buffer), ALREADY_ACCEPTED_CASE.resume_resp, "answered, flags clear")
        assert.equal(r.frames.length, 1, `replay ${i}: no TICKET`)
        assert.equal(r.event?.earlyAccepted, false)
    }
    assert.equal(deliveries, 1, "delivered once, by the original")
    assert.deepEqual(await s.record(), after, "no generation issued or accepted, no pseudonym rotated by a replay")

    // a RESUME_INIT an attacker swallowed and replays 100 times: delivered at most once (the
    // first, while fresh), and the replays after it move nothing
    const t = await setup(v, resumeDevice(v))
    let n = 0
    let firstAfter: DeviceRecord | undefined
    for (let i = 0; i < 100; i++) {
        n += (await t.connection().receive(frameOf(v.resume_init))).delivered.length
        if (i === 0) firstAfter = await t.record()
    }
    assert.equal(n, 1)
    assert.deepEqual(await t.record(), firstAfter)

    // without early data: nothing at all
    const w = await setup(NO_EARLY_CASE, resumeDevice(NO_EARLY_CASE))
    const w0 = await w.record()
    for (let i = 0; i < 100; i++) assert.deepEqual((await w.connection().receive(frameOf(NO_EARLY_CASE.resume_init))).delivered, [])
    assert.deepEqual(await w.record(), w0)
})

test("early data with a stale age is not delivered and does not move accepted_generation", async () => {
    const v = STALE_CASE
    const s = await setup(v, resumeDevice(v))
    const before = await s.record()
    const step = await s.responder.receive(frameOf(v.resume_init))
    assert.deepEqual(step.delivered, [])
    assert.equal(step.event?.earlyAccepted, false)
    assert.equal(step.event?.detail, "early data: not fresh")
    assert.deepEqual(await s.record(), before, "accepted_generation (and every other field) unchanged")
    assert.ok(before.accepted_generation < v.generation, "the generation was newer: only the age refused it")
    // the same ticket with a fresh age is accepted (the vector's first case)
    assert.equal(EARLY_ACCEPTED_CASE.ticket, v.ticket)
    assert.equal((await s.connection().receive(frameOf(EARLY_ACCEPTED_CASE.resume_init))).delivered.length, 1)
})

test("isFresh at the window's edges (PROTOCOL.md 6.2)", () => {
    const issuedAt = 1_000_000
    const at = (ageMs: number) => issuedAt * 1000 + ageMs
    // an hour-old ticket: expected 3 600 000, window 2000 + 360
    const now = at(3_600_000)
    assert.equal(isFresh(3_600_000 - 1000 - 2360, issuedAt, now, 2000), true, "lower edge")
    assert.equal(isFresh(3_600_000 - 1000 - 2361, issuedAt, now, 2000), false, "below")
    assert.equal(isFresh(3_600_000 + 2360, issuedAt, now, 2000), true, "upper edge")
    assert.equal(isFresh(3_600_000 + 2361, issuedAt, now, 2000), false, "above")
    // a ticket just issued: window 2000, the second's truncation below
    assert.equal(isFresh(0, issuedAt, at(0), 2000), true)
    assert.equal(isFresh(2000, issuedAt, at(0), 2000), true)
    assert.equal(isFresh(2001, issuedAt, at(0), 2000), false)
    // issued_at truncated: the gateway's expected age is up to 1000 ms too large
    assert.equal(isFresh(0, issuedAt, at(1000 + 2000), 2000), true)
    assert.equal(isFresh(0, issuedAt, at(1000 + 2000 + 1), 2000), false)
    // the drift term: 100 ppm of the age
    assert.equal(isFresh(86_400_000 + 2000 + 8640, issuedAt, at(86_400_000), 2000), true)
    assert.equal(isFresh(86_400_000 + 2000 + 8641, issuedAt, at(86_400_000), 2000), false)
    // a window of 0 leaves the drift term and the second
    assert.equal(isFresh(10_000, issuedAt, at(10_000), 0), true)
    assert.equal(isFresh(10_002, issuedAt, at(10_000), 0), false)
    assert.equal(isFresh(10_000 - 1001, issuedAt, at(10_000), 0), true)
    assert.equal(isFresh(10_000 - 1002, issuedAt, at(10_000), 0), false)
    // the vectors: 250 ms in flight is fresh, held back 10 s is not
    const v = EARLY_ACCEPTED_CASE
    assert.equal(isFresh(v.ticket_age, v.issued_at, v.now_ms, v.early_data_window_ms), true)
    assert.equal(isFresh(STALE_CASE.ticket_age, STALE_CASE.issued_at, STALE_CASE.now_ms, STALE_CASE.early_data_window_ms), false)
})

test("the responder applies the freshness rule with the policy's earlyDataWindowMs, at its edges", async () => {
    const v = EARLY_ACCEPTED_CASE
    const t = { ticket: b(v.ticket), secret: b(v.resumption_secret) }
    const expected = v.now_ms - 1000 * v.issued_at
    for (const [windowMs, ageMs, fresh] of [
        [2000, expected - 1000 - 2000 - 360, true],
        [2000, expected - 1000 - 2000 - 361, false],
        [2000, expected + 2360, true],
        [2000, expected + 2361, false],
        [500, expected - 1000 - 500 - 360, true],
        [500, expected - 1000 - 501 - 360, false],
    ] as const) {
        const s = await setup(v, resumeDevice(v), { policy: { earlyDataWindowMs: windowMs } })
        const step = await s.responder.receive(resumeInit(t, ageMs, Buffer.from("hi")).frame)
        assert.equal(step.delivered.length, fresh ? 1 : 0, `window ${windowMs}, age ${ageMs}`)
    }
})

test("a device that does not know its ticket's age (4 random bytes, no early data) still resumes", async () => {
    const v = EARLY_ACCEPTED_CASE
    const s = await setup(v, resumeDevice(v))
    const t = { ticket: b(v.ticket), secret: b(v.resumption_secret) }
    // a device that restarted sends no early data: the resumption still works
    const p = resumeInit(t, undefined)
    const step = await s.responder.receive(p.frame)
    assert.equal(step.frames[0]?.[2], FrameType.RESUME_RESP)
    assert.ok(readResumeResp(p, (step.frames[0] as Buffer).subarray(HEADER_LEN)))
})

test("generation rules: below full_generation or min_generation, or above issued_generation, is refused", async () => {
    const v = NO_EARLY_CASE
    const cases: [string, Partial<DeviceRecord>, { generation: number; chainOrigin: number }, string | undefined][] = [
        ["in range", { issued_generation: 5, full_generation: 3 }, { generation: 4, chainOrigin: 3 }, undefined],
        ["the chain's first ticket", { issued_generation: 5, full_generation: 3 }, { generation: 3, chainOrigin: 3 }, undefined],
        ["the newest ticket", { issued_generation: 5, full_generation: 3 }, { generation: 5, chainOrigin: 3 }, undefined],
        ["below full", { issued_generation: 5, full_generation: 3 }, { generation: 2, chainOrigin: 3 }, "generation 2 outside 3..5"],
        [
            "below min",
            { issued_generation: 5, full_generation: 3, min_generation: 5 },
            { generation: 4, chainOrigin: 3 },
            "generation 4 outside 5..5",
        ],
        ["above issued", { issued_generation: 5, full_generation: 3 }, { generation: 6, chainOrigin: 3 }, "generation 6 outside 3..5"],
        [
            "expired by expire-tickets",
            { issued_generation: 5, full_generation: 3, min_generation: 6 },
            { generation: 5, chainOrigin: 3 },
            "outside 6..5",
        ],
    ]
    for (const [what, device, f, refused] of cases) {
        const s = await setup(v, device)
        const before = await s.record()
        const t = ticketOf(s.ticketKeys, { ...f, issuedAt: v.now - 10 })
        const step = await s.responder.receive(resumeInit(t, 10_000).frame)
        if (refused === undefined) assert.equal(step.frames[0]?.[2], FrameType.RESUME_RESP, what)
        else {
            assertReject(step, Code.TICKET_REJECTED, Phase.AwaitHsInit)
            assert.match(step.event?.detail ?? "", new RegExp(refused.replace(/\./g, "\\.")), what)
            assert.equal(s.dh.n, 0)
        }
        assert.deepEqual(await s.record(), before, `${what}: nothing moved`)
    }
})

test("the chain limit: a resumption is refused once issued - full >= chainLimit - 1", async () => {
    const v = NO_EARLY_CASE // generation 5, chain origin 1: issued - full = 4
    for (const [chainLimit, ok] of [
        [64, true],
        [6, true],
        [5, false],
        [4, false],
    ] as const) {
        const s = await setup(v, resumeDevice(v), { policy: { chainLimit } })
        const step = await s.responder.receive(frameOf(v.resume_init))
        if (ok) assert.deepEqual(step.frames.map(hex), [v.resume_resp], `chainLimit ${chainLimit}`)
        else {
            assertReject(step, Code.TICKET_REJECTED, Phase.AwaitHsInit)
            assert.equal(step.event?.detail, "ticket: chain limit")
        }
    }
    // the limit counts issued tickets, not the one presented: an older ticket of a full chain is refused too
    const s = await setup(v, { issued_generation: 6, full_generation: 1 }, { policy: { chainLimit: 6 } })
    assertReject(await s.responder.receive(frameOf(v.resume_init)), Code.TICKET_REJECTED, Phase.AwaitHsInit)
    // a chain of chainLimit tickets: full_generation .. full_generation + chainLimit - 1, then a full handshake
    const c = await setup(v, { issued_generation: 1, full_generation: 1 }, { policy: { chainLimit: 3 } })
    let t = ticketOf(c.ticketKeys, { generation: 1, issuedAt: v.now, chainOrigin: 1 })
    let resumed = 0
    for (;;) {
        const r = c.connection()
        const p = resumeInit(t, 0)
        const step = await r.receive(p.frame)
        if (step.frames[0]?.[2] !== FrameType.RESUME_RESP) break
        const done = readResumeResp(p, (step.frames[0] as Buffer).subarray(HEADER_LEN))
        assert.ok(done)
        const [body] = done.session.encrypt(InnerType.DATA, Buffer.from("x"))
        const up = await r.receive({ type: FrameType.RECORD, body: body as Buffer })
        t = ticketIn(done.session, up.frames[0] as Buffer)
        resumed++
    }
    assert.equal(resumed, 2, "chainLimit 3: tickets 1, 2, 3; tickets 1 and 2 resumed")
    assert.equal((await c.record()).issued_generation, 3)
})

test("a ticket of an older chain fails the MAC: after a confirmed full handshake the previous tickets are refused", async () => {
    const v = NO_EARLY_CASE
    const s = await setup(v, resumeDevice(v))
    // the vector's ticket (chain origin 1) resumes
    assert.equal((await s.connection().receive(frameOf(v.resume_init))).frames[0]?.[2], FrameType.RESUME_RESP)
    // a full handshake, confirmed: full_generation = 6
    const r = s.connection()
    const pending = deviceHsInit(b(KK.pseudonym))
    const resp = await r.receive({ type: FrameType.HS_INIT, body: pending.body })
    const done = readHsResp(pending, (resp.frames[0] as Buffer).subarray(HEADER_LEN))
    assert.ok(done)
    const [body] = done.session.encrypt(InnerType.DATA, Buffer.from("x"))
    const up = await r.receive({ type: FrameType.RECORD, body: body as Buffer })
    const fresh = ticketIn(done.session, up.frames[0] as Buffer)
    assert.equal((await s.record()).full_generation, 6)
    const old = await s.connection().receive(frameOf(v.resume_init))
    assertReject(old, Code.TICKET_REJECTED, Phase.AwaitHsInit)
    assert.equal(old.event?.detail, "ticket: bad mac or an older chain")
    // the new chain's ticket resumes
    assert.equal((await s.connection().receive(resumeInit(fresh, 0).frame)).frames[0]?.[2], FrameType.RESUME_RESP)
    // and an unconfirmed full handshake does not start a chain: the new ticket still works
    await s.connection().receive(frameOf(KK.hs_init))
    assert.equal((await s.connection().receive(resumeInit(fresh, 0).frame)).frames[0]?.[2], FrameType.RESUME_RESP)
})

test("ticket lifetimes by key kind, from the policy: session tickets after ticketLifetime, out-of-band after oobTicketLifetime", async () => {
    const v = NO_EARLY_CASE
    const at = (now: number, policy = {}) =>
        setup({ ...v, now, now_ms: now * 1000 }, { issued_generation: 1, full_generation: 1 }, { policy })
    const T = v.now
    const keys = (await at(T)).ticketKeys
    const session = ticketOf(keys, { generation: 1, issuedAt: T, chainOrigin: 1 })
    const oob = ticketOf(keys, { generation: 1, issuedAt: T, chainOrigin: 1, kind: "oob" })
    const outcome = async (t: typeof session, now: number, policy = {}) => {
        const s = await at(now, policy)
        const step = await s.responder.receive(resumeInit(t, undefined).frame)
        return step.frames[0]?.[2] === FrameType.RESUME_RESP ? "resumed" : step.event?.detail
    }
    assert.equal(await outcome(session, T + TICKET_LIFETIME - 1), "resumed")
    assert.equal(await outcome(session, T + TICKET_LIFETIME), "ticket: expired")
    assert.equal(await outcome(oob, T + TICKET_LIFETIME), "resumed", "an out-of-band ticket outlives 7 days")
    assert.equal(await outcome(oob, T + OOB_TICKET_LIFETIME - 1), "resumed")
    assert.equal(await outcome(oob, T + OOB_TICKET_LIFETIME), "ticket: expired")
    assert.equal(await outcome(session, T + 59, { ticketLifetime: 60 }), "resumed")
    assert.equal(await outcome(session, T + 60, { ticketLifetime: 60 }), "ticket: expired")
    assert.equal(await outcome(oob, T + 60, { ticketLifetime: 60 }), "resumed", "ticketLifetime does not cut the oob ticket")
    assert.equal(await outcome(oob, T + 10 * DAY, { oobTicketLifetime: 10 * DAY }), "ticket: expired")
    assert.equal(await outcome(session, T + 3 * DAY, { oobTicketLifetime: DAY }), "resumed")
})

test("the TICKET a confirmed session issues: sealed under the current session key, issued now, in the device's chain", async () => {
    const s = await confirmedFullHandshake()
    const t = ticketIn(deviceSession(), b(KK.record_ticket))
    assert.equal(t.ticket[0], KK.ticket_key_id)
    const step = await s.connection().receive(resumeInit(t, 0).frame)
    assert.equal(step.frames[0]?.[2], FrameType.RESUME_RESP)
    // after a rotation the next TICKET is signed by the new key; the old one still opens
    const fresh = s.ticketKeys.rotate(KK.now, { rng: n => Buffer.alloc(n, 0x42) })
    const r = s.connection()
    const p = resumeInit(t, 0)
    const resp = await r.receive(p.frame)
    const done = readResumeResp(p, (resp.frames[0] as Buffer).subarray(HEADER_LEN))
    assert.ok(done)
    const [body] = done.session.encrypt(InnerType.DATA, Buffer.from("x"))
    const next = ticketIn(done.session, (await r.receive({ type: FrameType.RECORD, body: body as Buffer })).frames[0] as Buffer)
    assert.equal(next.ticket[0], fresh.id)
})

test("a retired key's tickets are refused at once; the device's full handshake follows on the connection", async () => {
    const v = NO_EARLY_CASE
    const s = await setup(v, resumeDevice(v))
    s.ticketKeys.rotate(v.now, { rng: n => Buffer.alloc(n, 0x43) })
    assert.equal((await s.connection().receive(frameOf(v.resume_init))).frames[0]?.[2], FrameType.RESUME_RESP, "within the overlap")
    s.ticketKeys.retire(v.ticket_key_id)
    const step = await s.responder.receive(frameOf(v.resume_init))
    assertReject(step, Code.TICKET_REJECTED, Phase.AwaitHsInit)
    assert.equal(step.event?.detail, "ticket: unknown-key")
    assert.equal(s.dh.n, 0)
    assert.deepEqual((await s.responder.receive(frameOf(KK.hs_init))).frames.map(hex), [KK.hs_resp])
})

test("a pseudonym another device holds is drawn again when the TICKET is issued", async () => {
    const s = await fullHandshake()
    const other = newDevice({ id: "0000000000000002", name: "other", publicKey: Buffer.alloc(32, 9), psk: Buffer.alloc(32, 8), now: 0 })
    await s.registry.putDevice(other)
    const draws = [other.pseudonym0, Buffer.alloc(8, 0x77)]
    const r = new Responder({ ...s.responder.ctx, rng: n => (n === PSEUDONYM_LEN ? (draws.shift() as Buffer) : Buffer.alloc(n)) })
    await r.receive(frameOf(KK.hs_init))
    const up = await r.receive(frameOf(KK.record_data_i2r))
    const t = ticketIn(deviceSession(), up.frames[0] as Buffer)
    assert.deepEqual(t.pseudonym, Buffer.alloc(8, 0x77))
    assert.deepEqual((await s.record()).pseudonym, Buffer.alloc(8, 0x77))
    assert.equal((await s.registry.getDeviceByPseudonym(other.pseudonym0))?.id, other.id, "the other device keeps its pseudonym")
})

test("unknown and revoked devices: REJECT(UNKNOWN_DEVICE) with zero DH calls", async () => {
    const { responder, dh } = await setup(KK, kkDevice)
    const stranger = encodeHsInit(Buffer.alloc(8, 0xee), frameOf(KK.hs_init).body.subarray(9))
    assertReject(await responder.receive({ type: FrameType.HS_INIT, body: stranger }), Code.UNKNOWN_DEVICE)
    assert.equal(dh.n, 0)
    const revoked = await setup(KK, { ...kkDevice, revoked: true })
    assertReject(await revoked.responder.receive(frameOf(KK.hs_init)), Code.UNKNOWN_DEVICE)
    assert.equal(revoked.dh.n, 0)
    // a payload in HS_INIT is refused after the lookup, still before any X25519
    const withPayload = await setup(KK, kkDevice)
    const longer = Buffer.concat([frameOf(KK.hs_init).body, Buffer.from([0])])
    assertReject(await withPayload.responder.receive({ type: FrameType.HS_INIT, body: longer }), Code.HANDSHAKE_FAILED)
    assert.equal(withPayload.dh.n, 0)
    // a revoked device's ticket
    const rv = await setup(NO_EARLY_CASE, { ...resumeDevice(NO_EARLY_CASE), revoked: true })
    assertReject(await rv.responder.receive(frameOf(NO_EARLY_CASE.resume_init)), Code.TICKET_REJECTED, Phase.AwaitHsInit)
})

test("bad version and bad lengths, before anything else", async () => {
    const hsInit = frameOf(KK.hs_init).body
    const cases: [Frame, number][] = [
        [{ type: FrameType.HS_INIT, body: Buffer.from([1, ...hsInit.subarray(1)]) }, Code.UNSUPPORTED_VERSION],
        [{ type: FrameType.HS_INIT, body: Buffer.from([3]) }, Code.UNSUPPORTED_VERSION],
        [{ type: FrameType.HS_INIT, body: Buffer.alloc(0) }, Code.PROTOCOL_ERROR],
        [{ type: FrameType.HS_INIT, body: hsInit.subarray(0, hsInit.length - 1) }, Code.PROTOCOL_ERROR],
        [
            { type: FrameType.RESUME_INIT, body: Buffer.from([1, ...frameOf(NO_EARLY_CASE.resume_init).body.subarray(1)]) },
            Code.UNSUPPORTED_VERSION,
        ],
        [{ type: FrameType.RESUME_INIT, body: Buffer.from([2, 2, 3]) }, Code.PROTOCOL_ERROR],
        [{ type: FrameType.RESUME_INIT, body: frameOf(NO_EARLY_CASE.resume_init).body.subarray(0, 61) }, Code.PROTOCOL_ERROR],
        [{ type: FrameType.RESUME_INIT, body: Buffer.alloc(0) }, Code.PROTOCOL_ERROR],
    ]
    for (const [f, code] of cases) {
        const { responder, dh, record } = await setup(NO_EARLY_CASE, resumeDevice(NO_EARLY_CASE))
        const before = await record()
        assertReject(await responder.receive(f), code)
        assert.equal(dh.n, 0)
        assert.deepEqual(await record(), before, "nothing issued")
    }
})

test("a corrupted HS_INIT in AwaitHsInit: HANDSHAKE_FAILED, nothing stored, nothing issued", async () => {
    const { responder, record, connection } = await setup(KK, kkDevice)
    assertReject(await responder.receive(forgedResume), Code.TICKET_REJECTED, Phase.AwaitHsInit)
    const before = responder.state
    const recBefore = await record()
    for (const i of [0, 1, 8, 9, 40, 56]) {
        // a connection of its own in AwaitHsInit for each corruption: a failure closes it
        const r = connection()
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
    assert.deepEqual(await record(), recBefore, "no generation issued, no full handshake marked")
    // and the genuine HS_INIT still gives the vector's frames on the untouched connection
    const ok = await responder.receive(frameOf(KK.hs_init))
    assert.deepEqual(ok.frames.map(hex), [KK.hs_resp])
    assert.deepEqual((await responder.receive(frameOf(KK.record_data_i2r))).frames.map(hex), [KK.record_ticket])
})

test("a corrupted RECORD in Established: closed silently, nothing delivered or confirmed, the state's n unchanged", async () => {
    const { responder } = await fullHandshake()
    const before = established(responder.state)
    const snapshot = { device: before.device, n: before.session.recv.n, sendN: before.session.send.n }
    for (const i of [0, 3, 20]) {
        const body = Buffer.from(frameOf(KK.record_data_i2r).body)
        body[i] = (body[i] as number) ^ 1
        const again = await fullHandshake()
        const rec0 = await again.record()
        const s = established(again.responder.state)
        const step = await again.responder.receive({ type: FrameType.RECORD, body })
        assert.deepEqual(step.frames, [], "no answer after a session exists, and no TICKET")
        assert.deepEqual(step.delivered, [])
        assert.equal(step.close, true)
        assert.equal(step.event?.outcome, "bad-record")
        assert.equal(s.session.recv.n, 0, `byte ${i}: n did not move`)
        assert.equal(s.session.send.n, 0, "nothing was sent on the session")
        assert.deepEqual(await again.record(), rec0, "a record that fails confirms nothing")
    }
    assert.equal(before.session.recv.n, snapshot.n)
    assert.equal(before.session.send.n, snapshot.sendN)
    assert.equal(before.device, snapshot.device)
    // the untouched connection still takes the genuine record
    assert.deepEqual((await responder.receive(frameOf(KK.record_data_i2r))).delivered.map(hex), [KK.data_i2r])
})

test("a KEY_UPDATE as the device's first record confirms the session too", async () => {
    const { responder, record } = await fullHandshake()
    const [body] = deviceSession().encrypt(InnerType.KEY_UPDATE, Buffer.alloc(0))
    const step = await responder.receive({ type: FrameType.RECORD, body: body as Buffer })
    assert.deepEqual(step.delivered, [])
    assert.equal(step.frames.length, 1)
    assert.equal(step.event?.outcome, "confirmed")
    assert.equal((await record()).issued_generation, KK.generation)
})

test("a transition that throws (registry down) leaves the state exactly as it was", async () => {
    const { responder, registry } = await setup(KK, kkDevice)
    const before = responder.state
    registry.getDeviceByPseudonym = async () => {
        throw new Error("registry unavailable")
    }
    await assert.rejects(responder.receive(frameOf(KK.hs_init)), /registry unavailable/)
    assert.equal(responder.state, before)
    // the confirmation failing: the session stays unconfirmed, the record is not delivered
    const s = await fullHandshake()
    const est = s.responder.state
    s.registry.confirmSession = async () => {
        throw new Error("registry unavailable")
    }
    await assert.rejects(s.responder.receive(frameOf(KK.record_data_i2r)), /registry unavailable/)
    assert.equal(s.responder.state, est)
})

test("wrong frame types: PROTOCOL_ERROR before a session, silent close after (PROTOCOL.md 2.1, 7, 8)", async () => {
    for (const t of [FrameType.HS_RESP, FrameType.RESUME_RESP, FrameType.RECORD, FrameType.REJECT, 0x55]) {
        const { responder } = await setup(KK, kkDevice)
        assertReject(await responder.receive({ type: t, body: Buffer.alloc(10) }), Code.PROTOCOL_ERROR)
    }
    for (const t of [FrameType.HS_INIT, FrameType.RESUME_INIT, FrameType.HS_RESP, FrameType.RESUME_RESP, FrameType.REJECT, 0x55]) {
        const { responder } = await confirmedFullHandshake()
        const s = established(responder.state)
        const step = await responder.receive(t === FrameType.HS_INIT ? frameOf(KK.hs_init) : { type: t, body: Buffer.alloc(57, 1) })
        assert.deepEqual(step.frames, [])
        assert.equal(step.close, true)
        assert.equal(step.next.phase, Phase.Closed)
        assert.equal(s.session.dead, true, "the session is closed")
        const after = await responder.receive(frameOf(KK.record_data_i2r))
        assert.deepEqual([after.frames, after.delivered, after.close], [[], [], true], "Closed answers nothing")
    }
    // a TICKET record from the device: "gateway -> device only"; it confirms nothing
    const { responder, record } = await fullHandshake()
    const rec0 = await record()
    const [body] = deviceSession().encrypt(InnerType.TICKET, Buffer.alloc(73))
    const step = await responder.receive({ type: FrameType.RECORD, body: body as Buffer })
    assert.deepEqual([step.frames, step.delivered, step.close], [[], [], true])
    assert.deepEqual(await record(), rec0)
})

test("REJECT(TICKET_REJECTED) -> AwaitHsInit accepts HS_INIT only; the full handshake then matches the vector", async () => {
    // the chain limit refuses the vector's ticket: 5 - 1 >= 4 - 1
    const { responder, dh, connection } = await setup(NO_EARLY_CASE, { ...resumeDevice(NO_EARLY_CASE) }, { policy: { chainLimit: 4 } })
    const refused = await responder.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(refused, Code.TICKET_REJECTED, Phase.AwaitHsInit)
    assert.equal(refused.event?.detail, "ticket: chain limit")
    assert.equal(dh.n, 0)
    // one resumption attempt per connection
    const second = connection()
    await second.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(await second.receive(frameOf(NO_EARLY_CASE.resume_init)), Code.PROTOCOL_ERROR)
    const third = connection()
    await third.receive(frameOf(NO_EARLY_CASE.resume_init))
    assertReject(await third.receive(frameOf(KK.record_data_i2r)), Code.PROTOCOL_ERROR)
    // HS_INIT on the first connection: HS_RESP exactly the vector's (it depends on keys and pseudonym only)
    const full = await responder.receive(frameOf(KK.hs_init))
    assert.deepEqual(full.frames.map(hex), [KK.hs_resp])
    assert.equal(established(responder.state).resumed, false)
    // the device's record: the TICKET, a new chain at generation 6
    const up = await responder.receive(frameOf(KK.record_data_i2r))
    assert.equal(up.frames.length, 1)
    assert.equal(up.event?.generation, 6)
})

test("the early-data flag reaches the Step only for early data; tampered early data is refused", async () => {
    const v = EARLY_ACCEPTED_CASE
    const s = await setup(v, resumeDevice(v))
    // a tampered tag: TICKET_REJECTED (the device cannot tell it from an expired ticket)
    const body = Buffer.from(frameOf(v.resume_init).body)
    body[body.length - 1] = (body[body.length - 1] as number) ^ 1
    const bad = await s.connection().receive({ type: FrameType.RESUME_INIT, body })
    assertReject(bad, Code.TICKET_REJECTED, Phase.AwaitHsInit)
    assert.equal(bad.event?.detail, "RESUME_INIT: early data failed to decrypt")
    const step = await s.responder.receive(frameOf(v.resume_init))
    assert.equal(step.early, true)
    const up = await s.responder.receive(frameOf(v.record_data_i2r))
    assert.notEqual(up.early, true)
})
