// The Responder, fed a sequence of frames decoded from the input (FrameDecoder over the whole
// input; a bad length ends the sequence), against the vectors' gateway: its static and
// ephemeral keys, ticket key, nonce_r and clock, with the vectors' device paired in a fresh
// MemoryRegistry per input (issued generation 5, accepted 4, one full handshake at 1, and the
// kk vector's pseudonym, as the vectors expect). The seeds start with the vectors' HS_INIT and RESUME_INIT, so
// mutations reach Established and the record path.
//
// Invariants per step: receive never throws; `close` is "the next state is Closed"; every frame
// sent is one well-formed frame (a REJECT has one code, from section 7's table, and is sent
// alone, only before a session exists, and closes unless it is TICKET_REJECTED); a frame type
// not expected in the state closes, with REJECT(PROTOCOL_ERROR) before a session (2.1, 8); a
// version other than 1 is REJECT(UNSUPPORTED_VERSION) (2.2); nothing is sent and nothing
// delivered once Closed; data is delivered only in Established; a rejected message leaves the device's
// registry record as it was, and so does a handshake until the session is confirmed (6.3: an
// answered HS_INIT, a resumption without accepted early data); a record that fails to decrypt
// leaves the receiving nonce where it was.
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import { newDevice } from "../../src/registry/registry.js"
import { Phase, Responder, type ResponderContext, type ResponderState } from "../../src/session/responder.js"
import { TicketKeySet } from "../../src/tickets.js"
import { Code, FrameDecoder, FrameError, FrameType, MAX_FRAME_LEN, REJECT_BODY_LEN, VERSION, type Frame } from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { FRAME_DICTIONARY, hex, vectors } from "./common.js"

/** At most this many frames per input (a connection's worth). */
const MAX_FRAMES = 16

const snapshot = (d: unknown) => JSON.stringify(d, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v))

function framesOf(data: Buffer): Frame[] {
    try {
        return new FrameDecoder().push(data).slice(0, MAX_FRAMES)
    } catch (err) {
        if (err instanceof FrameError) {
            // the frames before the bad length still arrive: decode the prefix that precedes it
            const out: Frame[] = []
            let off = 0
            while (off + 2 <= data.length && out.length < MAX_FRAMES) {
                const len = data.readUInt16BE(off)
                if (len === 0 || len > MAX_FRAME_LEN || off + 2 + len > data.length) break
                out.push({ type: data[off + 2] as number, body: data.subarray(off + 3, off + 2 + len) })
                off += 2 + len
            }
            return out
        }
        throw err
    }
}

export async function create(): Promise<Target> {
    const kk = vectors("tether-kk.json")[0]
    const rv = vectors("tether-resume.json")[0]
    const identity = keyPairFromPrivate(hex(kk.gateway_static_private))
    const ephemeral = keyPairFromPrivate(hex(kk.gateway_ephemeral_private))
    const ticketKeys = TicketKeySet.fromKeys([{ id: rv.ticket_key_id, key: hex(rv.ticket_key), createdAt: rv.now }])
    const ssCache = new Map<string, Buffer>()
    const deviceId = kk.device_id as string
    const device = {
        ...newDevice({ id: deviceId, name: "vector-device", publicKey: hex(kk.device_static_public), psk: hex(kk.psk), now: rv.now }),
        issued_generation: 5,
        accepted_generation: 4,
        full_generation: 1,
        pseudonym: hex(kk.pseudonym),
    }
    const nonceR = hex(rv.nonce_r)
    const next = hex(kk.next_pseudonym)
    return {
        name: "responder",
        batch: 16,
        maxLen: 4096,
        dictionary: [...FRAME_DICTIONARY, hex(kk.pseudonym), hex(rv.ticket), hex(rv.obfuscated_age)],
        async run(data) {
            const registry = new MemoryRegistry()
            await registry.putDevice(device)
            const ctx: ResponderContext = {
                registry,
                identity,
                ticketKeys,
                now: () => rv.now,
                nowMs: () => rv.now_ms,
                ephemeral: () => ephemeral,
                rng: n => Buffer.from(n === nonceR.length ? nonceR : next),
                ssCache,
            }
            const r = new Responder(ctx)
            for (const f of framesOf(data)) {
                const before: ResponderState = r.state
                const reg0 = snapshot(await registry.getDevice(deviceId))
                const n0 = before.phase === Phase.Established ? before.session.recv.n : -1
                const step = await r.receive(f)
                check(step.next === r.state, "the state is not the step's next")
                check(step.close === (step.next.phase === Phase.Closed), `close ${step.close} with next phase ${step.next.phase}`)
                for (const out of step.frames) {
                    const got = new FrameDecoder().push(out)
                    check(got.length === 1 && out.length <= MAX_FRAME_LEN + 2, "a sent frame is not one well-formed frame")
                    const g = got[0] as Frame
                    if (g.type === FrameType.REJECT) check(g.body.length === REJECT_BODY_LEN, "REJECT body")
                }
                const rejects = step.frames.filter(x => x[2] === FrameType.REJECT)
                if (before.phase === Phase.Established || before.phase === Phase.Closed)
                    check(rejects.length === 0, "a REJECT after a session exists (2.1: close without answering)")
                if (rejects.length > 0) {
                    check(step.frames.length === 1, "a REJECT with other frames")
                    const code = (rejects[0] as Buffer)[3] as number
                    check(Object.values(Code).includes(code as Code), `REJECT code ${code} not in the table (7)`)
                    const want = code === Code.TICKET_REJECTED ? Phase.AwaitHsInit : Phase.Closed
                    check(step.next.phase === want, `REJECT(${code}) leads to phase ${step.next.phase}`)
                }
                const expected =
                    before.phase === Phase.AwaitFirst
                        ? [FrameType.HS_INIT, FrameType.RESUME_INIT]
                        : before.phase === Phase.AwaitHsInit
                          ? [FrameType.HS_INIT]
                          : [FrameType.RECORD]
                if (!expected.includes(f.type as never) && before.phase !== Phase.Closed) {
                    check(step.next.phase === Phase.Closed, `frame type ${f.type} in phase ${before.phase} did not close (8)`)
                    if (before.phase !== Phase.Established)
                        check(
                            rejects.length === 1 && (rejects[0] as Buffer)[3] === Code.PROTOCOL_ERROR,
                            "wrong type before a session: not REJECT(PROTOCOL_ERROR)"
                        )
                }
                if (expected.includes(f.type as never) && f.type !== FrameType.RECORD && f.body.length > 0 && f.body[0] !== VERSION)
                    check(
                        rejects.length === 1 && (rejects[0] as Buffer)[3] === Code.UNSUPPORTED_VERSION,
                        `version ${f.body[0]}: not REJECT(UNSUPPORTED_VERSION) (2.2)`
                    )
                if (before.phase === Phase.Closed)
                    check(step.frames.length === 0 && step.delivered.length === 0 && step.next.phase === Phase.Closed, "Closed answered")
                if (step.delivered.length > 0) check(step.next.phase === Phase.Established, "data delivered outside Established")
                const outcome = step.event?.outcome
                const unconfirmed = outcome === "full-handshake" || (outcome === "resumed" && step.event?.earlyAccepted !== true)
                if (outcome === "reject" || outcome === "bad-record" || outcome === "protocol-error" || unconfirmed)
                    check(
                        snapshot(await registry.getDevice(deviceId)) === reg0,
                        `a ${outcome} (${step.event?.detail}) changed the registry`
                    )
                if (outcome === "bad-record" && before.phase === Phase.Established && step.event?.detail?.startsWith("record failed"))
                    check(before.session.recv.n === n0, "a failed record advanced the receiving nonce")
            }
        },
    }
}
