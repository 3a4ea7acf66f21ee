// State discipline of the Noise layers with Tether's AESCCM: a rejected message changes
// nothing (ck, h, k and n are exactly as they were, and the right message still succeeds
// afterwards), the nonce limit, rekey and key update, and the cipher functions' prepared path.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { AESCCM, type CipherFunction } from "../../src/noise/cipher.js"
import { AESGCM } from "../../reference/aesgcm.js"
import { CipherState, NonceLimitError } from "../../src/noise/cipher-state.js"
import { SymmetricState } from "../../src/noise/symmetric-state.js"
import { HandshakeState, type HandshakeOptions } from "../../reference/handshake-state.js"
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { lookupPattern } from "../../reference/patterns.js"
import { sha256 } from "../../src/crypto/hash.js"
import { aeadEncrypt, aeadRekey, NONCE_LIMIT } from "../../src/crypto/aead.js"
import { consumeHsInit, readHsInit, readHsResp, writeHsInit, writeHsResp } from "../../src/session/handshake.js"
import type { Dh } from "../../src/noise/dh.js"
import { x25519, x25519Base } from "../../src/crypto/x25519.js"

const key = (label: string): Buffer => sha256(Buffer.from(label))
const EMPTY = Buffer.alloc(0)

/** A KKpsk2 pair over AESCCM with fixed keys, as Tether runs it. */
function kkPair(): { init: HandshakeState; resp: HandshakeState } {
    const si = keyPairFromPrivate(key("initiator static"))
    const sr = keyPairFromPrivate(key("responder static"))
    const common = { pattern: "KKpsk2", cipher: AESCCM, prologue: Buffer.from("tether device 42"), psks: [key("psk")] }
    const init: HandshakeOptions = { ...common, initiator: true, s: si, rs: sr.publicKey, e: keyPairFromPrivate(key("ie")) }
    const resp: HandshakeOptions = { ...common, initiator: false, s: sr, rs: si.publicKey, e: keyPairFromPrivate(key("re")) }
    return { init: new HandshakeState(init), resp: new HandshakeState(resp) }
}

function flip(b: Buffer, i: number): Buffer {
    const c = Buffer.from(b)
    c[i] = (c[i] ?? 0) ^ 0x80
    return c
}

describe("handshake-state: a rejected message leaves the state unchanged", () => {
    test("KKpsk2: completes, protocol name, both sides agree", () => {
        const { init, resp } = kkPair()
        assert.equal(init.protocolName, "Noise_KKpsk2_25519_AESCCM_SHA256")
        const m1 = init.writeMessage(Buffer.from("hello"))
        assert.equal(m1.length, 32 + 5 + 16)
        assert.deepEqual(resp.readMessage(m1), Buffer.from("hello"))
        const m2 = resp.writeMessage(EMPTY)
        assert.equal(m2.length, 32 + 16)
        assert.deepEqual(init.readMessage(m2), EMPTY)
        const a = init.split()
        const b = resp.split()
        assert.deepEqual(a.handshakeHash, b.handshakeHash)
        assert.deepEqual(b.receive.decryptWithAd(EMPTY, a.send.encryptWithAd(EMPTY, Buffer.from("up"))), Buffer.from("up"))
        assert.deepEqual(a.receive.decryptWithAd(EMPTY, b.send.encryptWithAd(EMPTY, Buffer.from("down"))), Buffer.from("down"))
    })

    test("every tampered byte of message 1 and message 2, then the right message succeeds", () => {
        const { init, resp } = kkPair()
        const m1 = init.writeMessage(Buffer.from("payload one"))
        for (let i = 0; i < m1.length; i++) assert.equal(resp.readMessage(flip(m1, i)), undefined, `m1 byte ${i}`)
        assert.equal(resp.readMessage(m1.subarray(0, 31)), undefined, "m1 shorter than e")
        assert.equal(resp.readMessage(m1.subarray(0, m1.length - 1)), undefined, "m1 truncated")
        assert.equal(resp.readMessage(Buffer.concat([m1, Buffer.alloc(1)])), undefined, "m1 extended")
        assert.equal(resp.isMyTurn, false)
        assert.deepEqual(resp.readMessage(m1), Buffer.from("payload one"))

        const m2 = resp.writeMessage(Buffer.from("payload two"))
        for (let i = 0; i < m2.length; i++) assert.equal(init.readMessage(flip(m2, i)), undefined, `m2 byte ${i}`)
        assert.equal(init.isComplete, false)
        assert.deepEqual(init.readMessage(m2), Buffer.from("payload two"))
        assert.deepEqual(init.split().handshakeHash, resp.split().handshakeHash)
    })

    test("a low-order e in message 1 is rejected and changes nothing", () => {
        const { init, resp } = kkPair()
        const m1 = init.writeMessage(EMPTY)
        const before = resp.getHandshakeHash()
        const bad = Buffer.concat([Buffer.alloc(32), m1.subarray(32)]) // u = 0: all-zero DH
        assert.equal(resp.readMessage(bad), undefined)
        assert.deepEqual(resp.getHandshakeHash(), before)
        assert.deepEqual(resp.readMessage(m1), EMPTY)
    })

    test("a failed read in XX leaves rs unset; the right message then sets it", () => {
        const si = keyPairFromPrivate(key("xx i"))
        const sr = keyPairFromPrivate(key("xx r"))
        const init = new HandshakeState({ pattern: "XX", initiator: true, cipher: AESCCM, s: si })
        const resp = new HandshakeState({ pattern: "XX", initiator: false, cipher: AESCCM, s: sr })
        assert.ok(resp.readMessage(init.writeMessage(EMPTY)))
        const m2 = resp.writeMessage(EMPTY)
        assert.equal(init.readMessage(flip(m2, 40)), undefined) // inside the encrypted s
        assert.equal(init.remoteStatic, undefined)
        assert.ok(init.readMessage(m2))
        assert.deepEqual(init.remoteStatic, sr.publicKey)
    })

    test("turns, completion and split are enforced", () => {
        const { init, resp } = kkPair()
        assert.throws(() => resp.writeMessage(EMPTY), /turn/)
        assert.throws(() => init.readMessage(Buffer.alloc(64)), /turn/)
        assert.throws(() => init.split(), /complete/)
        assert.ok(resp.readMessage(init.writeMessage(EMPTY)))
        assert.ok(init.readMessage(resp.writeMessage(EMPTY)))
        assert.throws(() => init.writeMessage(EMPTY), /complete/)
    })

    test("missing keys or psks are caller errors at construction", () => {
        assert.throws(() => new HandshakeState({ pattern: "KKpsk2", initiator: true, cipher: AESCCM }), /static/)
        const s = keyPairFromPrivate(key("s"))
        assert.throws(() => new HandshakeState({ pattern: "KKpsk2", initiator: true, cipher: AESCCM, s, rs: s.publicKey }), /psk/)
        assert.throws(() => new HandshakeState({ pattern: "KKpsk9", initiator: true, cipher: AESCCM }), /unsupported/)
        assert.throws(() => new HandshakeState({ pattern: "XK1", initiator: true, cipher: AESCCM }), /unsupported/)
    })

    test("the random ephemeral comes from the injected RNG", () => {
        const rng = (n: number): Buffer => Buffer.alloc(n, 0x42)
        const a = new HandshakeState({ pattern: "NN", initiator: true, cipher: AESCCM, rng })
        assert.deepEqual(a.writeMessage(EMPTY).subarray(0, 32), keyPairFromPrivate(Buffer.alloc(32, 0x42)).publicKey)
    })
})

describe("patterns", () => {
    test("psk modifiers place the token per section 9.4", () => {
        assert.deepEqual(lookupPattern("KKpsk0")?.messages, [
            ["psk", "e", "es", "ss"],
            ["e", "ee", "se"],
        ])
        assert.deepEqual(lookupPattern("KKpsk2")?.messages, [
            ["e", "es", "ss"],
            ["e", "ee", "se", "psk"],
        ])
        assert.deepEqual(lookupPattern("XXpsk0+psk3")?.messages, [
            ["psk", "e"],
            ["e", "ee", "s", "es"],
            ["s", "se", "psk"],
        ])
        assert.equal(lookupPattern("NNpsk3"), undefined)
        assert.equal(lookupPattern("KK")?.oneWay, false)
        assert.equal(lookupPattern("N")?.oneWay, true)
    })
})

describe("symmetric-state", () => {
    test("a failed decryptAndHash leaves h and n unchanged", () => {
        const s = new SymmetricState(AESCCM, "Noise_NN_25519_AESCCM_SHA256")
        const r = new SymmetricState(AESCCM, "Noise_NN_25519_AESCCM_SHA256")
        s.mixKey(key("ikm"))
        r.mixKey(key("ikm"))
        const ct = s.encryptAndHash(Buffer.from("x"))
        const h = r.getHandshakeHash()
        assert.equal(r.decryptAndHash(flip(ct, 0)), undefined)
        assert.deepEqual(r.getHandshakeHash(), h)
        assert.deepEqual(r.decryptAndHash(ct), Buffer.from("x"))
        assert.deepEqual(r.getHandshakeHash(), s.getHandshakeHash())
    })
    test("protocol names longer than 32 bytes are hashed, shorter ones padded", () => {
        const short = new SymmetricState(AESCCM, "Noise_NN_25519_AESCCM_SHA256")
        assert.deepEqual(short.getHandshakeHash(), Buffer.concat([Buffer.from("Noise_NN_25519_AESCCM_SHA256"), Buffer.alloc(4)]))
        const long = new SymmetricState(AESCCM, "Noise_KKpsk2_25519_AESCCM_SHA256+")
        assert.deepEqual(long.getHandshakeHash(), sha256(Buffer.from("Noise_KKpsk2_25519_AESCCM_SHA256+")))
    })
})

describe("cipher-state: nonce limit, rekey, key update", () => {
    test("n = NONCE_LIMIT - 1 is the last nonce; then both directions refuse, nothing wraps", () => {
        assert.equal(NONCE_LIMIT, 2 ** 32 - 1)
        const a = new CipherState(AESCCM, key("k"))
        const b = new CipherState(AESCCM, key("k"))
        a.setNonce(NONCE_LIMIT - 1)
        b.setNonce(NONCE_LIMIT - 1)
        const ct = a.encryptWithAd(EMPTY, Buffer.from("last"))
        assert.deepEqual(b.decryptWithAd(EMPTY, ct), Buffer.from("last"))
        assert.equal(a.n, NONCE_LIMIT)
        assert.throws(() => a.encryptWithAd(EMPTY, Buffer.from("one more")), NonceLimitError)
        assert.throws(() => b.decryptWithAd(EMPTY, ct), NonceLimitError)
        assert.equal(a.n, NONCE_LIMIT)
        // the session layer's way out: a key update on both sides
        a.keyUpdate()
        b.keyUpdate()
        assert.equal(a.n, 0)
        assert.deepEqual(b.decryptWithAd(EMPTY, a.encryptWithAd(EMPTY, Buffer.from("fresh"))), Buffer.from("fresh"))
    })
    test("a failed decrypt does not advance n", () => {
        const a = new CipherState(AESCCM, key("k"))
        const b = new CipherState(AESCCM, key("k"))
        const ct = a.encryptWithAd(EMPTY, Buffer.from("m"))
        assert.equal(b.decryptWithAd(EMPTY, flip(ct, 1)), undefined)
        assert.equal(b.n, 0)
        assert.deepEqual(b.decryptWithAd(EMPTY, ct), Buffer.from("m"))
        assert.equal(b.n, 1)
    })
    test("rekey: k = REKEY(k), n unchanged; old ciphertexts no longer open", () => {
        for (const cipher of [AESCCM, AESGCM]) {
            const a = new CipherState(cipher, key("k"))
            const b = new CipherState(cipher, key("k"))
            b.decryptWithAd(EMPTY, a.encryptWithAd(EMPTY, Buffer.from("1")))
            a.rekey()
            b.rekey()
            assert.equal(a.n, 1)
            const ct = a.encryptWithAd(EMPTY, Buffer.from("2"))
            assert.deepEqual(b.decryptWithAd(EMPTY, ct), Buffer.from("2"))
            const stale = new CipherState(cipher, key("k"))
            stale.setNonce(1)
            assert.equal(stale.decryptWithAd(EMPTY, ct), undefined, cipher.name)
        }
    })
    test("AESCCM's REKEY is aeadRekey (PROTOCOL.md 5.1's nonce 00*5 || ff*8)", () => {
        const a = new CipherState(AESCCM, key("k"))
        a.rekey()
        const b = new CipherState(AESCCM, aeadRekey(key("k")))
        assert.deepEqual(a.encryptWithAd(EMPTY, EMPTY), b.encryptWithAd(EMPTY, EMPTY))
    })
    test("without a key, encrypt and decrypt pass data through", () => {
        const c = new CipherState(AESCCM)
        assert.equal(c.hasKey(), false)
        assert.deepEqual(c.encryptWithAd(EMPTY, Buffer.from("clear")), Buffer.from("clear"))
        assert.throws(() => c.rekey())
        assert.throws(() => c.setNonce(-1), RangeError)
    })
})

/** ck, h, k and n of a SymmetricState, as hex, to compare before and after. */
function stateOf(sym: SymmetricState): string {
    return [sym.ck, sym.h, sym.cs.k ?? Buffer.alloc(0), Buffer.from(String(sym.cs.n))].map(b => b.toString("hex")).join(" ")
}

describe("symmetric-state: clone and commit", () => {
    test("a clone is independent: work on it leaves the original's ck, h, k, n as they were", () => {
        const a = new SymmetricState(AESCCM, "Noise_NN_25519_AESCCM_SHA256")
        a.mixKey(key("ikm"))
        const before = stateOf(a)
        const b = a.clone()
        assert.equal(stateOf(b), before)
        b.encryptAndHash(Buffer.from("p"))
        b.mixKeyAndHash(key("psk"))
        assert.equal(b.cs.n, 0)
        assert.notEqual(stateOf(b), before)
        assert.equal(stateOf(a), before)
        assert.equal(a.cs.n, 0)
    })

    test("readHsResp: every corrupted message 2 leaves the pending ck, h, k and n exactly as they were", () => {
        const si = keyPairFromPrivate(key("i")),
            sr = keyPairFromPrivate(key("r"))
        const pseudonym = Buffer.from("0102030405060708", "hex")
        let dhCalls = 0
        const dh: Dh = {
            x25519: (a, b) => {
                dhCalls++
                return x25519(a, b)
            },
            x25519Base,
        }
        const pending = writeHsInit({ pseudonym, s: si, rs: sr.publicKey, psk: key("psk"), dh }, keyPairFromPrivate(key("ie")))
        assert.equal(dhCalls, 2, "es and ss (no cached ss)")
        const m1 = readHsInit(pending.body)
        assert.ok(!("error" in m1))
        const read = consumeHsInit({ pseudonym, s: sr, rs: si.publicKey, psk: key("psk") }, m1.message)
        assert.ok(read)
        const m2 = writeHsResp(read, keyPairFromPrivate(key("re"))).body
        const before = stateOf(pending.sym)
        assert.ok(pending.sym.cs.k !== undefined, "message 1 left a key")
        for (let i = 0; i < m2.length; i++) {
            assert.equal(readHsResp(pending, flip(m2, i)), undefined, `byte ${i}`)
            assert.equal(stateOf(pending.sym), before, `byte ${i}`)
        }
        assert.equal(readHsResp(pending, Buffer.concat([Buffer.alloc(32), m2.subarray(32)])), undefined, "low-order re")
        assert.equal(stateOf(pending.sym), before)
        assert.ok(readHsResp(pending, m2))
        assert.equal(stateOf(pending.sym), before, "the pending state is never changed: the result carries the session")
    })
})

describe("cipher functions: one shape, the prepared path gives the rule's bytes", () => {
    const ciphers: CipherFunction[] = [AESCCM, AESGCM]
    for (const cipher of ciphers) {
        test(`${cipher.name}: encryptPrepared/decryptPrepared/rekey under prepare(k) equal encrypt/decrypt/REKEY`, () => {
            const k = key("prep " + cipher.name)
            const pk = cipher.prepare(k)
            for (const n of [0, 1, 2 ** 32 - 2]) {
                const pt = Buffer.from(`n ${n}`)
                const ct = cipher.encryptPrepared(pk, n, pt)
                assert.deepEqual(ct, cipher.encrypt(k, n, EMPTY, pt))
                assert.deepEqual(cipher.decryptPrepared(pk, n, ct), pt)
                assert.equal(cipher.decryptPrepared(pk, n + 1, ct), undefined)
                assert.equal(cipher.decryptPrepared(pk, n, flip(ct, 0)), undefined)
            }
            const rk = cipher.rekey(pk)
            assert.equal(rk.length, 32)
            const viaState = new CipherState(cipher, k)
            viaState.rekey()
            assert.deepEqual(viaState.k, rk)
            cipher.destroy(pk)
        })
    }
    test("AESCCM: a destroyed prepared key is never used again", () => {
        const pk = AESCCM.prepare(key("gone"))
        AESCCM.destroy(pk)
        assert.throws(() => AESCCM.encryptPrepared(pk, 0, Buffer.from("x")), /destroyed/)
        assert.throws(() => AESCCM.rekey(pk), /destroyed/)
        assert.deepEqual(AESCCM.encrypt(key("k"), 3, EMPTY, EMPTY), aeadEncrypt(key("k"), 3, EMPTY, EMPTY))
    })
    test("rekey keeps n; keyUpdate is rekey then n = 0 (PROTOCOL.md 5.1)", () => {
        const a = new CipherState(AESCCM, key("k"))
        a.setNonce(41)
        a.rekey()
        assert.equal(a.n, 41)
        assert.deepEqual(a.k, aeadRekey(key("k")))
        a.keyUpdate()
        assert.equal(a.n, 0)
        assert.deepEqual(a.k, aeadRekey(aeadRekey(key("k"))))
    })
})
