import { test } from "node:test"
import assert from "node:assert/strict"
import * as W from "../src/wire.js"

test("wire sizes match PROTOCOL.md's tables", () => {
    assert.equal(W.HS_INIT_FRAME_LEN, 60)
    assert.equal(W.HS_RESP_FRAME_LEN, 51)
    assert.equal(W.HS_INIT_FRAME_LEN + W.HS_RESP_FRAME_LEN, 111)
    assert.equal(W.TICKET_LEN, 33)
    assert.equal(W.TICKET_BODY_LEN, 17)
    assert.equal(W.RESUME_INIT_MIN_FRAME_LEN, 65)
    assert.equal(W.RESUME_RESP_FRAME_LEN, 32)
    assert.equal(W.RESUME_INIT_MIN_FRAME_LEN + W.RESUME_RESP_FRAME_LEN, 97)
    assert.equal(W.TICKET_FIELDS_LEN, 16, "device_id || generation || issued_at: one AES block (6.1)")
    assert.equal(W.TICKET_SEALED_OFFSET, 1)
    assert.equal(W.TICKET_MAC_OFFSET, 17)
    assert.equal(W.TICKET_CONTENT_LEN, 73, "ticket || resumption_secret || next_pseudonym (6.3)")
    assert.equal(W.TICKET_RECORD_FRAME_LEN, 93)
    assert.equal(W.PSEUDONYM_LEN, 8)
    assert.equal(W.HS_INIT_PSEUDONYM_OFFSET, 1)
    assert.equal(W.HS_INIT_BODY_LEN, 57)
    assert.equal(W.RESUME_INIT_AGE_OFFSET, 34)
    assert.equal(W.RESUME_INIT_NONCE_OFFSET, 38)
    assert.equal(W.RESUME_INIT_PAYLOAD_OFFSET, 46)
    assert.equal(W.RESUME_INIT_MIN_BODY_LEN, 62)
    assert.equal(W.AGE_LEN, 4)
    assert.equal(W.NONCE_I_LEN, 8)
    assert.equal(W.NONCE_R_LEN, 12)
    assert.equal(W.MAX_EARLY_DATA, 961)
    assert.equal(W.MAX_RECORD_PLAINTEXT, 1007)
    assert.equal(W.MAX_RECORD_CONTENT, 1006)
    assert.equal(W.MAX_EARLY_DATA_CONTENT, 960)
    assert.equal(W.NONCE_LIMIT, 4294967295)
    assert.equal(W.KEY_UPDATE_AT, 4294901760)
    assert.equal(W.VERSION, 2)
    assert.equal(W.prologue(Buffer.alloc(8, 1)).toString("hex"), "746574686572 2f32 02 0101010101010101".replace(/ /g, ""))
    assert.equal(W.KK_PROTOCOL_NAME, "Noise_KKpsk2_25519_AESCCM_SHA256")
    assert.equal(W.RESUME_PROTOCOL_NAME, "Tether_Resume2_AESCCM_SHA256")
    for (const [label, text] of [
        [W.TICKET_MAC_LABEL, "tether/2 ticket"],
        [W.RESUMPTION_LABEL, "tether/2 resumption"],
        [W.AGE_LABEL, "tether/2 age"],
        [W.PSEUDONYM0_LABEL, "tether/2 pseudonym"],
    ] as const)
        assert.equal(label.toString("ascii"), text)
    assert.equal(W.EARLY_DATA_WINDOW_MS, 2000)
    assert.equal(W.OOB_TICKET_LIFETIME, 365 * W.DAY)
})

test("encodeFrame writes length = 1 + body", () => {
    assert.deepEqual(W.encodeFrame(0x7f, Buffer.from([5])), Buffer.from([0, 2, 0x7f, 5]))
    assert.throws(() => W.encodeFrame(1, Buffer.alloc(W.MAX_BODY_LEN + 1)), RangeError)
    assert.equal(W.encodeFrame(1, Buffer.alloc(W.MAX_BODY_LEN)).length, 2 + W.MAX_FRAME_LEN)
})

test("FrameDecoder reassembles split and merged chunks", () => {
    const frames = [W.encodeFrame(1, Buffer.alloc(57, 7)), W.encodeFrame(0x10, Buffer.alloc(0)), W.encodeFrame(2, Buffer.alloc(1023, 9))]
    const stream = Buffer.concat(frames)
    for (const step of [1, 2, 3, 7, 100, stream.length]) {
        const d = new W.FrameDecoder()
        const out: W.Frame[] = []
        for (let i = 0; i < stream.length; i += step) out.push(...d.push(stream.subarray(i, i + step)))
        assert.equal(out.length, 3, `step ${step}`)
        assert.deepEqual(
            out.map(f => f.type),
            [1, 0x10, 2]
        )
        assert.deepEqual(out[0]?.body, Buffer.alloc(57, 7))
        assert.equal(out[1]?.body.length, 0)
        assert.equal(out[2]?.body.length, 1023)
        assert.equal(d.buffered, 0)
    }
})

test("FrameDecoder rejects length 0 and length > MAX_FRAME_LEN, then stays failed", () => {
    const d = new W.FrameDecoder()
    assert.throws(() => d.push(Buffer.from([0, 0, 1])), W.FrameError)
    assert.throws(() => d.push(W.encodeFrame(1, Buffer.alloc(1))), W.FrameError)
    const e = new W.FrameDecoder()
    assert.deepEqual(e.push(Buffer.from([0x04])), [])
    assert.throws(
        () => e.push(Buffer.from([0x01])),
        (err: unknown) => err instanceof W.FrameError && err.length === 1025
    )
    // a valid frame, then a bad length in the same chunk: the error wins, nothing is half-read
    const f = new W.FrameDecoder()
    assert.throws(() => f.push(Buffer.concat([W.encodeFrame(1, Buffer.alloc(2)), Buffer.from([0xff, 0xff])])), W.FrameError)
})

test("FrameDecoder holds a truncated frame without emitting it", () => {
    const d = new W.FrameDecoder()
    const frame = W.encodeFrame(3, Buffer.alloc(62))
    assert.deepEqual(d.push(frame.subarray(0, 40)), [])
    assert.equal(d.buffered, 40)
})

test("codeName names codes", () => {
    assert.equal(W.codeName(W.Code.BUSY), "BUSY")
    assert.equal(W.codeName(0x55), "0x55")
})
