// Transport records (PROTOCOL.md 5): inner types, tampering kills the session with no
// plaintext, KEY_UPDATE at KEY_UPDATE_AT in both directions (started near the limit through
// setNonce), and the nonce limit.
// @timeout 30000
import { describe, test, expect } from "@devicescript/test"
import { AESCCM } from "../../../src/noise/cipher"
import { CipherState } from "../../../src/noise/cipher-state"
import { Session } from "../../../src/tether/session"
import {
    KEY_UPDATE_AT,
    MAX_RECORD_CONTENT,
    InnerType,
    NONCE_LIMIT,
    HEADER_LEN,
    HS_INIT_FRAME_LEN,
    HS_RESP_FRAME_LEN,
    INNER_TYPE_LEN,
    MAX_EARLY_DATA,
    MAX_RECORD_PLAINTEXT,
    RESUME_INIT_MIN_FRAME_LEN,
    RESUME_RESP_FRAME_LEN,
    TAG_LEN,
    TICKET_CONTENT_LEN,
    TICKET_LEN,
    prologue,
    VERSION,
    RESUME_INIT_MIN_BODY_LEN,
    NONCE_I_LEN,
    NONCE_R_LEN,
    OBFUSCATED_AGE_LEN,
    PSEUDONYM_LEN,
    KK_PROTOCOL_NAME,
    RESUME_PROTOCOL_NAME,
    fallBackOn,
    RESUME_CAP,
} from "../../../src/tether/wire"
import { sha256 } from "../../../src/crypto/hash"

const hex = (b: Buffer) => b.toString("hex")
const EMPTY = Buffer.alloc(0)
const K1 = sha256(Buffer.from("k1"))
const K2 = sha256(Buffer.from("k2"))

/** A device session and the peer's mirror image on the same keys. */
function pair() {
    const dev = new Session(new CipherState(AESCCM, K1), new CipherState(AESCCM, K2))
    const gw = new Session(new CipherState(AESCCM, K2), new CipherState(AESCCM, K1))
    return { dev, gw }
}

function deliver(from: Session, to: Session, type: number, content: Buffer) {
    const bodies = from.encrypt(type, content)
    const got: string[] = []
    for (const b of bodies) {
        const r = to.decrypt(b)
        got.push(r === undefined ? "FAIL" : r.type + ":" + hex(r.content))
    }
    return got.join(",")
}

describe("wire", () => {
    test("PROTOCOL.md's sizes follow from the derived constants", () => {
        expect(HS_INIT_FRAME_LEN).toBe(60)
        expect(HS_RESP_FRAME_LEN).toBe(51)
        expect(HS_INIT_FRAME_LEN + HS_RESP_FRAME_LEN).toBe(111)
        expect(RESUME_INIT_MIN_FRAME_LEN).toBe(65)
        expect(RESUME_RESP_FRAME_LEN).toBe(32)
        expect(TICKET_LEN).toBe(33)
        expect(TICKET_CONTENT_LEN).toBe(73)
        expect(HEADER_LEN + INNER_TYPE_LEN + TICKET_CONTENT_LEN + TAG_LEN).toBe(93)
        expect(VERSION).toBe(2)
        expect(RESUME_INIT_MIN_BODY_LEN).toBe(62)
        expect(NONCE_I_LEN + " " + NONCE_R_LEN + " " + OBFUSCATED_AGE_LEN + " " + PSEUDONYM_LEN).toBe("8 12 4 8")
        expect(KK_PROTOCOL_NAME).toBe("Noise_KKpsk2_25519_AESCCM_SHA256")
        expect(RESUME_PROTOCOL_NAME).toBe("Tether_Resume2_AESCCM_SHA256")
        expect(MAX_RECORD_PLAINTEXT).toBe(1007)
        expect(MAX_RECORD_CONTENT).toBe(1006)
        expect(MAX_EARLY_DATA).toBe(961)
        expect(NONCE_LIMIT).toBe(4294967295)
        expect(KEY_UPDATE_AT).toBe(4294901760)
        expect(prologue(Buffer.from("0102030405060708", "hex")).toString("hex")).toBe(
            Buffer.from("tether/2").toString("hex") + "02" + "0102030405060708"
        )
        expect(() => prologue(Buffer.alloc(7))).toThrow()
    })
    test("the fallback cap: r = 1, 2 and every multiple of 8", () => {
        const on: number[] = []
        for (let r = 1; r <= 40; r++) if (fallBackOn(r)) on.push(r)
        expect(on.join(",")).toBe("1,2,8,16,24,32,40")
        expect(RESUME_CAP).toBe(32)
    })
})

describe("records", () => {
    test('every inner type both ways; RECORD body = ENCRYPT(k, n, "", type || content)', () => {
        const { dev, gw } = pair()
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("hi"))).toBe("1:" + hex(Buffer.from("hi")))
        expect(deliver(gw, dev, InnerType.DATA, EMPTY)).toBe("1:")
        const tc = Buffer.alloc(73)
        tc[72] = 7
        expect(deliver(gw, dev, InnerType.TICKET, tc)).toBe("2:" + hex(tc))
        expect(deliver(dev, gw, InnerType.CLOSE, Buffer.from([0x10]))).toBe("3:10")
        const big = Buffer.alloc(MAX_RECORD_CONTENT)
        expect(dev.encrypt(InnerType.DATA, big)[0].length).toBe(1 + MAX_RECORD_CONTENT + 16)
        expect(() => dev.encrypt(InnerType.DATA, Buffer.alloc(MAX_RECORD_CONTENT + 1))).toThrow()
        expect(() => dev.encrypt(0x05, EMPTY)).toThrow()
        expect(() => dev.encrypt(InnerType.CLOSE, EMPTY)).toThrow()
        // the same bytes as a raw CipherState under K1 at n = 0
        const raw = new CipherState(AESCCM, K1).encryptWithAd(EMPTY, Buffer.from([1, 0x68, 0x69]))
        const fresh = pair()
        expect(hex(fresh.dev.encrypt(InnerType.DATA, Buffer.from("hi"))[0])).toBe(hex(raw))
    })
    test("a tampered record: undefined, the session is dead, later records too", () => {
        const { dev, gw } = pair()
        const rec = gw.encrypt(InnerType.DATA, Buffer.from("secret"))[0]
        const next = gw.encrypt(InnerType.DATA, Buffer.from("next"))[0]
        const bad = rec.slice(0)
        bad[3] ^= 0x20
        expect(dev.decrypt(bad)).toBe(undefined)
        expect(dev.dead).toBe(true)
        expect(dev.decrypt(rec)).toBe(undefined)
        expect(dev.decrypt(next)).toBe(undefined)
        expect(() => dev.encrypt(InnerType.DATA, EMPTY)).toThrow()
    })
    test("truncated, empty and unknown-type or wrong-length records kill the session", () => {
        const cases = [
            (k: CipherState) => k.encryptWithAd(EMPTY, Buffer.from([1, 2])).slice(0, 10), // truncated
            (k: CipherState) => k.encryptWithAd(EMPTY, EMPTY), // no inner type
            (k: CipherState) => k.encryptWithAd(EMPTY, Buffer.from([0x05])), // unknown type
            (k: CipherState) => k.encryptWithAd(EMPTY, Buffer.from([0x02, 1, 2])), // short TICKET
            (k: CipherState) => k.encryptWithAd(EMPTY, Buffer.from([0x03])), // CLOSE without code
            (k: CipherState) => k.encryptWithAd(EMPTY, Buffer.from([0x04, 0])), // KEY_UPDATE with content
        ]
        for (const mk of cases) {
            const { dev } = pair()
            expect(dev.decrypt(mk(new CipherState(AESCCM, K2)))).toBe(undefined)
            expect(dev.dead).toBe(true)
        }
    })
    test("the receiver refuses n >= NONCE_LIMIT", () => {
        const { dev, gw } = pair()
        dev.recv.setNonce(NONCE_LIMIT)
        gw.send.setNonce(NONCE_LIMIT - 1)
        const rec = gw.encrypt(InnerType.DATA, EMPTY)
        expect(rec.length).toBe(2) // far past KEY_UPDATE_AT: it rekeys first
        expect(dev.decrypt(rec[0])).toBe(undefined)
        expect(dev.dead).toBe(true)
    })
})

describe("KEY_UPDATE", () => {
    test("device -> gateway across KEY_UPDATE_AT: the peer follows", () => {
        const { dev, gw } = pair()
        dev.send.setNonce(KEY_UPDATE_AT - 2)
        gw.recv.setNonce(KEY_UPDATE_AT - 2)
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("a"))).toBe("1:61")
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("b"))).toBe("1:62")
        expect(dev.send.n).toBe(KEY_UPDATE_AT)
        const oldK = hex(dev.send.k)
        // the next record: KEY_UPDATE under the old key, then the record under REKEY(k), n = 0
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("c"))).toBe("4:,1:63")
        expect(dev.send.n).toBe(1)
        expect(gw.recv.n).toBe(1)
        expect(hex(dev.send.k) === oldK).toBe(false)
        expect(hex(gw.recv.k)).toBe(hex(dev.send.k))
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("d"))).toBe("1:64")
        expect(dev.dead || gw.dead).toBe(false)
    })
    test("gateway -> device across KEY_UPDATE_AT, and an early KEY_UPDATE", () => {
        const { dev, gw } = pair()
        gw.send.setNonce(KEY_UPDATE_AT)
        dev.recv.setNonce(KEY_UPDATE_AT)
        expect(deliver(gw, dev, InnerType.DATA, Buffer.from("x"))).toBe("4:,1:78")
        expect(dev.recv.n).toBe(1)
        // "A sender MAY update earlier."
        expect(deliver(dev, gw, InnerType.KEY_UPDATE, EMPTY)).toBe("4:")
        expect(dev.send.n).toBe(0)
        expect(gw.recv.n).toBe(0)
        expect(deliver(dev, gw, InnerType.DATA, Buffer.from("y"))).toBe("1:79")
    })
    test("a record under the old key after KEY_UPDATE is rejected", () => {
        const { dev, gw } = pair()
        gw.send.setNonce(KEY_UPDATE_AT)
        dev.recv.setNonce(KEY_UPDATE_AT)
        const bodies = gw.encrypt(InnerType.DATA, Buffer.from("x"))
        const stale = new CipherState(AESCCM, K2)
        stale.setNonce(KEY_UPDATE_AT + 1)
        expect(dev.decrypt(bodies[0]).type).toBe(InnerType.KEY_UPDATE)
        expect(dev.decrypt(stale.encryptWithAd(EMPTY, Buffer.from([1])))).toBe(undefined)
        expect(dev.dead).toBe(true)
    })
})
