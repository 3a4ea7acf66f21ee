// The gateway's side of a connection (PROTOCOL.md 4, 5, 6, 8) as a closed set of states and
// one transition function per message:
//
//     AwaitFirst  --HS_INIT-->      Established     (full handshake, KKpsk2)
//     AwaitFirst  --RESUME_INIT-->  Established     (resumption)
//     AwaitFirst  --RESUME_INIT, ticket refused-->  AwaitHsInit  (REJECT(TICKET_REJECTED), 6.2)
//     AwaitHsInit --HS_INIT-->      Established
//     Established --RECORD-->       Established | Closed
//
// A session is confirmed (6.3, 8) at the device's first record that decrypts, or at once when
// a resumption's early data is accepted; only then is its ticket issued, counted and sent, and
// the device's pseudonyms rotated. A replayed first frame is answered but moves nothing.
//
// A transition computes on locals and returns the next state; the state is replaced only
// when the whole message was processed, so a failed message leaves it exactly as it was.
// The peer gets one code; the detail is returned for local logging only. No transition logs,
// opens sockets or reads the clock itself: registry, keys, time, randomness and the DH
// function come in through the ResponderContext.
import { randomBytes, type RandomSource } from "../crypto/random.js"
import { generateKeyPair, internPublicKey, type KeyPair } from "../crypto/x25519.js"
import { resolvePolicy, type ResponderPolicy } from "../policy.js"
import type { Registry } from "../registry/registry.js"
import { deviceIdHex, PseudonymTaken, type DeviceRecord } from "../registry/registry.js"
import { encodeTicketContent, MAX_GENERATION, mintTicket, unsealTicket, verifyTicket, type TicketKeySet } from "../tickets.js"
import { Code, EARLY_ACCEPTED, encodeFrame, FrameType, InnerType, NONCE_R_LEN, PSEUDONYM_LEN, type Frame } from "../wire.js"
import { consumeHsInit, readHsInit, writeHsResp, X25519, type Dh } from "./handshake.js"
import { consumeResumeInit, readResumeInit, ticketAge, writeResumeResp } from "./resume.js"
import type { Session } from "./session.js"

export type { ResponderPolicy } from "../policy.js"

/** Everything a responder needs from outside; shared by all connections of a gateway. */
export interface ResponderContext {
    readonly registry: Registry
    /** the gateway's static key pair */
    readonly identity: KeyPair
    readonly ticketKeys: TicketKeySet
    /** fields not given take DEFAULT_POLICY's (policy.ts) */
    readonly policy?: Partial<ResponderPolicy>
    /** seconds since the Unix epoch */
    readonly now: () => number
    /** milliseconds since the Unix epoch, for the ticket age (6.2); default now() * 1000 */
    readonly nowMs?: () => number
    readonly rng?: RandomSource
    /** X25519, injectable: tests count calls (an unknown device must cost none) */
    readonly dh?: Dh
    /** `ss` per device (id and public key): "constant per pairing: cached" */
    readonly ssCache?: Map<string, Buffer>
    /** the ephemeral key pair for a full handshake; default a fresh one (vectors fix it) */
    readonly ephemeral?: () => KeyPair
}

/** A ResponderContext with its policy resolved: what the transitions read. */
export type ResolvedContext = ResponderContext & { readonly policy: ResponderPolicy }

/** The closed set of states. */
export const Phase = { AwaitFirst: 0, AwaitHsInit: 1, Established: 2, Closed: 3 } as const
export type Phase = (typeof Phase)[keyof typeof Phase]

/**
 * What confirming an established session will do (6.3): undefined once it is confirmed.
 * `resumedGeneration` is the generation of the ticket a resumption used.
 */
export interface Unconfirmed {
    readonly full: boolean
    readonly resumedGeneration?: number
}

/** A responder state. */
export type ResponderState =
    | { readonly phase: typeof Phase.AwaitFirst }
    | { readonly phase: typeof Phase.AwaitHsInit }
    | {
          readonly phase: typeof Phase.Established
          readonly device: DeviceRecord
          readonly session: Session
          readonly resumed: boolean
          /** set until the session is confirmed */
          readonly unconfirmed?: Unconfirmed
      }
    | { readonly phase: typeof Phase.Closed }

type Established = Extract<ResponderState, { phase: typeof Phase.Established }>

/** What happened, for the connection log. Never keys, tickets or payloads. */
export interface StepEvent {
    /** e.g. "full-handshake", "resumed", "confirmed", "reject", "closed-by-peer", "bad-record" */
    readonly outcome: string
    /** the code sent (REJECT) or received (CLOSE) */
    readonly code?: number
    /** local detail, never sent */
    readonly detail?: string
    readonly deviceName?: string
    readonly earlyAccepted?: boolean
    /** the generation of the ticket issued */
    readonly generation?: number
}

/** The result of one transition. */
export interface Step {
    readonly next: ResponderState
    /** encoded frames to send, in order */
    readonly frames: Buffer[]
    /** DATA contents for the application, in order */
    readonly delivered: Buffer[]
    /** `delivered` came as early data (0-RTT, PROTOCOL.md 9.3) */
    readonly early?: boolean
    /** close the connection after sending `frames` */
    readonly close: boolean
    readonly event?: StepEvent
}

const CLOSED: ResponderState = { phase: Phase.Closed }

/** Nothing to send or deliver (shared: a Step's arrays are never written to). */
const NONE: Buffer[] = []

function reject(code: number, detail: string, next: ResponderState = CLOSED, deviceName?: string): Step {
    return {
        next,
        frames: [encodeFrame(FrameType.REJECT, Buffer.from([code]))],
        delivered: [],
        close: next.phase === Phase.Closed,
        event: { outcome: "reject", code, detail, deviceName },
    }
}

/**
 * "Every issued ticket gets generation = ++issued_generation", and a generation is a uint32: a
 * device whose counter reached MAX_GENERATION cannot be given a ticket, so its handshakes are
 * refused before any DH or registry write, under their own outcome for the operator (re-pair it).
 */
function exhausted(device: DeviceRecord): boolean {
    return device.issued_generation >= MAX_GENERATION
}

const EXHAUSTED_DETAIL = "ticket generations exhausted: re-pair the device"

/** "after a session exists both sides close without answering" */
function silentClose(outcome: string, detail: string, deviceName?: string, code?: number): Step {
    return { next: CLOSED, frames: [], delivered: [], close: true, event: { outcome, detail, deviceName, code } }
}

function records(session: Session, type: number, content: Buffer): Buffer[] {
    return session.encrypt(type, content).map(body => encodeFrame(FrameType.RECORD, body))
}

/** What a confirmation wrote: the registry's answer and the pseudonym that goes in the TICKET. */
interface Confirmed {
    readonly generation: number
    readonly chainOrigin: number
    readonly nextPseudonym: Buffer
}

/**
 * The registry half of a confirmation (PROTOCOL.md 6.3): one atomic update (generation, chain,
 * accepted generation, pseudonyms). With `cas` (a resumption's fresh early data) the early-data
 * compare-and-set of 6.4 is part of the same update: "older" means nothing was written.
 */
async function register(ctx: ResolvedContext, device: DeviceRecord, u: Unconfirmed, cas: boolean): Promise<Confirmed | "older"> {
    const rng = ctx.rng ?? randomBytes
    for (let attempt = 0; ; attempt++) {
        const nextPseudonym = rng(PSEUDONYM_LEN)
        const c = { full: u.full, resumedGeneration: u.resumedGeneration, nextPseudonym }
        let issued
        try {
            issued =
                cas && u.resumedGeneration !== undefined
                    ? await ctx.registry.acceptAndConfirm(device.id, { ...c, resumedGeneration: u.resumedGeneration })
                    : await ctx.registry.confirmSession(device.id, c)
        } catch (err) {
            // another device holds it (2^-64 per pair): draw again, a few times at most
            if (err instanceof PseudonymTaken && attempt < 4) continue
            throw err
        }
        if (issued === "older") return "older"
        return { generation: issued.generation, chainOrigin: issued.chainOrigin, nextPseudonym }
    }
}

/** The TICKET record of a confirmed session, with the next pseudonym. */
function ticketFrames(ctx: ResolvedContext, device: DeviceRecord, session: Session, c: Confirmed): Buffer[] {
    const m = mintTicket({
        deviceId: Buffer.from(device.id, "hex"),
        generation: c.generation,
        issuedAt: ctx.now(),
        chainOrigin: c.chainOrigin,
        keySet: ctx.ticketKeys,
    })
    const content = encodeTicketContent(m.ticket, m.resumptionSecret, c.nextPseudonym)
    const frames = records(session, InnerType.TICKET, content)
    m.resumptionSecret.fill(0) // best effort on a garbage-collected VM
    content.fill(0)
    return frames
}

/** Confirms a session (PROTOCOL.md 6.3): the registry update, then the TICKET record. */
async function confirm(
    ctx: ResolvedContext,
    device: DeviceRecord,
    session: Session,
    u: Unconfirmed
): Promise<{ frames: Buffer[]; generation: number }> {
    const c = (await register(ctx, device, u, false)) as Confirmed
    return { frames: ticketFrames(ctx, device, session, c), generation: c.generation }
}

/** HS_INIT in AwaitFirst or AwaitHsInit (PROTOCOL.md 4.1, checks in its order). */
export async function onHsInit(ctx: ResolvedContext, body: Buffer): Promise<Step> {
    // 1. frame length and type, version
    const init = readHsInit(body)
    if ("error" in init) {
        if (init.error === "version") return reject(Code.UNSUPPORTED_VERSION, `HS_INIT: version ${init.version}`)
        return reject(Code.PROTOCOL_ERROR, init.error === "empty" ? "HS_INIT: empty body" : `HS_INIT: ${init.length} bytes`)
    }
    // 2. the registry, by pseudonym, before any X25519
    const { pseudonym } = init
    const device = await ctx.registry.getDeviceByPseudonym(pseudonym)
    if (device === undefined) return reject(Code.UNKNOWN_DEVICE, "HS_INIT: unknown pseudonym")
    if (device.revoked) return reject(Code.UNKNOWN_DEVICE, "HS_INIT: revoked", CLOSED, device.name)
    if (exhausted(device))
        return {
            ...reject(Code.UNKNOWN_DEVICE, EXHAUSTED_DETAIL, CLOSED, device.name),
            event: { outcome: "generations-exhausted", code: Code.UNKNOWN_DEVICE, detail: EXHAUSTED_DETAIL, deviceName: device.name },
        }
    // "payload1 MUST be empty": a longer body carries a payload; refused before any DH
    if (init.hasPayload) return reject(Code.HANDSHAKE_FAILED, "HS_INIT: non-empty payload", CLOSED, device.name)
    // 3. ReadMessage: e, es, ss (cached), payload
    const dh = ctx.dh ?? X25519
    const cacheKey = device.id + device.publicKey.toString("hex")
    let ss = ctx.ssCache?.get(cacheKey)
    try {
        if (ss === undefined) {
            ss = dh.x25519(ctx.identity.privateKey, device.publicKey) // ss, once per pairing
            ctx.ssCache?.set(cacheKey, ss)
        }
    } catch {
        return reject(Code.HANDSHAKE_FAILED, "HS_INIT: low-order device static key", CLOSED, device.name)
    }
    // rs interned: the device's static key is imported into node:crypto once per device (se)
    const keys = { pseudonym: Buffer.from(pseudonym), s: ctx.identity, rs: internPublicKey(device.publicKey), psk: device.psk, ss, dh }
    const read = consumeHsInit(keys, init.message)
    if (read === undefined) return reject(Code.HANDSHAKE_FAILED, "HS_INIT: message 1 failed", CLOSED, device.name)
    let hs
    try {
        hs = writeHsResp(read, ctx.ephemeral?.() ?? generateKeyPair(ctx.rng))
    } catch {
        return reject(Code.HANDSHAKE_FAILED, "HS_RESP: DH failed", CLOSED, device.name)
    }
    // no ticket yet: it follows the device's first record (6.3)
    return {
        next: { phase: Phase.Established, device, session: hs.session, resumed: false, unconfirmed: { full: true } },
        frames: [encodeFrame(FrameType.HS_RESP, hs.body)],
        delivered: [],
        close: false,
        event: { outcome: "full-handshake", deviceName: device.name },
    }
}

/**
 * The freshness rule of PROTOCOL.md 6.2: the age the device reports (ms) against the age the
 * gateway expects from `issued_at` (s), within `window = earlyDataWindowMs + expected / 10000`,
 * with 1000 ms more below for `issued_at`'s truncation to seconds.
 */
export function isFresh(reportedMs: number, issuedAt: number, nowMs: number, windowMs: number): boolean {
    const expected = nowMs - 1000 * issuedAt
    const window = windowMs + Math.floor(Math.max(0, expected) / 10_000)
    return expected - 1000 - window <= reportedMs && reportedMs <= expected + window
}

/** RESUME_INIT in AwaitFirst (PROTOCOL.md 6.2, checks in its order; no X25519 at all). */
export async function onResumeInit(ctx: ResolvedContext, body: Buffer): Promise<Step> {
    // 1. version, length
    const init = readResumeInit(body)
    if ("error" in init) {
        if (init.error === "version") return reject(Code.UNSUPPORTED_VERSION, `RESUME_INIT: version ${init.version}`)
        return reject(Code.PROTOCOL_ERROR, init.error === "empty" ? "RESUME_INIT: empty body" : `RESUME_INIT: ${init.length} bytes`)
    }
    // A refused ticket leaves the connection open for HS_INIT (6.2: "the device runs the full
    // handshake on the same connection").
    const refuse = (detail: string, name?: string) => reject(Code.TICKET_REJECTED, detail, { phase: Phase.AwaitHsInit }, name)
    // 2. the ticket: live key, unsealed; the device; the MAC with its chain origin; expiry; generations
    const now = ctx.now()
    const t = unsealTicket(init.ticket, ctx.ticketKeys, now)
    if ("error" in t) return refuse(`ticket: ${t.error}`)
    const device = await ctx.registry.getDevice(deviceIdHex(t.deviceId))
    if (device === undefined) return refuse("ticket: unknown device or bad mac")
    if (device.revoked) return refuse("ticket: revoked device", device.name)
    if (exhausted(device))
        return {
            ...refuse(EXHAUSTED_DETAIL, device.name),
            event: { outcome: "generations-exhausted", code: Code.TICKET_REJECTED, detail: EXHAUSTED_DETAIL, deviceName: device.name },
        }
    const v = verifyTicket(init.ticket, t, device.full_generation, ctx.ticketKeys, now, ctx.policy)
    // a MAC that fails under the device's chain origin: forged, or a ticket of an older chain
    if ("error" in v) return refuse(`ticket: ${v.error === "bad-mac" ? "bad mac or an older chain" : v.error}`, device.name)
    const g = t.generation
    if (g < Math.max(device.min_generation, device.full_generation) || g > device.issued_generation) {
        v.resumptionSecret.fill(0)
        return refuse(
            `ticket: generation ${g} outside ${Math.max(device.min_generation, device.full_generation)}..${device.issued_generation}`,
            device.name
        )
    }
    if (device.issued_generation - device.full_generation >= ctx.policy.chainLimit - 1) {
        v.resumptionSecret.fill(0)
        return refuse("ticket: chain limit", device.name)
    }
    // 3. the SymmetricState steps, early data
    const read = consumeResumeInit(init, t.deviceId, v.resumptionSecret)
    const age = ticketAge(v.resumptionSecret, init.obfuscatedAge)
    v.resumptionSecret.fill(0)
    if (read === undefined) return refuse("RESUME_INIT: early data failed to decrypt", device.name)
    const hasEarly = read.early.length > 0
    if (hasEarly && read.early[0] !== InnerType.DATA) return refuse("RESUME_INIT: early data is not DATA", device.name)
    // 4. accepted only if not empty, fresh, and newer (the compare-and-set, checked last): the
    // compare-and-set and the confirmation it brings are one registry update
    const fresh = hasEarly && isFresh(age, t.issuedAt, ctx.nowMs?.() ?? now * 1000, ctx.policy.earlyDataWindowMs)
    const unconfirmed: Unconfirmed = { full: false, resumedGeneration: g }
    const confirmed = fresh ? await register(ctx, device, unconfirmed, true) : "older"
    const accepted = confirmed !== "older"
    const rs = writeResumeResp(read, (ctx.rng ?? randomBytes)(NONCE_R_LEN), accepted ? EARLY_ACCEPTED : 0)
    const detail = hasEarly && !accepted ? (fresh ? "early data: an older generation" : "early data: not fresh") : undefined
    if (!accepted)
        return {
            next: { phase: Phase.Established, device, session: rs.session, resumed: true, unconfirmed },
            frames: [encodeFrame(FrameType.RESUME_RESP, rs.body)],
            delivered: [],
            close: false,
            event: { outcome: "resumed", deviceName: device.name, earlyAccepted: false, detail },
        }
    // accepted early data confirmed the session: the ticket follows RESUME_RESP at once
    const issued = { frames: ticketFrames(ctx, device, rs.session, confirmed), generation: confirmed.generation }
    return {
        next: { phase: Phase.Established, device, session: rs.session, resumed: true },
        frames: [encodeFrame(FrameType.RESUME_RESP, rs.body), ...issued.frames],
        delivered: [Buffer.from(read.early.subarray(1))],
        early: true,
        close: false,
        event: { outcome: "resumed", deviceName: device.name, earlyAccepted: true, generation: issued.generation },
    }
}

/**
 * RECORD in Established (PROTOCOL.md 5); the first one that decrypts confirms the session (6.3).
 * Synchronous once the session is confirmed (every record after the first): only the
 * confirmation waits for the registry.
 */
export function onRecord(ctx: ResolvedContext, state: Established, body: Buffer): Step | Promise<Step> {
    const name = state.device.name
    const r = state.session.decrypt(body)
    if (r === undefined) return silentClose("bad-record", "record failed to decrypt or is malformed", name)
    if (r.type === InnerType.CLOSE) {
        state.session.close()
        return silentClose("closed-by-peer", "CLOSE", name, r.content[0])
    }
    if (r.type !== InnerType.DATA && r.type !== InnerType.KEY_UPDATE) {
        // TICKET from the device: "gateway -> device only"
        state.session.close()
        return silentClose("bad-record", `inner type ${r.type} from the device`, name)
    }
    // the decrypted content is a buffer of its own (the decipher's output): no copy
    const delivered = r.type === InnerType.DATA ? [r.content] : NONE
    if (state.unconfirmed === undefined)
        return r.type === InnerType.KEY_UPDATE
            ? { next: state, frames: NONE, delivered, close: false, event: { outcome: "key-update", deviceName: name } }
            : { next: state, frames: NONE, delivered, close: false }
    return confirmRecord(ctx, state, delivered, state.unconfirmed)
}

async function confirmRecord(ctx: ResolvedContext, state: Established, delivered: Buffer[], u: Unconfirmed): Promise<Step> {
    const issued = await confirm(ctx, state.device, state.session, u)
    const next: Established = { phase: Phase.Established, device: state.device, session: state.session, resumed: state.resumed }
    return {
        next,
        frames: issued.frames,
        delivered,
        close: false,
        event: { outcome: "confirmed", deviceName: state.device.name, generation: issued.generation },
    }
}

/** The gateway's side of one connection, sans I/O: feed it each frame, send what it returns (see the file's head). */
export class Responder {
    #state: ResponderState = { phase: Phase.AwaitFirst }
    /** the context the transitions read: `ctx` with every policy field resolved */
    readonly ctx: ResolvedContext

    constructor(ctx: ResponderContext) {
        this.ctx = { ...ctx, policy: resolvePolicy(ctx.policy) }
    }

    /** The current state (tests read the session's CipherStates through it). */
    get state(): ResponderState {
        return this.#state
    }

    /** Processes one frame; the caller must not call again before this resolves. */
    async receive(frame: Frame): Promise<Step> {
        return this.step(frame)
    }

    /**
     * Processes one frame: the Step at once when nothing waits for the registry (a record of a
     * confirmed session, a protocol error), else a promise of it; the caller must not call
     * again before a promise resolves. The state is replaced when the Step is returned.
     */
    step(frame: Frame): Step | Promise<Step> {
        const r = this.#dispatch(frame)
        if (r instanceof Promise)
            return r.then(step => {
                this.#state = step.next
                return step
            })
        this.#state = r.next
        return r
    }

    #dispatch(f: Frame): Step | Promise<Step> {
        const s = this.#state
        switch (s.phase) {
            case Phase.AwaitFirst:
                if (f.type === FrameType.HS_INIT) return onHsInit(this.ctx, f.body)
                if (f.type === FrameType.RESUME_INIT) return onResumeInit(this.ctx, f.body)
                return reject(Code.PROTOCOL_ERROR, `frame type ${f.type} in AwaitFirst`)
            case Phase.AwaitHsInit:
                if (f.type === FrameType.HS_INIT) return onHsInit(this.ctx, f.body)
                return reject(Code.PROTOCOL_ERROR, `frame type ${f.type} after TICKET_REJECTED`)
            case Phase.Established:
                if (f.type === FrameType.RECORD) return onRecord(this.ctx, s, f.body)
                s.session.close()
                return silentClose("protocol-error", `frame type ${f.type} in Established`, s.device.name)
            case Phase.Closed:
                return silentClose("protocol-error", "frame after close")
        }
    }

    /**
     * Frames carrying a DATA record to the device (a KEY_UPDATE may come first).
     * @throws if no session is established
     */
    data(content: Buffer): Buffer[] {
        const s = this.#state
        if (s.phase !== Phase.Established) throw new Error("responder: no session")
        return records(s.session, InnerType.DATA, content)
    }

    /** The CLOSE(code) record frame, if a session exists; the state becomes Closed. */
    close(code: number): Buffer[] {
        const s = this.#state
        this.#state = CLOSED
        if (s.phase !== Phase.Established || s.session.dead) return []
        const frames = records(s.session, InnerType.CLOSE, Buffer.from([code]))
        s.session.close()
        return frames
    }
}
