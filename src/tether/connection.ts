// An established connection to the gateway: records both ways over the Transport, each
// incoming frame handed to the initiator's machine (./initiator.ts), which is Established
// here. The gateway's TICKET comes on this connection, after the device's first record
// (PROTOCOL.md 6.3): it is stored in flash, with its pseudonym and the session's `resumed`
// count, before the next frame is processed. KEY_UPDATE is applied, a CLOSE or a bad record
// ends the connection without releasing any of its plaintext.
import * as ds from "@devicescript/core"
import { Frame, Transport } from "../net/transport"
import { Established, Initiator, Outcome, Phase, Step } from "./initiator"
import { Session } from "./session"
import { Code, FrameType, InnerType } from "./wire"

/** What {@link Connection.receive} got. */
export enum RecvKind {
    /** a DATA record's content */
    Data,
    /** nothing within the timeout; the connection is still up */
    Timeout,
    /**
     * the connection ended: the gateway closed (a CLOSE record, then `code` is its code), the
     * connection broke, or a bad record arrived (no plaintext of it is released)
     */
    Closed,
}

/** The result of {@link Connection.receive}. */
export type Received = { kind: RecvKind.Data; data: Buffer } | { kind: RecvKind.Timeout } | { kind: RecvKind.Closed; code: number }

const TIMEOUT: Received = { kind: RecvKind.Timeout }

/** An established connection: records both ways. */
export class Connection {
    /** true when this session came from a resumption */
    resumed = false
    /** true when the gateway delivered the early data in RESUME_INIT (0-RTT) */
    earlyAccepted = false
    /** true when a REJECT(TICKET_REJECTED) led to the full handshake on this connection */
    fellBack = false
    /** milliseconds from the first handshake frame sent to the session (critical path) */
    handshakeMs = 0
    /** the code of a CLOSE received from the gateway, or 0 */
    closeCode = 0
    private session: Session

    /** @internal use {@link TetherClient.connect} */
    constructor(
        private transport: Transport,
        private machine: Initiator
    ) {
        const s = machine.state as Established
        this.session = s.session
        this.resumed = s.how.resumed
        this.earlyAccepted = s.how.earlyAccepted
        this.fellBack = s.how.fellBack
    }

    /** Whether records can still be sent and received. */
    isOpen(): boolean {
        return !this.session.dead && this.transport.isOpen()
    }

    /**
     * Sends one DATA record (two frames when a KEY_UPDATE is due).
     * @throws when the session is dead or the connection closed
     */
    async send(data: Buffer): Promise<void> {
        await this.sendRecord(InnerType.DATA, data)
    }

    /** @internal */
    async sendRecord(type: number, content: Buffer): Promise<void> {
        const bodies = this.session.encrypt(type, content)
        for (const b of bodies) await this.transport.sendFrame(FrameType.RECORD, b)
    }

    /**
     * Receives the next DATA content. TICKET records are stored, KEY_UPDATE is applied.
     * @param timeoutMs how long to wait; forever when omitted
     * @returns Data; Timeout; or Closed when the connection ended (peer close, CLOSE record
     *     with its code, or a bad record: then it is closed without answering and no
     *     plaintext of it is released)
     * @throws when the ticket store fails to save a TICKET (the previous ticket stays
     *     current; the connection is closed)
     */
    async receive(timeoutMs?: number): Promise<Received> {
        const deadline = timeoutMs === undefined ? undefined : ds.millis() + timeoutMs
        for (;;) {
            if (this.session.dead || this.machine.state.phase !== Phase.Established) return this.ended()
            let left: number = undefined
            if (deadline !== undefined) {
                left = deadline - ds.millis()
                if (left <= 0) return TIMEOUT
            }
            let f: Frame
            try {
                f = await this.transport.recvFrame(left)
            } catch (e) {
                f = null // framing violation or connection error
            }
            if (f === undefined) return TIMEOUT
            if (f === null) {
                this.abort()
                return this.ended()
            }
            let step: Step
            try {
                step = await this.machine.receive(f)
            } catch (e) {
                this.abort() // a TICKET that did not reach flash: the previous ticket still works (6.3)
                throw e
            }
            if (step.outcome === Outcome.PeerClosed) this.closeCode = step.code
            if (step.close) {
                this.abort()
                return this.ended()
            }
            if (step.delivered.length > 0) return { kind: RecvKind.Data, data: step.delivered[0] }
        }
    }

    private ended(): Received {
        return { kind: RecvKind.Closed, code: this.closeCode }
    }

    private abort() {
        this.machine.close()
        this.transport.close()
    }

    /** Closes the connection without a CLOSE record, as when the radio goes away. */
    drop() {
        this.abort()
    }

    /** Sends CLOSE(NORMAL) when possible, then closes the connection. */
    async close(): Promise<void> {
        if (this.isOpen()) {
            try {
                await this.sendRecord(InnerType.CLOSE, Buffer.from([Code.NORMAL]))
            } catch (e) {
                // the connection is going away anyway
            }
        }
        this.abort()
    }
}
