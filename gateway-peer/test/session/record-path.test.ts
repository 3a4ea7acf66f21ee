// The record path's shortcuts (PROTOCOL.md 3.1 and 5): the per-key cache of
// HMAC-SHA-256(k, "") gives exactly the bytes of the uncached rule, is never used for a
// non-empty ad, and is dropped whenever k changes (rekey, KEY_UPDATE, initializeKey); the frame
// decoder that returns views of whole frames and gathers split ones yields the same frames
// however TCP splits or merges the stream; the server's batched record path.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { AeadEmptyAdKey, aeadDecrypt, aeadEncrypt, aeadRekey, TAG_LEN } from "../../src/crypto/aead.js"
import { AESCCM } from "../../src/noise/cipher.js"
import { AESGCM } from "../../reference/aesgcm.js"
import { CipherState } from "../../src/noise/cipher-state.js"
import { Session } from "../../src/session/session.js"
import {
    Code,
    encodeFrame,
    FrameDecoder,
    FrameError,
    FrameType,
    InnerType,
    KEY_UPDATE_AT,
    MAX_BODY_LEN,
    MAX_RECORD_CONTENT,
    type Frame,
} from "../../src/wire.js"
import { fixtures, until } from "../helpers.js"

const EMPTY = Buffer.alloc(0)

/** A zero-length Buffer with a NULL data pointer (see crypto/aead.ts). */
function nullEmpty(): Buffer {
    const b = Buffer.alloc(0)
    void b.buffer
    return b
}

/** A device and a gateway Session over the same two keys. */
function pair(): { dev: Session; gw: Session; up: Buffer; down: Buffer } {
    const up = randomBytes(32)
    const down = randomBytes(32)
    return {
        dev: new Session(new CipherState(AESCCM, up), new CipherState(AESCCM, down)),
        gw: new Session(new CipherState(AESCCM, down), new CipherState(AESCCM, up)),
        up,
        down,
    }
}

function data(from: Session, to: Session, text: string): void {
    const bodies = from.encrypt(InnerType.DATA, Buffer.from(text))
    const got = bodies.map(b => to.decrypt(b))
    const last = got[got.length - 1]
    assert.ok(last !== undefined, `"${text}" decrypts`)
    assert.equal(last.type, InnerType.DATA)
    assert.equal(last.content.toString(), text)
}

describe("AeadEmptyAdKey", () => {
    const k = randomBytes(32)
    test('the same bytes as aeadEncrypt(k, n, "", ...), and it opens what aeadEncrypt made', () => {
        const key = new AeadEmptyAdKey(k)
        for (const n of [0, 1, 255, 256, 2 ** 32 - 2, 2 ** 32, Number.MAX_SAFE_INTEGER])
            for (const len of [0, 1, 15, 16, 17, 1007]) {
                const pt = randomBytes(len)
                const ct = key.encrypt(n, pt)
                assert.deepEqual(ct, aeadEncrypt(k, n, EMPTY, pt), `n ${n} len ${len}`)
                assert.deepEqual(key.decrypt(n, ct), pt)
                assert.deepEqual(aeadDecrypt(k, n, EMPTY, ct), pt)
            }
    })
    test("wrong n, flipped bits, short inputs: undefined; NULL-pointer empty inputs keep the MAC", () => {
        const key = new AeadEmptyAdKey(k)
        const ct = key.encrypt(4, Buffer.from("record"))
        assert.equal(key.decrypt(5, ct), undefined)
        for (let i = 0; i < ct.length; i++) {
            const bad = Buffer.from(ct)
            bad[i] = (bad[i] ?? 0) ^ 0x80
            assert.equal(key.decrypt(4, bad), undefined, `byte ${i}`)
        }
        assert.equal(key.decrypt(4, ct.subarray(0, TAG_LEN - 1)), undefined)
        assert.equal(key.decrypt(4, nullEmpty()), undefined)
        const empty = key.encrypt(9, nullEmpty())
        assert.deepEqual(empty, aeadEncrypt(k, 9, EMPTY, Buffer.alloc(0)))
        assert.deepEqual(key.decrypt(9, empty), Buffer.alloc(0))
        const forged = Buffer.from(empty)
        forged[0] = (forged[0] ?? 0) ^ 1
        assert.equal(key.decrypt(9, forged), undefined)
    })
    test("destroy(): later use throws; a wrong key length is a caller error", () => {
        const key = new AeadEmptyAdKey(k)
        key.destroy()
        assert.throws(() => key.encrypt(0, Buffer.from("x")), /destroyed/)
        assert.throws(() => key.decrypt(0, Buffer.alloc(TAG_LEN + 1)), /destroyed/)
        assert.throws(() => new AeadEmptyAdKey(Buffer.alloc(16)), TypeError)
    })
})

describe("CipherState: the cached empty-ad key", () => {
    test("made for an empty ad only; both paths give the rule's bytes", () => {
        const k = randomBytes(32)
        const cs = new CipherState(AESCCM, k)
        const ad = randomBytes(32)
        const pt = Buffer.from("payload")
        assert.deepEqual(cs.encryptWithAd(ad, pt), aeadEncrypt(k, 0, ad, pt))
        assert.equal(cs.emptyAdCached, false, "a handshake-style ad is never cached")
        assert.deepEqual(cs.encryptWithAd(EMPTY, pt), aeadEncrypt(k, 1, EMPTY, pt))
        assert.equal(cs.emptyAdCached, true)
        assert.deepEqual(cs.encryptWithAd(ad, pt), aeadEncrypt(k, 2, ad, pt), "a non-empty ad after caching still goes through HMAC(k, ad)")
        assert.deepEqual(cs.encryptWithAd(nullEmpty(), pt), aeadEncrypt(k, 3, EMPTY, pt))
        const rx = new CipherState(AESCCM, k)
        assert.equal(
            rx.decryptWithAd(EMPTY, aeadEncrypt(k, 0, ad, pt)),
            undefined,
            'a ciphertext under HMAC(k, ad) does not open with ad = ""'
        )
        assert.equal(rx.n, 0)
        assert.deepEqual(rx.decryptWithAd(ad, aeadEncrypt(k, 0, ad, pt)), pt)
        assert.deepEqual(rx.decryptWithAd(EMPTY, aeadEncrypt(k, 1, EMPTY, pt)), pt)
    })
    test("rekey, keyUpdate and initializeKey drop it; the next record is under the new key", () => {
        const k = randomBytes(32)
        const cs = new CipherState(AESCCM, k)
        const pt = Buffer.from("after")
        cs.encryptWithAd(EMPTY, pt)
        cs.rekey()
        assert.equal(cs.emptyAdCached, false)
        const k2 = aeadRekey(k)
        assert.deepEqual(cs.encryptWithAd(EMPTY, pt), aeadEncrypt(k2, 1, EMPTY, pt))
        cs.keyUpdate()
        assert.equal(cs.emptyAdCached, false)
        const k3 = aeadRekey(k2)
        assert.deepEqual(cs.encryptWithAd(EMPTY, pt), aeadEncrypt(k3, 0, EMPTY, pt))
        const k4 = randomBytes(32)
        cs.initializeKey(k4)
        assert.equal(cs.emptyAdCached, false)
        assert.deepEqual(cs.encryptWithAd(EMPTY, pt), aeadEncrypt(k4, 0, EMPTY, pt))
        cs.initializeKey(undefined)
        assert.equal(cs.emptyAdCached, false)
        assert.deepEqual(cs.encryptWithAd(EMPTY, pt), pt)
    })
    test("a clone derives its own: updating the original leaves the clone working", () => {
        const k = randomBytes(32)
        const cs = new CipherState(AESCCM, k)
        cs.encryptWithAd(EMPTY, Buffer.from("warm"))
        const copy = cs.clone()
        assert.equal(copy.emptyAdCached, false)
        cs.keyUpdate() // destroys the original's derived key
        assert.deepEqual(copy.encryptWithAd(EMPTY, Buffer.from("x")), aeadEncrypt(k, 1, EMPTY, Buffer.from("x")))
    })
    test("AESGCM runs the same prepared path (its prepare(k) is a copy of k): the bytes of its encrypt", () => {
        const k = randomBytes(32)
        const cs = new CipherState(AESGCM, k)
        assert.deepEqual(cs.encryptWithAd(EMPTY, Buffer.from("g")), AESGCM.encrypt(k, 0, EMPTY, Buffer.from("g")))
        // Every cipher function now has prepare(k), so the prepared key is cached for AESGCM too
        // (this asserted false while prepare was an optional member only AESCCM had).
        assert.equal(cs.emptyAdCached, true)
        cs.rekey()
        assert.equal(cs.emptyAdCached, false)
        assert.deepEqual(
            cs.encryptWithAd(EMPTY, Buffer.from("h")),
            AESGCM.encrypt(AESGCM.rekey(AESGCM.prepare(k)), 1, EMPTY, Buffer.from("h"))
        )
    })
})

describe("Session: KEY_UPDATE with the cache", () => {
    test("records after a KEY_UPDATE decrypt on both sides; a record under the old key is refused", () => {
        for (const direction of ["device to gateway", "gateway to device"]) {
            const p = pair()
            const [from, to] = direction === "device to gateway" ? [p.dev, p.gw] : [p.gw, p.dev]
            data(from, to, "one")
            data(to, from, "two") // both directions' caches are warm
            const stale = from.send.clone() // the old key, at the nonce of the KEY_UPDATE
            const [ku] = from.encrypt(InnerType.KEY_UPDATE, EMPTY)
            assert.ok(ku !== undefined)
            assert.equal(from.send.emptyAdCached, false, "the sender dropped the old derived key")
            assert.equal(to.decrypt(ku)?.type, InnerType.KEY_UPDATE)
            assert.equal(to.recv.emptyAdCached, false, "the receiver dropped the old derived key")
            assert.equal(from.send.n, 0)
            assert.equal(to.recv.n, 0)
            for (let i = 0; i < 5; i++) data(from, to, `after ${i}`)
            data(to, from, "other direction untouched")
            // the counter the receiver expects next, under the old key
            stale.setNonce(to.recv.n)
            const old = stale.encryptWithAd(EMPTY, Buffer.from([InnerType.DATA, 0x41]))
            assert.equal(to.decrypt(old), undefined, direction)
            assert.equal(to.dead, true, "a record that fails to decrypt kills the session")
        }
    })
    test("the automatic KEY_UPDATE at KEY_UPDATE_AT, then full-size records", () => {
        const p = pair()
        data(p.dev, p.gw, "warm")
        p.dev.send.setNonce(KEY_UPDATE_AT)
        p.gw.recv.setNonce(KEY_UPDATE_AT)
        const content = randomBytes(MAX_RECORD_CONTENT)
        const bodies = p.dev.encrypt(InnerType.DATA, content)
        assert.equal(bodies.length, 2, "KEY_UPDATE first")
        assert.equal(p.gw.decrypt(bodies[0] as Buffer)?.type, InnerType.KEY_UPDATE)
        assert.deepEqual(p.gw.decrypt(bodies[1] as Buffer)?.content, content)
        assert.deepEqual(bodies[1], aeadEncrypt(aeadRekey(p.up), 0, EMPTY, Buffer.concat([Buffer.from([InnerType.DATA]), content])))
        for (let i = 0; i < 3; i++) data(p.dev, p.gw, `next ${i}`)
    })
})

/** A deterministic PRNG (xorshift32) so a failing split pattern can be replayed. */
function prng(seed: number): (below: number) => number {
    let x = seed >>> 0 || 1
    return below => {
        x ^= x << 13
        x >>>= 0
        x ^= x >>> 17
        x ^= x << 5
        x >>>= 0
        return x % below
    }
}

describe("FrameDecoder: views and gathering", () => {
    const rnd = prng(0x7e7e)
    const sizes = [0, 1, 2, 15, 16, 17, 100, 1005, MAX_BODY_LEN]
    const sent = Array.from({ length: 300 }, (_, i) => ({ type: 1 + rnd(255), body: randomBytes(sizes[i % sizes.length] as number) }))
    const stream = Buffer.concat(sent.map(f => encodeFrame(f.type, f.body)))

    function decode(cuts: number[]): Frame[] {
        const d = new FrameDecoder()
        const out: Frame[] = []
        let at = 0
        for (const c of [...cuts, stream.length]) {
            // each chunk is a buffer of its own, as a socket's are
            out.push(...d.push(Buffer.from(stream.subarray(at, c))))
            at = c
        }
        assert.equal(d.buffered, 0)
        return out
    }

    function same(out: Frame[], what: string): void {
        assert.equal(out.length, sent.length, what)
        for (let i = 0; i < sent.length; i++) {
            assert.equal(out[i]?.type, sent[i]?.type, `${what}: frame ${i} type`)
            assert.deepEqual(out[i]?.body, sent[i]?.body, `${what}: frame ${i} body`)
        }
    }

    test("every fixed chunk size from 1 to 70, and around a frame", () => {
        for (let step = 1; step <= 70; step++) {
            const cuts: number[] = []
            for (let i = step; i < stream.length; i += step) cuts.push(i)
            same(decode(cuts), `step ${step}`)
        }
        for (const step of [1023, 1024, 1025, 1026, 1027, 4096, 65536]) {
            const cuts: number[] = []
            for (let i = step; i < stream.length; i += step) cuts.push(i)
            same(decode(cuts), `step ${step}`)
        }
    })
    test("200 random split and merge patterns, empty chunks included", () => {
        for (let round = 0; round < 200; round++) {
            const cuts: number[] = []
            let at = 0
            for (;;) {
                at += rnd(4) === 0 ? rnd(3) : rnd(2 * MAX_BODY_LEN) // often 0..2 bytes: split length fields
                if (at >= stream.length) break
                cuts.push(at)
            }
            same(decode(cuts), `round ${round}`)
        }
    })
    test("one byte at a time, and the whole stream in one chunk", () => {
        same(decode(Array.from({ length: stream.length - 1 }, (_, i) => i + 1)), "bytewise")
        same(decode([]), "one chunk")
    })
    test("bodies are independent: writing one, or a chunk after push, changes no other frame", () => {
        const a = encodeFrame(1, Buffer.alloc(10, 0xaa))
        const b = encodeFrame(2, Buffer.alloc(10, 0xbb))
        const c = encodeFrame(3, Buffer.alloc(10, 0xcc))
        const d = new FrameDecoder()
        const chunk = Buffer.concat([a, b, c.subarray(0, 5)])
        const first = d.push(chunk)
        assert.equal(first.length, 2)
        first[0]?.body.fill(0)
        assert.deepEqual(first[1]?.body, Buffer.alloc(10, 0xbb))
        chunk.fill(0xee, a.length + b.length) // the partial frame's bytes were copied out
        const rest = d.push(Buffer.from(c.subarray(5)))
        assert.deepEqual(rest, [{ type: 3, body: Buffer.alloc(10, 0xcc) }])
    })
    test("a bad length split across chunks throws once it is complete; buffered counts held bytes", () => {
        const d = new FrameDecoder()
        assert.deepEqual(d.push(encodeFrame(1, Buffer.alloc(3)).subarray(0, 4)), [])
        assert.equal(d.buffered, 4)
        assert.equal(d.push(Buffer.from([0, 0, 0x04])).length, 1)
        assert.equal(d.buffered, 1)
        assert.throws(
            () => d.push(Buffer.from([0x01])),
            (e: unknown) => e instanceof FrameError && e.length === 0x0401
        )
        assert.equal(d.buffered, 0)
        assert.throws(() => d.push(encodeFrame(1, Buffer.alloc(1))), FrameError)
        const e = new FrameDecoder()
        assert.deepEqual(e.push(Buffer.from([0])), [])
        assert.throws(
            () => e.push(Buffer.from([0, 1, 2])),
            (x: unknown) => x instanceof FrameError && x.length === 0
        )
    })
})

describe("server: the record path over loopback", () => {
    const fx = fixtures()

    test("many records in one write, a KEY_UPDATE among them, then split writes: all delivered in order", async () => {
        const f = await fx()
        const p = await f.pair("batch")
        const conn = await f.client(p).connect()
        const frames: Buffer[] = []
        const record = (type: number, content: Buffer) => {
            for (const b of conn.session.encrypt(type, content)) frames.push(encodeFrame(FrameType.RECORD, b))
        }
        for (let i = 0; i < 40; i++) {
            if (i === 17) record(InnerType.KEY_UPDATE, EMPTY)
            record(InnerType.DATA, Buffer.from(`m${i}`.padEnd(i % 2 ? 1006 : 3, ".")))
        }
        conn.sock.sendRaw(Buffer.concat(frames))
        assert.ok(await until(() => f.delivered.length === 40), `delivered ${f.delivered.length}`)
        assert.deepEqual(
            f.delivered.map(d => d.content.replace(/\.+$/, "")),
            Array.from({ length: 40 }, (_, i) => `m${i}`)
        )
        // the first record confirmed the session: its TICKET is the gateway's first record
        assert.ok(await conn.awaitTicket(), "the TICKET after the device's first record")
        // the same stream cut at odd places, a few bytes at a time around the frame edges
        frames.length = 0
        for (let i = 40; i < 60; i++) record(InnerType.DATA, Buffer.from(`m${i}`))
        const stream = Buffer.concat(frames)
        for (let at = 0; at < stream.length; at += 7) conn.sock.sendRaw(stream.subarray(at, at + 7))
        assert.ok(await until(() => f.delivered.length === 60))
        assert.equal(f.delivered[59]?.content, "m59")
        // the gateway's answer with a KEY_UPDATE in front: two frames in one corked write
        const [gws] = f.gw.sessionsOf(p.deviceId.toString("hex"))
        assert.ok(gws !== undefined)
        gws.send.setNonce(KEY_UPDATE_AT)
        conn.session.recv.setNonce(KEY_UPDATE_AT)
        assert.equal(f.gw.send(p.deviceId.toString("hex"), Buffer.from("down")), 1)
        assert.equal((await conn.recv(2000))?.toString(), "down")
        assert.equal(conn.session.recv.n, 1, "KEY_UPDATE applied, then one record under the new key")
        conn.close()
    })

    test("records keep the idle timer from firing; silence then closes with CLOSE(IDLE)", async () => {
        const f = await fx({ policy: { idleTimeoutMs: 200 } })
        const p = await f.pair("idle")
        const conn = await f.client(p).connect()
        for (let i = 0; i < 10; i++) {
            conn.send(Buffer.from(`k${i}`))
            await new Promise(r => setTimeout(r, 60))
        }
        assert.ok(await until(() => f.delivered.length === 10))
        assert.equal(conn.isOpen(), true, "600 ms of traffic under a 200 ms idle timeout")
        const t0 = Date.now()
        assert.equal(await conn.recv(3000), null)
        assert.equal(conn.closeCode, Code.IDLE)
        assert.ok(Date.now() - t0 >= 100, "closed by the idle timeout, not at once")
    })
})
