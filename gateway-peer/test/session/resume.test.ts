// RESUME_INIT's body: resume.ts builds it and takes it apart, and nothing else does.
import { test } from "node:test"
import assert from "node:assert/strict"
import { encodeResumeInit, readResumeInit, writeResumeInit } from "../../src/session/resume.js"
import { RESUME_INIT_MIN_BODY_LEN, RESUME_NONCE_LEN, TAG_LEN, TICKET_LEN, VERSION } from "../../src/wire.js"

const ticket = { ticket: Buffer.alloc(TICKET_LEN, 0x33), secret: Buffer.alloc(32, 0x44) }
const nonceI = Buffer.alloc(RESUME_NONCE_LEN, 0x55)

test("writeResumeInit builds what readResumeInit takes apart, with and without early data", () => {
    for (const early of [undefined, Buffer.from("early")]) {
        const { body } = writeResumeInit(ticket, nonceI, early)
        assert.equal(body.length, RESUME_INIT_MIN_BODY_LEN + (early === undefined ? 0 : 1 + early.length))
        const init = readResumeInit(body)
        assert.ok(!("error" in init))
        assert.equal(init.version, VERSION)
        assert.deepEqual(init.ticket, ticket.ticket)
        assert.deepEqual(init.nonceI, nonceI)
        assert.equal(init.ciphertext.length, TAG_LEN + (early === undefined ? 0 : 1 + early.length))
        assert.deepEqual(encodeResumeInit(init.ticket, init.nonceI, init.ciphertext), body)
    }
})

test("readResumeInit: empty, another version (before the length), short bodies are typed failures", () => {
    const { body } = writeResumeInit(ticket, nonceI)
    assert.deepEqual(readResumeInit(Buffer.alloc(0)), { error: "empty" })
    assert.deepEqual(readResumeInit(Buffer.from([7, 1, 2])), { error: "version", version: 7 })
    assert.deepEqual(readResumeInit(body.subarray(0, RESUME_INIT_MIN_BODY_LEN - 1)), {
        error: "short",
        length: RESUME_INIT_MIN_BODY_LEN - 1,
    })
    assert.throws(() => encodeResumeInit(Buffer.alloc(TICKET_LEN - 1), nonceI, Buffer.alloc(TAG_LEN)), TypeError)
})
