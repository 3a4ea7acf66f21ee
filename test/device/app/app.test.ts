// The device's application layer (PROTOCOL.md 12): the codec (round trip, malformed input),
// the inbound stream (dedupe, gap), the bounded outbound queue, STREAM and resend with the
// right `delivered`, the stream restarted and renumbered when the gateway lost its receiving
// state (12.1), coalesced ACKs, RESPONSE matching and request timeouts.
// @timeout 30000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import {
    AppKind,
    AppProtocolError,
    decodeData,
    encodeAck,
    encodeNamed,
    encodeStream,
    encodedId,
    readU32,
    writeU32,
    MAX_APP_MSG_LEN,
    MAX_EARLY_CONTENT,
} from "../../../src/app/codec"
import { Arrival, InboundStream } from "../../../src/app/inbound"
import { OutboundStream, QueueFullError } from "../../../src/app/outbound"
import { AppLayer, RequestError, REQUEST_TIMEOUT } from "../../../src/app/app-layer"

const hex = (b: Buffer) => b.toString("hex")

/** A gateway-side message: kind || id || length || body. */
function msg(kind: number, id: number, body: Buffer): Buffer {
    const out = Buffer.alloc(7 + body.length)
    out[0] = kind
    writeU32(out, 1, id)
    out[5] = body.length >> 8
    out[6] = body.length & 0xff
    out.blitAt(7, body, 0, body.length)
    return out
}

function gwMessage(id: number, topic: string, payload: string): Buffer {
    const t = Buffer.from(topic)
    const p = Buffer.from(payload)
    const body = Buffer.alloc(1 + t.length + p.length)
    body[0] = t.length
    body.blitAt(1, t, 0, t.length)
    body.blitAt(1 + t.length, p, 0, p.length)
    return msg(AppKind.MESSAGE, id, body)
}

function gwResponse(id: number, requestId: number, status: number, payload: Buffer): Buffer {
    const body = Buffer.alloc(6 + payload.length)
    writeU32(body, 0, requestId)
    body[4] = status >> 8
    body[5] = status & 0xff
    body.blitAt(6, payload, 0, payload.length)
    return msg(AppKind.RESPONSE, id, body)
}

function cat(a: Buffer, b: Buffer): Buffer {
    const out = Buffer.alloc(a.length + b.length)
    out.blitAt(0, a, 0, a.length)
    out.blitAt(a.length, b, 0, b.length)
    return out
}

function throwsProtocol(f: () => any): boolean {
    try {
        f()
    } catch (e) {
        return e instanceof AppProtocolError
    }
    return false
}

/** Decodes what the device sent (device kinds are not accepted by decodeData). */
function sentKinds(c: Buffer): string {
    let s = ""
    let off = 0
    while (off < c.length) {
        const len = (c[off + 5] << 8) | c[off + 6]
        s += (s ? "," : "") + c[off] + ":" + readU32(c, off + 1)
        off += 7 + len
    }
    return s
}

describe("codec", () => {
    test("uint32 above 2^31 round trips", () => {
        const b = Buffer.alloc(4)
        writeU32(b, 0, 4294967295)
        expect(hex(b)).toBe("ffffffff")
        expect(readU32(b, 0)).toBe(4294967295)
        writeU32(b, 0, 0x80000001)
        expect(readU32(b, 0)).toBe(2147483649)
    })
    test("PUBLISH layout", () => {
        const m = encodeNamed(AppKind.PUBLISH, 0x01020304, "t", Buffer.from("ab"))
        expect(hex(m)).toBe("01" + "01020304" + "0004" + "01" + "74" + "6162")
        expect(encodedId(m)).toBe(0x01020304)
    })
    test("STREAM and ACK layout", () => {
        expect(hex(encodeStream(0xdeadbeef, 7, 300))).toBe("06" + "00000000" + "000c" + "deadbeef" + "00000007" + "0000012c")
        expect(hex(encodeAck(9))).toBe("05" + "00000009" + "0000")
    })
    test("gateway messages decode: MESSAGE, RESPONSE, ACK, STREAM in one content", () => {
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0xfffffffe)
        writeU32(st, 4, 5)
        writeU32(st, 8, 3)
        let c = cat(msg(AppKind.STREAM, 0, st), gwMessage(1, "led", "on"))
        c = cat(c, gwResponse(2, 77, 200, Buffer.from("ok")))
        c = cat(c, msg(AppKind.ACK, 4, Buffer.alloc(0)))
        const ms = decodeData(c)
        expect(ms.length).toBe(4)
        expect(ms[0].streamId).toBe(0xfffffffe)
        expect(ms[0].peerStreamId).toBe(5)
        expect(ms[0].delivered).toBe(3)
        expect(ms[1].topic).toBe("led")
        expect(ms[1].payload.toString()).toBe("on")
        expect(ms[2].requestId).toBe(77)
        expect(ms[2].status).toBe(200)
        expect(ms[2].payload.toString()).toBe("ok")
        expect(ms[3].kind).toBe(AppKind.ACK)
        expect(ms[3].id).toBe(4)
    })
    test("malformed input is a protocol error", () => {
        const good = gwMessage(1, "led", "on")
        expect(throwsProtocol(() => decodeData(Buffer.alloc(0)))).toBe(true)
        let truncated = 0
        for (let n = 1; n < good.length; n++) {
            try {
                decodeData(good.slice(0, n))
            } catch (e) {
                if (e instanceof AppProtocolError) truncated++
            }
        }
        expect(truncated).toBe(good.length - 1)
        expect(throwsProtocol(() => decodeData(gwMessage(0, "led", "on")))).toBe(true) // id 0
        expect(throwsProtocol(() => decodeData(msg(AppKind.PUBLISH, 1, Buffer.from("\x01ta"))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.REQUEST, 1, Buffer.from("\x01ta"))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(0x07, 1, Buffer.alloc(0))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.ACK, 1, Buffer.alloc(1))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.STREAM, 0, Buffer.alloc(11))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.STREAM, 1, Buffer.alloc(12))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.MESSAGE, 1, Buffer.from([0]))))).toBe(true) // empty topic
        expect(throwsProtocol(() => decodeData(msg(AppKind.MESSAGE, 1, Buffer.from([5, 0x61]))))).toBe(true)
        expect(throwsProtocol(() => decodeData(gwResponse(1, 1, 99, Buffer.alloc(0))))).toBe(true)
        expect(throwsProtocol(() => decodeData(gwResponse(1, 1, 600, Buffer.alloc(0))))).toBe(true)
        expect(throwsProtocol(() => decodeData(msg(AppKind.RESPONSE, 1, Buffer.alloc(5))))).toBe(true)
        // a good message followed by a truncated one: the whole content is refused
        expect(throwsProtocol(() => decodeData(cat(good, good.slice(0, 8))))).toBe(true)
    })
    test("encoder bounds: name 1..255 bytes, one record", () => {
        let threw = false
        try {
            encodeNamed(AppKind.PUBLISH, 1, "", Buffer.alloc(0))
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
        const max = encodeNamed(AppKind.PUBLISH, 1, "t", Buffer.alloc(MAX_APP_MSG_LEN - 9))
        expect(max.length).toBe(MAX_APP_MSG_LEN)
        threw = false
        try {
            encodeNamed(AppKind.PUBLISH, 1, "t", Buffer.alloc(MAX_APP_MSG_LEN - 8))
        } catch (e) {
            threw = e instanceof RangeError
        }
        expect(threw).toBe(true)
    })
})

describe("inbound stream", () => {
    test("delivers id == delivered + 1, drops duplicates, refuses a gap", () => {
        const s = new InboundStream()
        expect(throwsProtocol(() => s.arrive(1))).toBe(true) // before STREAM
        s.peerStream(42)
        expect(s.arrive(1)).toBe(Arrival.DELIVER)
        expect(s.arrive(2)).toBe(Arrival.DELIVER)
        expect(s.arrive(2)).toBe(Arrival.DUPLICATE)
        expect(s.arrive(1)).toBe(Arrival.DUPLICATE)
        expect(s.delivered).toBe(2)
        s.sessionStart()
        s.peerStream(42) // same stream: keep counting
        expect(s.arrive(3)).toBe(Arrival.DELIVER)
        s.peerStream(43) // a restarted gateway: start over
        expect(s.delivered).toBe(0)
        expect(s.arrive(1)).toBe(Arrival.DELIVER)
    })
    test("a gap: the stream is forgotten (LOST); a gap again before any delivery is an error", () => {
        const s = new InboundStream()
        s.sessionStart()
        s.peerStream(42)
        expect(s.arrive(1)).toBe(Arrival.DELIVER)
        expect(s.arrive(4)).toBe(Arrival.LOST) // this side lost its state for stream 42
        expect(s.streamId).toBe(0)
        expect(s.delivered).toBe(0)
        expect(s.arrive(5)).toBe(Arrival.IGNORE) // the rest of that stream, until its STREAM
        s.peerStream(77) // the gateway's new stream, renumbered from 1
        expect(s.arrive(1)).toBe(Arrival.DELIVER)
        expect(s.arrive(3)).toBe(Arrival.LOST) // after a delivery, a loss again
        s.sessionStart()
        s.peerStream(78)
        expect(throwsProtocol(() => s.arrive(2))).toBe(true) // the new stream must start at 1
    })
})

describe("outbound queue", () => {
    test("bounded by count, with QueueFullError; acks free room", () => {
        const q = new OutboundStream({ maxCount: 3, maxBytes: 1000, streamId: 1 })
        expect(q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))).toBe(1)
        q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))
        q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))
        let full = false
        try {
            q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))
        } catch (e) {
            full = e instanceof QueueFullError
        }
        expect(full).toBe(true)
        expect(q.count()).toBe(3)
        q.ack(2)
        expect(q.count()).toBe(1)
        expect(q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))).toBe(4)
    })
    test("bounded by bytes", () => {
        const q = new OutboundStream({ maxCount: 100, maxBytes: 40, streamId: 1 })
        q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(20)) // 7 + 1 + 1 + 20 = 29
        let full = false
        try {
            q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(3)) // 12 more: 41 > 40
        } catch (e) {
            full = e instanceof QueueFullError
        }
        expect(full).toBe(true)
        expect(q.size()).toBe(29)
        q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(2)) // exactly 40
        expect(q.size()).toBe(40)
    })
    test("an ACK of a message never queued is a protocol error", () => {
        const q = new OutboundStream({ streamId: 1 })
        q.enqueue(AppKind.PUBLISH, "t", Buffer.alloc(1))
        expect(throwsProtocol(() => q.ack(2))).toBe(true)
    })
    test("random stream ids are non-zero and differ", () => {
        const a = new OutboundStream()
        const b = new OutboundStream()
        expect(a.streamId !== 0 && a.streamId !== b.streamId).toBe(true)
    })
})

describe("app layer sessions", () => {
    test("STREAM first, queued messages as early data, resend above delivered", async () => {
        const app = new AppLayer({ streamId: 0x11111111 })
        for (let i = 0; i < 5; i++) app.publish("t", Buffer.from("m" + i))
        // session 1: everything rides in the first content
        const early1 = app.sessionStart()
        expect(sentKinds(early1)).toBe("6:0,1:1,1:2,1:3,1:4,1:5")
        expect(hex(early1.slice(7, 19))).toBe("11111111" + "00000000" + "00000000")
        expect(app.nextContent()).toBe(undefined) // nothing new on this session
        // the gateway's STREAM says it delivered 2 (it acked the rest never: the link dropped)
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0x22222222)
        writeU32(st, 4, 0x11111111)
        writeU32(st, 8, 2)
        await app.onData(msg(AppKind.STREAM, 0, st))
        expect(app.outbound.count()).toBe(3)
        // session 2: STREAM, then 3, 4, 5 (1 and 2 are released)
        const early2 = app.sessionStart()
        expect(sentKinds(early2)).toBe("6:0,1:3,1:4,1:5")
        // the gateway's STREAM names this stream with delivered 4: only 5 is still unacknowledged
        writeU32(st, 8, 4)
        await app.onData(msg(AppKind.STREAM, 0, st))
        expect(app.outbound.count()).toBe(1)
        expect(app.nextContent()).toBe(undefined) // 5 was already sent on this session
        app.publish("t", Buffer.from("m5"))
        expect(sentKinds(app.nextContent())).toBe("1:6")
    })
    test("a STREAM naming another stream: a new stream, its own STREAM first, everything resent", async () => {
        const app = new AppLayer({ streamId: 0x33333333 })
        app.publish("t", Buffer.from("a"))
        app.publish("t", Buffer.from("b"))
        app.sessionStart()
        const st = Buffer.alloc(12)
        writeU32(st, 0, 9)
        writeU32(st, 4, 0x44444444) // not this stream: the gateway lost its receiving state
        writeU32(st, 8, 100)
        await app.onData(msg(AppKind.STREAM, 0, st))
        expect(app.outbound.count()).toBe(2)
        expect(app.outbound.streamId !== 0x33333333 && app.outbound.streamId !== 0).toBe(true)
        expect(app.streamRestarts).toBe(1)
        // on this session: the new STREAM, then both messages again, renumbered from 1
        const c = app.nextContent()
        expect(sentKinds(c)).toBe("6:0,1:1,1:2")
        expect(readU32(c, 7)).toBe(app.outbound.streamId)
        expect(readU32(c, 11)).toBe(9) // the gateway's stream it receives
        expect(sentKinds(app.sessionStart())).toBe("6:0,1:1,1:2")
    })
    test("the gateway's receiver restarts mid-stream: acknowledged ones stay delivered, the rest renumbered, requests follow", async () => {
        const app = new AppLayer({ streamId: 0x12121212 })
        for (let i = 1; i <= 4; i++) app.publish("t", Buffer.from("m" + i))
        // a REQUEST (id 5) waits on another fiber
        let status = -1
        let reqFailed = false
        const asker = async () => {
            try {
                status = (await app.request("r", Buffer.from("q"), 2000, () => {})).status
            } catch (e) {
                reqFailed = true
            }
        }
        asker.start()
        await ds.sleep(5)
        expect(sentKinds(app.sessionStart())).toBe("6:0,1:1,1:2,1:3,1:4,2:5")
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0x99)
        writeU32(st, 4, 0x12121212)
        await app.onData(msg(AppKind.STREAM, 0, st))
        await app.onData(encodeAck(2)) // the gateway delivered and acknowledged 1 and 2
        expect(app.outbound.count()).toBe(3)
        // the gateway restarts without its receiving state: a new session, its STREAM says
        // it receives nothing (peer_stream_id 0)
        expect(sentKinds(app.sessionStart())).toBe("6:0,1:3,1:4,2:5")
        writeU32(st, 4, 0)
        await app.onData(msg(AppKind.STREAM, 0, st))
        const c = app.nextContent()
        expect(sentKinds(c)).toBe("6:0,1:1,1:2,2:3") // 3, 4, 5 as 1, 2, 3; 1 and 2 are gone
        expect(app.outbound.peekId()).toBe(4)
        // the RESPONSE to the REQUEST's new id reaches the waiting request
        await app.onData(gwResponse(1, 3, 200, Buffer.alloc(0)))
        await ds.sleep(10)
        expect(reqFailed).toBe(false)
        expect(status).toBe(200)
        expect(app.publish("t", Buffer.from("m6"))).toBe(4)
    })
    test("a gap from the gateway: STREAM with peer_stream_id 0, its messages ignored until it restarts", async () => {
        const app = new AppLayer({ streamId: 0x21 })
        const got: string[] = []
        app.onMessage((topic, payload) => {
            got.push(payload.toString())
        })
        app.sessionStart()
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0x55)
        writeU32(st, 4, 0x21)
        await app.onData(cat(msg(AppKind.STREAM, 0, st), cat(gwMessage(7, "a", "7"), gwMessage(8, "a", "8"))))
        expect(got.length).toBe(0)
        const c = app.nextContent()
        expect(sentKinds(c)).toBe("6:0") // no ACK: nothing was delivered
        expect(hex(c.slice(7, 19))).toBe("00000021" + "00000000" + "00000000")
        writeU32(st, 0, 0x56) // the gateway's new stream, renumbered
        await app.onData(cat(msg(AppKind.STREAM, 0, st), gwMessage(1, "a", "7")))
        expect(got.join(" ")).toBe("7")
        expect(sentKinds(app.nextContent())).toBe("5:1")
    })
    test("early data is capped at 960 bytes; the rest goes in the next record", () => {
        const app = new AppLayer({ streamId: 1, maxQueueBytes: 8000 })
        for (let i = 0; i < 10; i++) app.publish("t", Buffer.alloc(200)) // 209 bytes each
        const early = app.sessionStart()
        expect(early.length <= MAX_EARLY_CONTENT).toBe(true)
        expect(sentKinds(early)).toBe("6:0,1:1,1:2,1:3,1:4")
        expect(sentKinds(app.nextContent())).toBe("1:5,1:6,1:7,1:8")
        expect(sentKinds(app.nextContent())).toBe("1:9,1:10")
        expect(app.nextContent()).toBe(undefined)
    })
    test("inbound: delivered once and in order, duplicates re-ACKed, one coalesced ACK", async () => {
        const app = new AppLayer({ streamId: 1 })
        const got: string[] = []
        app.onMessage((topic, payload) => {
            got.push(topic + "=" + payload.toString())
        })
        app.sessionStart()
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0x55)
        writeU32(st, 4, 1) // names the device's stream
        await app.onData(cat(msg(AppKind.STREAM, 0, st), gwMessage(1, "a", "1")))
        await app.onData(gwMessage(2, "a", "2"))
        await app.onData(cat(gwMessage(2, "a", "2"), gwMessage(3, "a", "3")))
        expect(got.join(" ")).toBe("a=1 a=2 a=3")
        expect(app.duplicates).toBe(1)
        expect(sentKinds(app.nextContent())).toBe("5:3") // one ACK for three records
        expect(app.nextContent()).toBe(undefined)
        await app.onData(gwMessage(3, "a", "3")) // a pure duplicate is acknowledged again
        expect(sentKinds(app.nextContent())).toBe("5:3")
        // next session: the device's STREAM reports delivered 3 for stream 0x55
        expect(hex(app.sessionStart().slice(7, 19))).toBe("00000001" + "00000055" + "00000003")
    })
    test("request: RESPONSE matched by request_id; status 0 is a RequestError; timeout", async () => {
        const app = new AppLayer({ streamId: 1 })
        app.sessionStart()
        const st = Buffer.alloc(12)
        writeU32(st, 0, 0x66)
        writeU32(st, 4, 1) // names the device's stream
        await app.onData(msg(AppKind.STREAM, 0, st))
        let kicked = 0
        const kick = () => {
            kicked++
        }
        // the "gateway" answers from another fiber
        let answer = async () => {
            await ds.sleep(20)
            await app.onData(gwResponse(1, 1, 201, Buffer.from("made")))
        }
        answer.start()
        const r = await app.request("make", Buffer.from("x"), 1000, kick)
        expect(r.status).toBe(201)
        expect(r.payload.toString()).toBe("made")
        expect(kicked).toBe(1)
        answer = async () => {
            await ds.sleep(20)
            await app.onData(gwResponse(2, 2, 0, Buffer.from([1])))
        }
        answer.start()
        let code = 0
        try {
            await app.request("nope", Buffer.alloc(0), 1000, kick)
        } catch (e) {
            code = e instanceof RequestError ? (e as RequestError).code : -1
        }
        expect(code).toBe(1) // ROUTE_REFUSED
        code = 0
        const t0 = ds.millis()
        try {
            await app.request("slow", Buffer.alloc(0), 100, kick)
        } catch (e) {
            code = e instanceof RequestError ? (e as RequestError).code : -1
        }
        expect(code).toBe(REQUEST_TIMEOUT)
        expect(ds.millis() - t0 >= 100).toBe(true)
        // a late RESPONSE is acknowledged and dropped; the three REQUESTs follow the ACK
        await app.onData(gwResponse(3, 3, 200, Buffer.alloc(0)))
        expect(sentKinds(app.nextContent())).toBe("5:3,2:1,2:2,2:3")
    })
})
