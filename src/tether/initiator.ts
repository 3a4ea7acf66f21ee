// The device's side of a connection (PROTOCOL.md 4, 5, 6, 8) as a closed set of states and
// one transition function per incoming frame; the gateway's twin is responder.ts.
//
//     Idle            --(send RESUME_INIT)-->          AwaitResumeResp   a ticket is stored
//     Idle            --(send HS_INIT)-->              AwaitHsResp       none is
//     AwaitResumeResp --RESUME_RESP-->                 AwaitTicket
//     AwaitResumeResp --REJECT(TICKET_REJECTED), send HS_INIT-->  AwaitHsResp  (same connection)
//     AwaitHsResp     --HS_RESP-->                     AwaitTicket
//     AwaitTicket     --RECORD(TICKET), stored-->      Established
//     Established     --RECORD-->                      Established | Closed
//
// "After either handshake the gateway's first record is a TICKET": it is written to flash
// before the state becomes Established (6.3), and a REJECT never deletes the stored ticket
// (9.5). Early data that the gateway did not accept is sent again as a DATA record under the
// new keys, right after the session exists (6.2).
//
// A transition computes on locals and returns a Step. A failed message returns the state it
// was given, unchanged (the pending handshake state is not advanced, nothing is stored), with
// `close` set: the driver then closes the connection and the machine is Closed. Nothing is
// sent to the gateway on a failure. Transitions do not touch the network, the clock or
// flash: the frames to send and the ticket to store are in the Step, and the keys, the
// randomness and the DH function come in through the InitiatorContext.
import { RandomSource } from "../crypto/random"
import { Frame } from "../net/transport"
import { CipherFunction } from "../noise/cipher"
import { Dh, KeyPair } from "../noise/dh"
import { KkPending, Pairing, readHsResp, writeHsInit } from "./handshake"
import { readResumeResp, ResumePending, ResumeTicket, writeResumeInit } from "./resume"
import { Session } from "./session"
import { TicketStore } from "./ticket-store"
import { Code, decodeTicketContent, EARLY_ACCEPTED, FrameType, InnerType, rejectCode, RESUME_NONCE_LEN } from "./wire"

/** The closed set of states (PROTOCOL.md 8). */
export enum Phase {
    Idle,
    AwaitResumeResp,
    AwaitHsResp,
    AwaitTicket,
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
}

/** Nothing sent yet. */
export interface Idle {
    phase: Phase.Idle
}
/** RESUME_INIT sent; RESUME_RESP or a REJECT expected. */
export interface AwaitResumeResp {
    phase: Phase.AwaitResumeResp
    pending: ResumePending
    /** the early data sent, kept to be sent again if the gateway does not accept it */
    early: Buffer | undefined
}
/** HS_INIT sent; HS_RESP expected. */
export interface AwaitHsResp {
    phase: Phase.AwaitHsResp
    pending: KkPending
    early: Buffer | undefined
    /** this HS_INIT followed a REJECT(TICKET_REJECTED) on the same connection */
    fellBack: boolean
}
/** A session exists; its first record must be the TICKET. */
export interface AwaitTicket {
    phase: Phase.AwaitTicket
    session: Session
    how: Handshake
}
/** The TICKET is stored; records both ways. */
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
export type InitiatorState = Idle | AwaitResumeResp | AwaitHsResp | AwaitTicket | Established | Closed

/** What a transition did, for the driver's errors and logs. Never keys or payloads. */
export enum Outcome {
    /** a handshake frame was written */
    Started,
    /** a handshake completed: a session exists, its TICKET is awaited */
    Handshook,
    /** REJECT(TICKET_REJECTED): the full handshake follows on this connection */
    FellBack,
    /** the TICKET was received (stored before the next state is used) */
    Ticket,
    /** a DATA record */
    Data,
    /** a KEY_UPDATE record: the receiving key was updated */
    KeyUpdate,
    /** a CLOSE record; `code` is its code */
    PeerClosed,
    /** a REJECT; `code` is its code */
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
    /** a ticket to write to flash before `next` is used */
    store?: ResumeTicket
    /** close the connection (after sending `frames`) */
    close: boolean
    outcome: Outcome
    /** the REJECT or CLOSE code */
    code?: number
    /** local detail, never sent */
    detail?: string
}

/** Everything the transitions need from outside. */
export interface InitiatorContext {
    pairing: Pairing
    dh: Dh
    /** nonces (and the ephemeral keys, through `fullKeys`) */
    random: RandomSource
    /** default AESCCM */
    cipher?: CipherFunction
    /**
     * The ephemeral key pair (used for this one attempt, PROTOCOL.md 4.3) and the cached
     * `ss` of a full handshake; the client prepares them while idle.
     */
    fullKeys: () => Promise<{ e: KeyPair; ss: Buffer }>
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

/** The session exists: the TICKET is awaited, and unaccepted early data is sent again. */
function handshook(session: Session, how: Handshake, early: Buffer | undefined): Step {
    // "If EARLY_ACCEPTED is clear and it sent early data, it sends the same data again as a
    // DATA record under the new keys"
    const frames = early !== undefined && !how.earlyAccepted ? records(session, InnerType.DATA, early) : []
    return step({ phase: Phase.AwaitTicket, session, how }, Outcome.Handshook, frames)
}

/**
 * Idle: RESUME_INIT with the stored ticket and `early` as 0-RTT data (PROTOCOL.md 6.2).
 * @throws on early data that does not fit the frame
 */
export function startResume(ctx: InitiatorContext, t: ResumeTicket, early: Buffer | undefined): Step {
    const pending = writeResumeInit(t, ctx.random(RESUME_NONCE_LEN), early, ctx.cipher)
    const next: AwaitResumeResp = { phase: Phase.AwaitResumeResp, pending, early }
    return step(next, Outcome.Started, [{ type: FrameType.RESUME_INIT, body: pending.body }])
}

/**
 * Idle, or after REJECT(TICKET_REJECTED): HS_INIT with a fresh ephemeral (PROTOCOL.md 4.1).
 * @throws if a DH output is all zero
 */
export async function startFull(ctx: InitiatorContext, early: Buffer | undefined, fellBack: boolean): Promise<Step> {
    const k = await ctx.fullKeys()
    const pending = await writeHsInit({ pairing: ctx.pairing, e: k.e, ss: k.ss, dh: ctx.dh, cipher: ctx.cipher })
    const next: AwaitHsResp = { phase: Phase.AwaitHsResp, pending, early, fellBack }
    return step(next, fellBack ? Outcome.FellBack : Outcome.Started, [{ type: FrameType.HS_INIT, body: pending.body }])
}

/** RESUME_RESP in AwaitResumeResp: the session, or the state unchanged (readResumeResp works on a clone). */
export function onResumeResp(s: AwaitResumeResp, body: Buffer): Step {
    const r = readResumeResp(s.pending, body)
    if (r === undefined) return fail(s, Outcome.Failed, "tether: bad RESUME_RESP")
    const earlyAccepted = s.early !== undefined && (r.flags & EARLY_ACCEPTED) !== 0
    return handshook(r.session, { resumed: true, earlyAccepted, fellBack: false }, s.early)
}

/** REJECT in AwaitResumeResp: TICKET_REJECTED falls back to the full handshake, anything else ends. */
export async function onResumeReject(ctx: InitiatorContext, s: AwaitResumeResp, f: Frame): Promise<Step> {
    // keep the ticket: the REJECT is not authenticated (PROTOCOL.md 9.5)
    if (rejectCode(f.body) === Code.TICKET_REJECTED) return await startFull(ctx, s.early, true)
    return unexpected(s, f)
}

/** HS_RESP in AwaitHsResp: the session, or the state unchanged (readHsResp leaves `pending` as it was). */
export async function onHsResp(s: AwaitHsResp, body: Buffer): Promise<Step> {
    const session = await readHsResp(s.pending, body)
    if (session === undefined) return fail(s, Outcome.Failed, "tether: bad HS_RESP")
    return handshook(session, { resumed: false, earlyAccepted: false, fellBack: s.fellBack }, s.early)
}

/** RECORD in AwaitTicket: it must be the TICKET, which is stored before Established is used (6.3). */
export function onFirstRecord(s: AwaitTicket, body: Buffer): Step {
    const r = s.session.decrypt(body)
    const t = r !== undefined && r.type === InnerType.TICKET ? decodeTicketContent(r.content) : undefined
    if (r !== undefined) r.content.fillAt(0, r.content.length, 0) // best effort on a garbage-collected VM
    if (t === undefined) {
        s.session.close()
        return fail(s, Outcome.Failed, "tether: no TICKET after the handshake")
    }
    const next: Established = { phase: Phase.Established, session: s.session, how: s.how }
    const out = step(next, Outcome.Ticket, [])
    out.store = t
    return out
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
        const t = decodeTicketContent(r.content)
        r.content.fillAt(0, r.content.length, 0) // best effort on a garbage-collected VM
        const out = step(s, Outcome.Ticket, [])
        out.store = t
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
     * Leaves Idle: a resumption with the stored ticket, else the full handshake.
     * @param early a DATA content to deliver as early as possible (0-RTT on a resumption)
     * @throws when not Idle, on oversized early data, or a zero DH output
     */
    async start(early?: Buffer): Promise<Step> {
        if (this.state.phase !== Phase.Idle) throw new Error("tether: the connection has started")
        const t = this.store.current()
        const s = t !== undefined ? startResume(this.ctx, t, early) : await startFull(this.ctx, early, false)
        this.state = s.next
        return s
    }

    /**
     * Processes one frame; the caller must not call again before this resolves. A ticket in
     * the Step is in flash before the state moves on; a closing Step leaves the machine Closed.
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
        if (s.phase === Phase.AwaitTicket || s.phase === Phase.Established) s.session.close()
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
            case Phase.AwaitTicket:
                if (f.type === FrameType.RECORD) return onFirstRecord(s, f.body)
                s.session.close()
                return fail(s, Outcome.Unexpected, "tether: no TICKET after the handshake")
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
