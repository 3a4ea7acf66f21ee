// The KKpsk2 composition in session/handshake.ts against the Noise HandshakeState (which
// reproduces the cacophony vectors): the same keys give the same bytes, the same h and the same
// keys.
import { test } from "node:test"
import assert from "node:assert/strict"
import { AESCCM } from "../../src/noise/cipher.js"
import { HandshakeState } from "../../reference/handshake-state.js"
import { keyPairFromPrivate, x25519, x25519Base } from "../../src/crypto/x25519.js"
import {
    consumeHsInit,
    encodeHsInit,
    readHsInit,
    readHsResp,
    writeHsInit,
    writeHsResp,
    type KkInitiatorPending,
} from "../../src/session/handshake.js"
import { HS_INIT_BODY_LEN, HS_INIT_MESSAGE_LEN, prologue, VERSION } from "../../src/wire.js"

const kp = (b: number) => keyPairFromPrivate(Buffer.alloc(32, b))

/** HS_INIT's Noise message 1, read back from the body. */
function message1(p: KkInitiatorPending): Buffer {
    const init = readHsInit(p.body)
    assert.ok(!("error" in init), "HS_INIT reads back")
    return init.message
}

test("handshake.ts matches HandshakeState KKpsk2 byte for byte, both directions", () => {
    const sI = kp(1),
        sR = kp(2),
        eI = kp(3),
        eR = kp(4)
    const psk = Buffer.alloc(32, 5)
    const pseudonym = Buffer.from("a1a2a3a4a5a6a7a8", "hex")
    const hsI = new HandshakeState({
        pattern: "KKpsk2",
        initiator: true,
        cipher: AESCCM,
        prologue: prologue(pseudonym),
        s: sI,
        rs: sR.publicKey,
        psks: [psk],
        e: eI,
    })
    const hsR = new HandshakeState({
        pattern: "KKpsk2",
        initiator: false,
        cipher: AESCCM,
        prologue: prologue(pseudonym),
        s: sR,
        rs: sI.publicKey,
        psks: [psk],
        e: eR,
    })
    const m1 = hsI.writeMessage(Buffer.alloc(0))
    const pending = writeHsInit({ pseudonym, s: sI, rs: sR.publicKey, psk }, eI)
    assert.deepEqual(message1(pending), m1)
    assert.deepEqual(hsR.readMessage(m1), Buffer.alloc(0))
    const read = consumeHsInit({ pseudonym, s: sR, rs: sI.publicKey, psk }, m1)
    assert.ok(read)
    const m2 = hsR.writeMessage(Buffer.alloc(0))
    const mine = writeHsResp(read, eR)
    assert.deepEqual(mine.body, m2)
    assert.deepEqual(hsI.readMessage(m2), Buffer.alloc(0))
    const done = readHsResp(pending, m2)
    assert.ok(done)
    const ref = hsI.split()
    assert.deepEqual(done.handshakeHash, ref.handshakeHash)
    assert.deepEqual(mine.handshakeHash, ref.handshakeHash)
    const pt = Buffer.from("hello")
    assert.deepEqual(done.session.send.encryptWithAd(Buffer.alloc(0), pt), ref.send.encryptWithAd(Buffer.alloc(0), pt))
    assert.deepEqual(mine.session.recv.decryptWithAd(Buffer.alloc(0), ref.send.encryptWithAd(Buffer.alloc(0), pt)), undefined) // n moved on
})

test("a tampered message fails on either side and leaves the pending state usable", () => {
    const sI = kp(1),
        sR = kp(2)
    const psk = Buffer.alloc(32, 5)
    const pseudonym = Buffer.alloc(8, 9)
    const pending = writeHsInit({ pseudonym, s: sI, rs: sR.publicKey, psk }, kp(3))
    const m1 = message1(pending)
    for (const i of [0, 31, 32, 47]) {
        const bad = Buffer.from(m1)
        bad[i] = (bad[i] as number) ^ 1
        assert.equal(consumeHsInit({ pseudonym, s: sR, rs: sI.publicKey, psk }, bad), undefined)
    }
    assert.equal(
        consumeHsInit({ pseudonym: Buffer.alloc(8, 8), s: sR, rs: sI.publicKey, psk }, m1),
        undefined,
        "the pseudonym is bound (the prologue)"
    )
    const read = consumeHsInit({ pseudonym, s: sR, rs: sI.publicKey, psk }, m1)
    assert.ok(read)
    const { body } = writeHsResp(read, kp(4))
    const bad = Buffer.from(body)
    bad[40] = (bad[40] as number) ^ 1
    assert.equal(readHsResp(pending, bad), undefined)
    assert.ok(readHsResp(pending, body), "the failed read changed nothing")
})

test("HS_INIT's body: writeHsInit builds what readHsInit takes apart; bad lengths and versions are typed", () => {
    const pseudonym = Buffer.from("a1a2a3a4a5a6a7a8", "hex")
    const pending = writeHsInit({ pseudonym, s: kp(1), rs: kp(2).publicKey, psk: Buffer.alloc(32, 5) }, kp(3))
    assert.equal(pending.body.length, HS_INIT_BODY_LEN)
    const init = readHsInit(pending.body)
    assert.ok(!("error" in init))
    assert.equal(init.version, VERSION)
    assert.deepEqual(init.pseudonym, pseudonym)
    assert.equal(init.message.length, HS_INIT_MESSAGE_LEN)
    assert.equal(init.hasPayload, false)
    assert.deepEqual(encodeHsInit(init.pseudonym, init.message), pending.body)
    assert.deepEqual(readHsInit(Buffer.alloc(0)), { error: "empty" })
    assert.deepEqual(readHsInit(Buffer.from([1])), { error: "version", version: 1 }, "the version is read before the length")
    assert.deepEqual(readHsInit(pending.body.subarray(0, HS_INIT_BODY_LEN - 1)), { error: "short", length: HS_INIT_BODY_LEN - 1 })
    const longer = readHsInit(Buffer.concat([pending.body, Buffer.from([0])]))
    assert.ok(!("error" in longer) && longer.hasPayload && longer.message.length === HS_INIT_MESSAGE_LEN + 1)
    assert.throws(() => encodeHsInit(Buffer.alloc(7), init.message), TypeError)
})

test("es computed while idle (PROTOCOL.md 4.3): the same HS_INIT, and no X25519 left for writing it", () => {
    const sI = kp(1),
        sR = kp(2),
        e = kp(3)
    const psk = Buffer.alloc(32, 5)
    const pseudonym = Buffer.alloc(8, 7)
    let n = 0
    const dh = {
        x25519: (a: Buffer, b: Buffer) => {
            n++
            return x25519(a, b)
        },
        x25519Base,
    }
    const plain = writeHsInit({ pseudonym, s: sI, rs: sR.publicKey, psk }, e)
    const ss = x25519(sI.privateKey, sR.publicKey)
    const es = x25519(e.privateKey, sR.publicKey)
    const idle = writeHsInit({ pseudonym, s: sI, rs: sR.publicKey, psk, ss, dh }, e, es)
    assert.deepEqual(idle.body, plain.body)
    assert.equal(n, 0, "ss cached and es precomputed: writing HS_INIT costs no X25519")
    // reading HS_RESP is the critical path: ee and se, two X25519
    const read = consumeHsInit({ pseudonym, s: sR, rs: sI.publicKey, psk }, message1(idle))
    assert.ok(read)
    const { body } = writeHsResp(read, kp(4))
    assert.ok(readHsResp(idle, body))
    assert.equal(n, 2)
})
