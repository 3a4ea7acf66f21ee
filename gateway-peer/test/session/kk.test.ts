// The KKpsk2 composition in session/kk.ts against the Noise HandshakeState (which reproduces
// the cacophony vectors): the same keys give the same bytes, the same h and the same keys.
import { test } from "node:test"
import assert from "node:assert/strict"
import { AESCCM } from "../../src/noise/cipher.js"
import { HandshakeState } from "../../reference/handshake-state.js"
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { readKk1, readKk2, writeKk1, writeKk2 } from "../../src/session/kk.js"
import { prologue } from "../../src/wire.js"

const kp = (b: number) => keyPairFromPrivate(Buffer.alloc(32, b))

test("kk.ts matches HandshakeState KKpsk2 byte for byte, both directions", () => {
    const sI = kp(1), sR = kp(2), eI = kp(3), eR = kp(4)
    const psk = Buffer.alloc(32, 5)
    const deviceId = Buffer.from("a1a2a3a4a5a6a7a8", "hex")
    const hsI = new HandshakeState({ pattern: "KKpsk2", initiator: true, cipher: AESCCM, prologue: prologue(deviceId), s: sI, rs: sR.publicKey, psks: [psk], e: eI })
    const hsR = new HandshakeState({ pattern: "KKpsk2", initiator: false, cipher: AESCCM, prologue: prologue(deviceId), s: sR, rs: sI.publicKey, psks: [psk], e: eR })
    const m1 = hsI.writeMessage(Buffer.alloc(0))
    const pending = writeKk1({ deviceId, s: sI, rs: sR.publicKey, psk }, eI)
    assert.deepEqual(pending.message, m1)
    assert.deepEqual(hsR.readMessage(m1), Buffer.alloc(0))
    const read = readKk1({ deviceId, s: sR, rs: sI.publicKey, psk }, m1)
    assert.ok(read)
    const m2 = hsR.writeMessage(Buffer.alloc(0))
    const mine = writeKk2(read, eR)
    assert.deepEqual(mine.message, m2)
    assert.deepEqual(hsI.readMessage(m2), Buffer.alloc(0))
    const done = readKk2(pending, m2)
    assert.ok(done)
    const ref = hsI.split()
    assert.deepEqual(done.handshakeHash, ref.handshakeHash)
    assert.deepEqual(mine.handshakeHash, ref.handshakeHash)
    const pt = Buffer.from("hello")
    assert.deepEqual(done.session.send.encryptWithAd(Buffer.alloc(0), pt), ref.send.encryptWithAd(Buffer.alloc(0), pt))
    assert.deepEqual(mine.session.recv.decryptWithAd(Buffer.alloc(0), ref.send.encryptWithAd(Buffer.alloc(0), pt)), undefined) // n moved on
})

test("a tampered message fails on either side and leaves the pending state usable", () => {
    const sI = kp(1), sR = kp(2)
    const psk = Buffer.alloc(32, 5)
    const deviceId = Buffer.alloc(8, 9)
    const pending = writeKk1({ deviceId, s: sI, rs: sR.publicKey, psk }, kp(3))
    for (const i of [0, 31, 32, 47]) {
        const bad = Buffer.from(pending.message)
        bad[i] = (bad[i] as number) ^ 1
        assert.equal(readKk1({ deviceId, s: sR, rs: sI.publicKey, psk }, bad), undefined)
    }
    assert.equal(readKk1({ deviceId: Buffer.alloc(8, 8), s: sR, rs: sI.publicKey, psk }, pending.message), undefined, "device id is bound")
    const read = readKk1({ deviceId, s: sR, rs: sI.publicKey, psk }, pending.message)
    assert.ok(read)
    const { message } = writeKk2(read, kp(4))
    const bad = Buffer.from(message)
    bad[40] = (bad[40] as number) ^ 1
    assert.equal(readKk2(pending, bad), undefined)
    assert.ok(readKk2(pending, message), "the failed read changed nothing")
})
