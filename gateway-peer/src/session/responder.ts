// The gateway's side of a connection (PROTOCOL.md 4, 5, 6, 8) as a closed set of states and
// one transition function per message:
//
//     AwaitFirst  --HS_INIT-->      Established     (full handshake, KKpsk2)
//     AwaitFirst  --RESUME_INIT-->  Established     (resumption)
//     AwaitFirst  --RESUME_INIT, ticket refused-->  AwaitHsInit  (REJECT(TICKET_REJECTED), 6.2)
//     AwaitHsInit --HS_INIT-->      Established
//     Established --RECORD-->       Established | Closed
//
// A transition computes on locals and returns the next state; the state is replaced only
// when the whole message was processed, so a failed message leaves it exactly as it was.
// The peer gets one code; the detail is returned for local logging only. No transition logs,
// opens sockets or reads the clock itself: registry, keys, time, randomness and the DH
// function come in through the ResponderContext.
import { randomBytes, type RandomSource } from "../crypto/random.js"
import { generateKeyPair, type KeyPair } from "../crypto/x25519.js"
import { resolvePolicy, type ResponderPolicy } from "../policy.js"
import type { Registry } from "../registry/registry.js"
import { deviceIdHex, type DeviceRecord } from "../registry/registry.js"
import { encodeTicketContent, MAX_GENERATION, mintTicket, openTicket, type TicketKeySet } from "../tickets.js"
import { Code, EARLY_ACCEPTED, encodeFrame, FrameType, InnerType, RESUME_NONCE_LEN, type Frame } from "../wire.js"
import { consumeHsInit, readHsInit, writeHsResp, X25519, type Dh } from "./handshake.js"
import { consumeResumeInit, readResumeInit, writeResumeResp } from "./resume.js"
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

/** A responder state. */
export type ResponderState =
    | { readonly phase: typeof Phase.AwaitFirst }
    | { readonly phase: typeof Phase.AwaitHsInit }
    | { readonly phase: typeof Phase.Established; readonly device: DeviceRecord; readonly session: Session; readonly resumed: boolean }
    | { readonly phase: typeof Phase.Closed }

/** What happened, for the connection log. Never keys, tickets or payloads. */
export interface StepEvent {
    /** e.g. "full-handshake", "resumed", "reject", "closed-by-peer", "bad-record" */
    readonly outcome: string
    /** the code sent (REJECT) or received (CLOSE) */
    readonly code?: number
    /** local detail, never sent */
    readonly detail?: string
    readonly deviceName?: string
    readonly earlyAccepted?: boolean
    readonly generation?: number
}

/** The result of one transition. */
export interface Step {
    readonly next: ResponderState
    /** encoded frames to send, in order */
    readonly frames: Buffer[]
    /** DATA contents for the application, in order */
    readonly delivered: Buffer[]
    /** close the connection after sending `frames` */
    readonly close: boolean
    readonly event?: StepEvent
}

const CLOSED: ResponderState = { phase: Phase.Closed }

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

/** The TICKET record: "After every successful handshake (full or resumed) the gateway sends one". */
async function issueTicket(
    ctx: ResolvedContext,
    device: DeviceRecord,
    session: Session,
    full: boolean
): Promise<{ frames: Buffer[]; generation: number }> {
    const generation = await ctx.registry.issueGeneration(device.id)
    if (full) await ctx.registry.markFullHandshake(device.id, generation)
    const expiresAt = ctx.now() + ctx.policy.ticketLifetime
    const m = mintTicket({ deviceId: Buffer.from(device.id, "hex"), generation, expiresAt, keySet: ctx.ticketKeys })
    const content = encodeTicketContent(m.ticket, m.resumptionSecret)
    const frames = records(session, InnerType.TICKET, content)
    m.resumptionSecret.fill(0) // best effort on a garbage-collected VM
    content.fill(0)
    return { frames, generation }
}

/** HS_INIT in AwaitFirst or AwaitHsInit (PROTOCOL.md 4.1, checks in its order). */
export async function onHsInit(ctx: ResolvedContext, body: Buffer): Promise<Step> {
    // 1. frame length and type, version
    const init = readHsInit(body)
    if ("error" in init) {
        if (init.error === "version") return reject(Code.UNSUPPORTED_VERSION, `HS_INIT: version ${init.version}`)
        return reject(Code.PROTOCOL_ERROR, init.error === "empty" ? "HS_INIT: empty body" : `HS_INIT: ${init.length} bytes`)
    }
    // 2. the registry, before any X25519
    const { deviceId } = init
    const device = await ctx.registry.getDevice(deviceIdHex(deviceId))
    if (device === undefined) return reject(Code.UNKNOWN_DEVICE, `HS_INIT: unknown device ${deviceIdHex(deviceId)}`)
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
    const keys = { deviceId, s: ctx.identity, rs: device.publicKey, psk: device.psk, ss, dh }
    const read = consumeHsInit(keys, init.message)
    if (read === undefined) return reject(Code.HANDSHAKE_FAILED, "HS_INIT: message 1 failed", CLOSED, device.name)
    let hs
    try {
        hs = writeHsResp(read, ctx.ephemeral?.() ?? generateKeyPair(ctx.rng))
    } catch {
        return reject(Code.HANDSHAKE_FAILED, "HS_RESP: DH failed", CLOSED, device.name)
    }
    const ticket = await issueTicket(ctx, device, hs.session, true)
    return {
        next: { phase: Phase.Established, device, session: hs.session, resumed: false },
        frames: [encodeFrame(FrameType.HS_RESP, hs.body), ...ticket.frames],
        delivered: [],
        close: false,
        event: { outcome: "full-handshake", deviceName: device.name, generation: ticket.generation },
    }
}

/** RESUME_INIT in AwaitFirst (PROTOCOL.md 6.2, checks in its order; no X25519 at all). */
export async function onResumeInit(ctx: ResolvedContext, body: Buffer): Promise<Step> {
    const init = readResumeInit(body)
    if ("error" in init) {
        if (init.error === "version") return reject(Code.UNSUPPORTED_VERSION, `RESUME_INIT: version ${init.version}`)
        return reject(Code.PROTOCOL_ERROR, init.error === "empty" ? "RESUME_INIT: empty body" : `RESUME_INIT: ${init.length} bytes`)
    }
    // A refused ticket leaves the connection open for HS_INIT (6.2: "the device runs the full
    // handshake on the same connection").
    const refuse = (detail: string, name?: string) => reject(Code.TICKET_REJECTED, detail, { phase: Phase.AwaitHsInit }, name)
    // 1. the ticket: live key, mac, expiry; the device; min_generation; the chain limit
    const now = ctx.now()
    const t = openTicket(init.ticket, ctx.ticketKeys, now)
    if ("error" in t) return refuse(`ticket: ${t.error}`)
    const device = await ctx.registry.getDevice(deviceIdHex(t.deviceId))
    if (device === undefined) return refuse("ticket: unknown device")
    if (device.revoked) return refuse("ticket: revoked device", device.name)
    if (exhausted(device))
        return {
            ...refuse(EXHAUSTED_DETAIL, device.name),
            event: { outcome: "generations-exhausted", code: Code.TICKET_REJECTED, detail: EXHAUSTED_DETAIL, deviceName: device.name },
        }
    if (t.generation < device.min_generation)
        return refuse(`ticket: generation ${t.generation} below min ${device.min_generation}`, device.name)
    if (t.generation - device.full_generation >= ctx.policy.chainLimit) return refuse("ticket: chain limit", device.name)
    // 2. the SymmetricState steps, early data
    const read = consumeResumeInit(init, t.resumptionSecret)
    t.resumptionSecret.fill(0)
    if (read === undefined) return refuse("RESUME_INIT: early data failed to decrypt", device.name)
    const hasEarly = read.early.length > 0
    if (hasEarly && read.early[0] !== InnerType.DATA) return refuse("RESUME_INIT: early data is not DATA", device.name)
    // 3. the replay rule, atomically with the generation update (6.4)
    const verdict = await ctx.registry.acceptGeneration(device.id, t.generation)
    const accepted = hasEarly && verdict === "newer"
    const rs = writeResumeResp(read, (ctx.rng ?? randomBytes)(RESUME_NONCE_LEN), accepted ? EARLY_ACCEPTED : 0)
    const issued = await issueTicket(ctx, device, rs.session, false)
    return {
        next: { phase: Phase.Established, device, session: rs.session, resumed: true },
        frames: [encodeFrame(FrameType.RESUME_RESP, rs.body), ...issued.frames],
        delivered: accepted ? [Buffer.from(read.early.subarray(1))] : [],
        close: false,
        event: { outcome: "resumed", deviceName: device.name, earlyAccepted: accepted, generation: issued.generation },
    }
}

/** RECORD in Established (PROTOCOL.md 5). */
export function onRecord(state: Extract<ResponderState, { phase: typeof Phase.Established }>, body: Buffer): Step {
    const name = state.device.name
    const r = state.session.decrypt(body)
    if (r === undefined) return silentClose("bad-record", "record failed to decrypt or is malformed", name)
    switch (r.type) {
        case InnerType.DATA:
            return { next: state, frames: [], delivered: [Buffer.from(r.content)], close: false }
        case InnerType.KEY_UPDATE:
            return { next: state, frames: [], delivered: [], close: false, event: { outcome: "key-update", deviceName: name } }
        case InnerType.CLOSE:
            state.session.close()
            return silentClose("closed-by-peer", "CLOSE", name, r.content[0])
        default:
            // TICKET from the device: "gateway -> device only"
            state.session.close()
            return silentClose("bad-record", `inner type ${r.type} from the device`, name)
    }
}

/** One connection's responder: the state and the dispatch table. */
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
        const step = await this.#dispatch(frame)
        this.#state = step.next
        return step
    }

    async #dispatch(f: Frame): Promise<Step> {
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
                if (f.type === FrameType.RECORD) return onRecord(s, f.body)
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
