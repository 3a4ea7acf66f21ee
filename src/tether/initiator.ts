// The device's side of a connection (PROTOCOL.md 4, 5, 6, 8) as a closed set of states and
// one transition function per incoming frame; the gateway's twin is responder.ts.
//
//     Idle            --(send RESUME_INIT)-->          AwaitResumeResp   a ticket is stored and its
//                                                                        slot's resumed < RESUME_CAP
//     Idle            --(send HS_INIT)-->              AwaitHsResp       otherwise
//     AwaitResumeResp --RESUME_RESP-->                 Established
//     AwaitResumeResp --REJECT(TICKET_REJECTED), within the fallback cap, send HS_INIT-->
//                                                      AwaitHsResp       (same connection)
//     AwaitHsResp     --HS_RESP-->                     Established
//     Established     --RECORD-->                      Established | Closed
//
// The session is Established as soon as the handshake's answer is verified (PROTOCOL.md 8).
// The device's first record follows at once: the DATA content the caller gave as `early` (the
// link's STREAM, 12.1) when it did not go, or was not accepted, as 0-RTT data. The gateway
// sends its TICKET only after that record (or right after RESUME_RESP when it accepted the
// early data), so a TICKET is a record like any other in Established: it is written to flash,
// with its pseudonym and the session's `resumed` count, before the next frame is processed
// (6.3). A REJECT never deletes the stored ticket (9.5).
//
// Early data goes only with a ticket whose age is known (saved in this boot, 6.2): with an
// unknown age RESUME_INIT carries 4 random bytes for it and no early data, and `early` is the
// first DATA record of the session instead.
//
// A transition computes on locals and returns a Step. A failed message returns the state it
// was given, unchanged (the pending handshake state is not advanced, nothing is stored), with
// `close` set: the driver then closes the connection and the machine is Closed. Nothing is
// sent to the gateway on a failure. Transitions do not touch the network, the clock or
// flash: the frames to send and the ticket to store are in the Step, and the keys, the
// randomness, the policy and the DH function come in through the InitiatorContext.
import { RandomSource } from "../crypto/random"
import { Frame } from "../net/transport"
import { CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { KkPending, Pairing, readHsResp, writeHsInit } from "./handshake"
import { ageAdd, obfuscateAge, readResumeResp, ResumePending, writeResumeInit } from "./resume"
import { Session } from "./session"
import { MAX_RESUMED, StoredTicket, TicketStore } from "./ticket-store"
import {
    Code,
    decodeTicketContent,
    EARLY_ACCEPTED,
    FrameType,
    InnerType,
    NONCE_I_LEN,
    OBFUSCATED_AGE_LEN,
    rejectCode,
    RESUME_CAP,
} from "./wire"

/** The closed set of states (PROTOCOL.md 8). */
export enum Phase {
    Idle,
    AwaitResumeResp,
    AwaitHsResp,
    Established,
    Closed,
}

/** How a session came about. */
export interface Handshake {
    /** the session came from a resumption */
    resumed: boolean
    /** the gateway delivered the early data in RESUME_INIT (0-RTT) */
    earlyAccepted: boolean
    /** a REJECT(TICKET_REJECTED) led to the full handshake on this connection */
    fellBack: boolean
    /**
     * the `resumed` count a TICKET of this session is stored with (PROTOCOL.md 6.6): 0 after a
     * full handshake, the resumed ticket's count + 1 after a resumption
     */
    ticketResumed: number
}

/** Nothing sent yet. */
export interface Idle {
    phase: Phase.Idle
}
/** RESUME_INIT sent; RESUME_RESP or a REJECT expected. */
export interface AwaitResumeResp {
    phase: Phase.AwaitResumeResp
    pending: ResumePending
    /** the DATA content to deliver first: sent as early data, or held (unknown age); sent as a record unless accepted */
    early: Buffer | undefined
    /** the `resumed` count of the ticket in RESUME_INIT */
    ticketResumed: number
}
/** HS_INIT sent; HS_RESP expected. */
export interface AwaitHsResp {
    phase: Phase.AwaitHsResp
    pending: KkPending
    /** the DATA content to send as the session's first record */
    early: Buffer | undefined
    /** this HS_INIT followed a REJECT(TICKET_REJECTED) on the same connection */
    fellBack: boolean
    /** HS_INIT named the device by its stored pseudonym (false: pseudonym0) */
    storedPseudonym: boolean
}
/** A session exists: records both ways; a TICKET is stored whenever it comes. */
export interface Established {
    phase: Phase.Established
    session: Session
    how: Handshake
}
/** The connection is over; every frame is refused. */
export interface Closed {
    phase: Phase.Closed
}

/** An initiator state. */
export type InitiatorState = Idle | AwaitResumeResp | AwaitHsResp | Established | Closed

/** What a transition did, for the driver's errors and logs. Never keys or payloads. */
export enum Outcome {
    /** a handshake frame was written */
    Started,
    /** a handshake completed: the session is established */
    Handshook,
    /** REJECT(TICKET_REJECTED) within the fallback cap: the full handshake follows on this connection */
    FellBack,
    /** a TICKET record (stored before the next frame is processed) */
    Ticket,
    /** a DATA record */
    Data,
    /** a KEY_UPDATE record: the receiving key was updated */
    KeyUpdate,
    /** a CLOSE record; `code` is its code */
    PeerClosed,
    /** a REJECT (or a TICKET_REJECTED past the fallback cap); `code` is its code */
    Rejected,
    /** a message that failed (decryption, length, flags); `detail` says which */
    Failed,
    /** a frame of the wrong type for the state */
    Unexpected,
}

/** The result of one transition. */
export interface Step {
    next: InitiatorState
    /** frames to send, in order */
    frames: Frame[]
    /** DATA contents for the application, in order */
    delivered: Buffer[]
    /** a ticket to write to flash before the next frame is processed */
    store?: StoredTicket
    /** close the connection (after sending `frames`) */
    close: boolean
    outcome: Outcome
    /** the REJECT or CLOSE code */
    code?: number
    /** local detail, never sent */
    detail?: string
}

/** The keys of one full handshake attempt, prepared while idle (PROTOCOL.md 4.3). */
export interface FullKeys {
    /** the ephemeral key pair, for this one attempt */
    e: KeyPair
    /** DH(e_device, s_gateway), for this one attempt */
    es: Buffer
    /** DH(s_device, s_gateway), cached per pairing */
    ss: Buffer
}

/** The pseudonym of one HS_INIT (PROTOCOL.md 4.4). */
export interface PseudonymChoice {
    /** 8 bytes */
    pseudonym: Buffer
    /** it is the stored one (false: pseudonym0) */
    stored: boolean
}

/** Everything the transitions need from outside. */
export interface InitiatorContext {
    pairing: Pairing
    dh: Dh
    /** nonces and unknown ages (and the ephemeral keys, through `fullKeys`) */
    random: RandomSource
    /** default AESCCM */
    cipher?: CipherFunction
    /** the keys of a full handshake attempt; the client prepares them while idle */
    fullKeys: () => Promise<FullKeys>
    /** the pseudonym of the next HS_INIT: the stored one, or pseudonym0 */
    pseudonym: () => PseudonymChoice
    /**
     * Called on every REJECT(TICKET_REJECTED): counts it and says whether the full handshake
     * follows on this connection (the fallback cap, PROTOCOL.md 6.9). Default: always.
     */
    fallBack?: () => boolean
}

const IDLE: Idle = { phase: Phase.Idle }
const CLOSED: Closed = { phase: Phase.Closed }
function step(next: InitiatorState, outcome: Outcome, frames: Frame[]): Step {
    return { next, frames, delivered: [], close: false, outcome }
}

/** A failed message: the state unchanged, nothing sent, the connection to be closed. */
function fail(s: InitiatorState, outcome: Outcome, detail: string, code?: number): Step {
    return { next: s, frames: [], delivered: [], close: true, outcome, detail, code }
}

/** A frame of the wrong type; a REJECT in a handshake state carries its code. */
function unexpected(s: InitiatorState, f: Frame): Step {
    const code = f.type === FrameType.REJECT ? rejectCode(f.body) : undefined
    if (code !== undefined) return fail(s, Outcome.Rejected, "tether: rejected with code " + code, code)
    return fail(s, Outcome.Unexpected, "tether: unexpected frame " + f.type)
}

function records(session: Session, type: number, content: Buffer): Frame[] {
    const out: Frame[] = []
    for (const body of session.encrypt(type, content)) out.push({ type: FrameType.RECORD, body })
    return out
}

/** The session exists: Established, and `early` goes as its first record unless the gateway accepted it as 0-RTT data. */
function handshook(session: Session, how: Handshake, early: Buffer | undefined): Step {
    // "If EARLY_ACCEPTED is clear and it sent early data, it sends the same data again as its
    // first DATA record under the new keys"; and the device's first record (its STREAM) goes
    // at once on every new session (8, 12.1)
    const frames = early !== undefined && !how.earlyAccepted ? records(session, InnerType.DATA, early) : []
    return step({ phase: Phase.Established, session, how }, Outcome.Handshook, frames)
}

/**
 * Idle: RESUME_INIT with the stored ticket (PROTOCOL.md 6.2). With a known age, `early` rides
 * as 0-RTT data; with an unknown age (undefined) the obfuscated age is 4 random bytes and
 * `early` waits for the session.
 * @param ageMs the ticket's age, or undefined when unknown
 * @throws on early data that does not fit the frame
 */
export function startResume(ctx: InitiatorContext, t: StoredTicket, ageMs: number | undefined, early: Buffer | undefined): Step {
    const known = ageMs !== undefined
    const pending = writeResumeInit({
        deviceId: ctx.pairing.deviceId,
        t,
        nonceI: ctx.random(NONCE_I_LEN),
        // "A device that does not know the age ... sends 4 random bytes and MUST NOT send early data"
        obfuscatedAge: known ? obfuscateAge(ageMs, ageAdd(t.secret)) : ctx.random(OBFUSCATED_AGE_LEN),
        early: known ? early : undefined,
        cipher: ctx.cipher,
    })
    const next: AwaitResumeResp = { phase: Phase.AwaitResumeResp, pending, early, ticketResumed: t.resumed }
    return step(next, Outcome.Started, [{ type: FrameType.RESUME_INIT, body: pending.body }])
}

/**
 * Idle, or after REJECT(TICKET_REJECTED): HS_INIT with the prepared ephemeral and its es
 * (PROTOCOL.md 4.1, 4.3), named by the context's pseudonym.
 */
export async function startFull(ctx: InitiatorContext, early: Buffer | undefined, fellBack: boolean): Promise<Step> {
    const k = await ctx.fullKeys()
    const p = ctx.pseudonym()
    const pending = await writeHsInit({
        pairing: ctx.pairing,
        pseudonym: p.pseudonym,
        e: k.e,
        es: k.es,
        ss: k.ss,
        dh: ctx.dh,
        cipher: ctx.cipher,
    })
    const next: AwaitHsResp = { phase: Phase.AwaitHsResp, pending, early, fellBack, storedPseudonym: p.stored }
    return step(next, fellBack ? Outcome.FellBack : Outcome.Started, [{ type: FrameType.HS_INIT, body: pending.body }])
}

/** RESUME_RESP in AwaitResumeResp: the session, or the state unchanged (readResumeResp works on a clone). */
export function onResumeResp(s: AwaitResumeResp, body: Buffer): Step {
    const r = readResumeResp(s.pending, body)
    if (r === undefined) return fail(s, Outcome.Failed, "tether: bad RESUME_RESP")
    const earlyAccepted = s.pending.early && (r.flags & EARLY_ACCEPTED) !== 0
    const ticketResumed = Math.min(s.ticketResumed + 1, MAX_RESUMED)
    return handshook(r.session, { resumed: true, earlyAccepted, fellBack: false, ticketResumed }, s.early)
}

/**
 * REJECT in AwaitResumeResp: TICKET_REJECTED falls back to the full handshake when the
 * fallback cap allows it, else ends with that code; anything else ends with its code.
 */
export async function onResumeReject(ctx: InitiatorContext, s: AwaitResumeResp, f: Frame): Promise<Step> {
    // keep the ticket: the REJECT is not authenticated (PROTOCOL.md 9.5)
    if (rejectCode(f.body) === Code.TICKET_REJECTED) {
        if (ctx.fallBack === undefined || ctx.fallBack()) return await startFull(ctx, s.early, true)
        return fail(s, Outcome.Rejected, "tether: ticket rejected, no fallback on this connection (PROTOCOL.md 6.9)", Code.TICKET_REJECTED)
    }
    return unexpected(s, f)
}

/** HS_RESP in AwaitHsResp: the session, or the state unchanged (readHsResp leaves `pending` as it was). */
export async function onHsResp(s: AwaitHsResp, body: Buffer): Promise<Step> {
    const session = await readHsResp(s.pending, body)
    if (session === undefined) return fail(s, Outcome.Failed, "tether: bad HS_RESP")
    return handshook(session, { resumed: false, earlyAccepted: false, fellBack: s.fellBack, ticketResumed: 0 }, s.early)
}

/** RECORD in Established (PROTOCOL.md 5): DATA delivered, TICKET stored, CLOSE or a bad record ends it. */
export function onRecord(s: Established, body: Buffer): Step {
    const r = s.session.decrypt(body)
    // "no plaintext of it is released and nothing is sent back"
    if (r === undefined) return fail(s, Outcome.Failed, "tether: bad record")
    if (r.type === InnerType.DATA) {
        const out = step(s, Outcome.Data, [])
        out.delivered = [r.content]
        return out
    }
    if (r.type === InnerType.TICKET) {
        // the session's decrypt checked the content's length (73)
        const t = decodeTicketContent(r.content)
        r.content.fillAt(0, r.content.length, 0) // best effort on a garbage-collected VM
        const out = step(s, Outcome.Ticket, [])
        out.store = { ticket: t.ticket, secret: t.secret, pseudonym: t.pseudonym, resumed: s.how.ticketResumed }
        return out
    }
    if (r.type === InnerType.CLOSE) {
        s.session.close()
        return fail(s, Outcome.PeerClosed, "tether: the gateway closed with code " + r.content[0], r.content[0])
    }
    return step(s, Outcome.KeyUpdate, [])
}

/** One connection's initiator: the state, the dispatch table, and the ticket stored before use. */
export class Initiator {
    /** The current state. */
    state: InitiatorState = IDLE

    constructor(
        private ctx: InitiatorContext,
        private store: TicketStore
    ) {}

    /**
     * Leaves Idle: a resumption with the stored ticket unless its slot reached the resumption
     * cap (PROTOCOL.md 6.9), else the full handshake.
     * @param early a DATA content to deliver as early as possible (0-RTT on a resumption with
     *     a known ticket age, else the session's first record)
     * @throws when not Idle, on oversized early data, or a zero DH output
     */
    async start(early?: Buffer): Promise<Step> {
        if (this.state.phase !== Phase.Idle) throw new Error("tether: the connection has started")
        const t = this.store.current()
        const s =
            t !== undefined && t.resumed < RESUME_CAP
                ? startResume(this.ctx, t, this.store.ageMs(), early)
                : await startFull(this.ctx, early, false)
        this.state = s.next
        return s
    }

    /**
     * Processes one frame; the caller must not call again before this resolves. A ticket in
     * the Step is in flash before this resolves; a closing Step leaves the machine Closed.
     * @throws when the ticket store fails (the state is then unchanged)
     */
    async receive(f: Frame): Promise<Step> {
        const s = await this.dispatch(f)
        if (s.store !== undefined) await this.store.save(s.store)
        this.state = s.close ? CLOSED : s.next
        return s
    }

    /** Closes the machine (the connection is going away). */
    close(): void {
        const s = this.state
        if (s.phase === Phase.Established) s.session.close()
        this.state = CLOSED
    }

    private async dispatch(f: Frame): Promise<Step> {
        const s = this.state
        switch (s.phase) {
            case Phase.AwaitResumeResp:
                if (f.type === FrameType.RESUME_RESP) return onResumeResp(s, f.body)
                if (f.type === FrameType.REJECT) return await onResumeReject(this.ctx, s, f)
                return unexpected(s, f)
            case Phase.AwaitHsResp:
                if (f.type === FrameType.HS_RESP) return await onHsResp(s, f.body)
                return unexpected(s, f)
            case Phase.Established:
                if (f.type === FrameType.RECORD) return onRecord(s, f.body)
                s.session.close()
                return fail(s, Outcome.Unexpected, "tether: unexpected frame " + f.type)
            default:
                // Idle (the gateway does not speak first) and Closed
                return unexpected(s, f)
        }
    }
}
