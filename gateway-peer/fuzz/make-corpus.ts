// Writes the seed corpus (fuzz/corpus/<target>/) from the committed vectors:
//
//     node gateway-peer/dist/fuzz/make-corpus.js
//
// Deterministic: the same vectors give the same files. The records after a handshake come from
// the initiator's session of tether-kk.json (its HS_INIT again, the vector's HS_RESP read), so
// the responder target's seeds reach Established and carry DATA, KEY_UPDATE and CLOSE.
import { AppKind, encodeApp } from "../src/app/codec.js"
import { keyPairFromPrivate } from "../src/crypto/x25519.js"
import { readHsResp, writeHsInit } from "../src/session/handshake.js"
import { encodeFrame, FrameType, InnerType } from "../src/wire.js"
import { saveInputs } from "./corpus.js"
import { bodyOf, hex, vectors } from "./targets/common.js"

const kk = vectors("tether-kk.json")[0]
const resumes = vectors("tether-resume.json")
const cat = (...b: Buffer[]) => Buffer.concat(b)
const byte = (n: number) => Buffer.from([n])

// the device's session of the KK vector, for records of every inner type
const pending = writeHsInit(
    {
        pseudonym: hex(kk.pseudonym),
        s: keyPairFromPrivate(hex(kk.device_static_private)),
        rs: hex(kk.gateway_static_public),
        psk: hex(kk.psk),
    },
    keyPairFromPrivate(hex(kk.device_ephemeral_private))
)
const done = readHsResp(pending, bodyOf(kk.hs_resp))
if (done === undefined) throw new Error("make-corpus: the KK vector's HS_RESP does not verify")
const rec = (type: number, content: Buffer) => cat(...done.session.encrypt(type, content).map(b => encodeFrame(FrameType.RECORD, b)))
const publish = encodeApp({ kind: AppKind.PUBLISH, id: 1, topic: "t/1", payload: Buffer.from("hi") })
const r0 = rec(InnerType.DATA, hex(kk.data_i2r)) // = the vector's record_data_i2r
const r1 = rec(InnerType.DATA, publish)
const r2 = rec(InnerType.KEY_UPDATE, Buffer.alloc(0))
const r3 = rec(InnerType.DATA, publish)
const r4 = rec(InnerType.CLOSE, byte(0x10))
if (!r0.equals(hex(kk.record_data_i2r))) throw new Error("make-corpus: the records do not match the vector")

const badTicket = Buffer.from(hex(resumes[0].resume_init))
badTicket[20] = (badTicket[20] as number) ^ 1 // in the ticket's MAC: TICKET_REJECTED, then HS_INIT on the same connection

const corpus: Record<string, Buffer[]> = {
    frame: [
        cat(byte(0), hex(kk.hs_init), hex(kk.hs_resp), hex(kk.record_ticket), hex(kk.record_data_i2r)),
        cat(byte(7), ...resumes.map(v => cat(hex(v.resume_init), hex(v.resume_resp)))),
        cat(byte(3), encodeFrame(FrameType.REJECT, byte(0x04))),
    ],
    "hs-init": [bodyOf(kk.hs_init), cat(bodyOf(kk.hs_init), byte(0))],
    "resume-init": resumes.map(v => bodyOf(v.resume_init)),
    ticket: [
        cat(byte(0x80), hex(kk.ticket)),
        ...resumes.map(v => cat(byte(0x80), hex(v.ticket))),
        cat(byte(0x80), hex(resumes[0].next_ticket)),
    ],
    responder: [
        cat(hex(kk.hs_init), r0, r1, r2, r3, r4),
        cat(hex(kk.hs_init), r0),
        ...resumes.map(v => cat(hex(v.resume_init), hex(v.record_data_i2r))),
        cat(badTicket, hex(kk.hs_init), r0),
    ],
    "app-codec": [
        cat(byte(0), publish),
        cat(
            byte(0),
            encodeApp({ kind: AppKind.REQUEST, id: 2, route: "weather", payload: Buffer.from("{}") }),
            encodeApp({ kind: AppKind.ACK, id: 1 })
        ),
        cat(byte(0), encodeApp({ kind: AppKind.STREAM, streamId: 7, peerStreamId: 9, delivered: 3 })),
        cat(byte(1), encodeApp({ kind: AppKind.RESPONSE, id: 1, requestId: 2, status: 200, payload: Buffer.from("ok") })),
        cat(
            byte(1),
            encodeApp({ kind: AppKind.MESSAGE, id: 3, topic: "cmd", payload: Buffer.from([1, 2]) }),
            encodeApp({ kind: AppKind.ACK, id: 5 })
        ),
        cat(byte(1), encodeApp({ kind: AppKind.RESPONSE, id: 4, requestId: 3, status: 0, payload: byte(0x02) })),
    ],
    config: [
        cat(
            byte(0),
            Buffer.from(
                JSON.stringify({
                    routes: {
                        weather: { url: "http://127.0.0.1:8080/w", method: "POST", timeoutMs: 5000, maxResponseBytes: 993, devices: ["*"] },
                    },
                })
            )
        ),
        cat(
            byte(0),
            Buffer.from(JSON.stringify({ routes: { t: { url: "https://example.invalid/", method: "get", devices: ["a", "b"] } } }))
        ),
        cat(byte(0), Buffer.from("{}")),
        byte(1),
        cat(byte(1), Buffer.from([3, 5, 9, 20])),
    ],
}

for (const [name, inputs] of Object.entries(corpus)) {
    const files = saveInputs(name, inputs)
    console.log(`${name}: ${files.length} seeds`)
}
