// RESUME_INIT's body: resume.ts builds it and takes it apart, and nothing else does; the ticket
// age (PROTOCOL.md 6.2) and what the transcript binds.
import { test } from "node:test"
import assert from "node:assert/strict"
import {
    consumeResumeInit,
    encodeResumeInit,
    obfuscateAge,
    readResumeInit,
    readResumeResp,
    ticketAge,
    writeResumeInit,
    writeResumeResp,
} from "../../src/session/resume.js"
import { ageAdd } from "../../src/tickets.js"
import { AGE_LEN, NONCE_I_LEN, NONCE_R_LEN, RESUME_INIT_MIN_BODY_LEN, TAG_LEN, TICKET_LEN, VERSION } from "../../src/wire.js"

const ticket = { ticket: Buffer.alloc(TICKET_LEN, 0x33), secret: Buffer.alloc(32, 0x44) }
const deviceId = Buffer.alloc(8, 0x66)
const nonceI = Buffer.alloc(NONCE_I_LEN, 0x55)
const age = Buffer.from("01020304", "hex")
const noRandom = () => assert.fail("a known age needs no randomness")

test("writeResumeInit builds what readResumeInit takes apart, with and without early data", () => {
    for (const early of [undefined, Buffer.from("early")]) {
        const { body } = writeResumeInit(ticket, deviceId, age, nonceI, early)
        assert.equal(body.length, RESUME_INIT_MIN_BODY_LEN + (early === undefined ? 0 : 1 + early.length))
        const init = readResumeInit(body)
        assert.ok(!("error" in init))
        assert.equal(init.version, VERSION)
        assert.deepEqual(init.ticket, ticket.ticket)
        assert.deepEqual(init.obfuscatedAge, age)
        assert.deepEqual(init.nonceI, nonceI)
        assert.equal(init.ciphertext.length, TAG_LEN + (early === undefined ? 0 : 1 + early.length))
        assert.deepEqual(encodeResumeInit(init.ticket, init.obfuscatedAge, init.nonceI, init.ciphertext), body)
        // version || ticket || obfuscated_age || nonce_i || ciphertext
        assert.deepEqual(body.subarray(0, 46), Buffer.concat([Buffer.from([VERSION]), ticket.ticket, age, nonceI]))
    }
})

test("readResumeInit: empty, another version (before the length), short bodies are typed failures", () => {
    const { body } = writeResumeInit(ticket, deviceId, age, nonceI)
    assert.deepEqual(readResumeInit(Buffer.alloc(0)), { error: "empty" })
    assert.deepEqual(readResumeInit(Buffer.from([7, 1, 2])), { error: "version", version: 7 })
    assert.deepEqual(readResumeInit(Buffer.from([1, ...body.subarray(1)])), { error: "version", version: 1 }, "version 1 is refused")
    assert.deepEqual(readResumeInit(body.subarray(0, RESUME_INIT_MIN_BODY_LEN - 1)), {
        error: "short",
        length: RESUME_INIT_MIN_BODY_LEN - 1,
    })
    assert.throws(() => encodeResumeInit(Buffer.alloc(TICKET_LEN - 1), age, nonceI, Buffer.alloc(TAG_LEN)), TypeError)
    assert.throws(() => encodeResumeInit(ticket.ticket, age, Buffer.alloc(12), Buffer.alloc(TAG_LEN)), TypeError, "nonce_i is 8 bytes")
    assert.throws(() => encodeResumeInit(ticket.ticket, Buffer.alloc(3), nonceI, Buffer.alloc(TAG_LEN)), TypeError)
})

test("the ticket age: obfuscated with age_add mod 2^32 and read back; unknown is 4 random bytes", () => {
    const add = ageAdd(ticket.secret)
    for (const ms of [0, 1, 1234, 3_600_000, 2 ** 32 - 1 - add, 2 ** 32 - add, 2 ** 32 - 1]) {
        const o = obfuscateAge(ticket.secret, ms, noRandom)
        assert.equal(o.length, AGE_LEN)
        assert.equal(o.readUInt32BE(0), (ms + add) % 2 ** 32, `age ${ms}`)
        assert.equal(ticketAge(ticket.secret, o), ms % 2 ** 32, `age ${ms}`)
    }
    assert.deepEqual(
        obfuscateAge(ticket.secret, undefined, n => Buffer.alloc(n, 0xab)),
        Buffer.alloc(4, 0xab)
    )
    assert.throws(() => obfuscateAge(ticket.secret, -1, noRandom), RangeError)
    assert.throws(() => obfuscateAge(ticket.secret, 1.5, noRandom), RangeError)
    // age_add differs per ticket: the same age of two tickets does not look the same
    const other = Buffer.alloc(32, 0x45)
    assert.notDeepEqual(obfuscateAge(ticket.secret, 5000, noRandom), obfuscateAge(other, 5000, noRandom))
})

test("the transcript binds the obfuscated age, nonce_i and the device id: a changed one fails the early data", () => {
    const early = Buffer.from("early")
    const p = writeResumeInit(ticket, deviceId, age, nonceI, early)
    const init = readResumeInit(p.body)
    assert.ok(!("error" in init))
    const read = consumeResumeInit(init, deviceId, ticket.secret)
    assert.ok(read)
    assert.deepEqual(read.early, Buffer.concat([Buffer.from([1]), early]), "inner_type DATA || content")
    for (const offset of [34, 37, 38, 45]) {
        const body = Buffer.from(p.body)
        body[offset] = (body[offset] as number) ^ 1
        const bad = readResumeInit(body)
        assert.ok(!("error" in bad))
        assert.equal(consumeResumeInit(bad, deviceId, ticket.secret), undefined, `byte ${offset}`)
    }
    assert.equal(consumeResumeInit(init, Buffer.alloc(8, 0x67), ticket.secret), undefined, "the device id is the prologue's")
    // RESUME_RESP: the flags decrypt on the device; a reserved bit set is a failed handshake
    const resp = writeResumeResp(read, Buffer.alloc(NONCE_R_LEN, 0x77), 1)
    const done = readResumeResp(p, resp.body)
    assert.ok(done)
    assert.equal(done.flags, 1)
    assert.deepEqual(done.handshakeHash, resp.handshakeHash)
    const read2 = consumeResumeInit(init, deviceId, ticket.secret)
    assert.ok(read2)
    assert.equal(readResumeResp(p, writeResumeResp(read2, Buffer.alloc(NONCE_R_LEN, 0x77), 2).body), undefined)
})
