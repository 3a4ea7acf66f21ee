// The resumption (PROTOCOL.md 6.2) on the device: the schedule against a test-local gateway
// side written token by token on SymmetricState, zero X25519, early data in and out, the
// ticket's obfuscated age (age_add, the 32-bit wrap on doubles), transactional RESUME_RESP
// processing, tampering; and the gateway's generated vectors
// (test/vectors/generated/tether-resume.json) byte for byte: RESUME_INIT with and without
// early data, RESUME_RESP and its flags, the handshake hash, the TICKET and DATA records.
// @timeout 30000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { hmacSha256, sha256 } from "../../../src/crypto/hash"
import { AESCCM } from "../../../src/noise/cipher"
import { SymmetricState } from "../../../src/noise/symmetric-state"
import { encodeFrame, HEADER_SIZE } from "../../../src/net/frame"
import { ageAdd, obfuscateAge, readResumeResp, writeResumeInit, ResumeAttempt, ResumePending } from "../../../src/tether/resume"
import { FrameType, InnerType, NONCE_R_LEN, RESUME_RESP_BODY_LEN } from "../../../src/tether/wire"
import { TETHER_RESUME } from "../vectors/tether-resume"

const hex = (b: Buffer) => b.toString("hex")
const h = (s: string) => Buffer.from(s, "hex")
const EMPTY = Buffer.alloc(0)

function bytes(label: string, n: number) {
    return sha256(Buffer.from(label)).slice(0, n)
}

const DEVICE_ID = bytes("dev", 8)
const TICKET = Buffer.concat(Buffer.from([7]), bytes("sealed and mac", 32))
const SECRET = bytes("secret", 32)
const AGE = h("01020304")

function attempt(nonceI: Buffer, early?: Buffer, secret?: Buffer): ResumeAttempt {
    return { deviceId: DEVICE_ID, t: { ticket: TICKET, secret: secret || SECRET }, obfuscatedAge: AGE, nonceI, early }
}

/** The gateway's side of 6.2, written out independently of resume.ts. */
function gateway(body: Buffer, nonceR: Buffer, flags: number, deviceId?: Buffer) {
    const sym = new SymmetricState(AESCCM, "Tether_Resume2_AESCCM_SHA256")
    // the device_id comes from the (sealed) ticket on the gateway; here it is known
    sym.mixHash(Buffer.concat(Buffer.from("tether/2"), Buffer.from([2]), deviceId || DEVICE_ID))
    sym.mixKeyAndHash(SECRET)
    sym.mixHash(body.slice(1, 34)) // ticket
    sym.mixHash(body.slice(34, 38)) // obfuscated_age
    const nonceI = body.slice(38, 46)
    sym.mixHash(nonceI)
    sym.mixKey(nonceI)
    const early = sym.decryptAndHash(body.slice(46))
    sym.mixHash(nonceR)
    sym.mixKey(nonceR)
    const ct = sym.encryptAndHash(Buffer.from([flags]))
    return { early, resp: Buffer.concat(nonceR, ct), cs: sym.split() }
}

describe("resume schedule", () => {
    test("RESUME_INIT layout, with and without early data; sessions agree", () => {
        const nonceI = bytes("ni", 8)
        const p = writeResumeInit(attempt(nonceI, Buffer.from("hello")))
        expect(p.body.length).toBe(62 + 1 + 5)
        expect(p.body[0]).toBe(2)
        expect(hex(p.body.slice(1, 34))).toBe(hex(TICKET))
        expect(hex(p.body.slice(34, 38))).toBe(hex(AGE))
        expect(hex(p.body.slice(38, 46))).toBe(hex(nonceI))
        expect(p.early).toBe(true)
        const g = gateway(p.body, bytes("nr", 12), 1)
        expect(hex(g.early)).toBe("01" + hex(Buffer.from("hello")))
        expect(g.resp.length).toBe(29)
        const r = readResumeResp(p, g.resp)
        expect(r.flags).toBe(1)
        const up = r.session.encrypt(InnerType.DATA, Buffer.from("up"))[0]
        expect(hex(g.cs[0].decryptWithAd(EMPTY, up))).toBe("01" + hex(Buffer.from("up")))
        const down = g.cs[1].encryptWithAd(EMPTY, Buffer.from([1, 0x64]))
        expect(r.session.decrypt(down).content.toString()).toBe("d")

        const p0 = writeResumeInit(attempt(nonceI))
        expect(p0.body.length).toBe(62)
        expect(p0.early).toBe(false)
        const g0 = gateway(p0.body, bytes("nr", 12), 0)
        expect(hex(g0.early)).toBe("")
        expect(readResumeResp(p0, g0.resp).flags).toBe(0)
    })
    test("a tampered or wrong RESUME_RESP is rejected and the pending state still works", () => {
        const p = writeResumeInit(attempt(bytes("ni2", 8)))
        const g = gateway(p.body, bytes("nr2", 12), 1)
        for (const i of [0, 11, 12, 13, 28]) {
            const bad = g.resp.slice(0)
            bad[i] ^= 0x04
            expect(readResumeResp(p, bad)).toBe(undefined)
        }
        expect(readResumeResp(p, g.resp.slice(0, 28))).toBe(undefined)
        expect(readResumeResp(p, Buffer.concat(g.resp, Buffer.alloc(1)))).toBe(undefined)
        // reserved flag bits set: not version 2
        expect(readResumeResp(p, gateway(p.body, bytes("nr2", 12), 3).resp)).toBe(undefined)
        expect(readResumeResp(p, gateway(p.body, bytes("nr2", 12), 0x80).resp)).toBe(undefined)
        expect(readResumeResp(p, g.resp).flags).toBe(1)
    })
    test("the device_id, secret, ticket, age and nonce are all bound", () => {
        const nonceI = bytes("ni3", 8)
        const p = writeResumeInit(attempt(nonceI, Buffer.from("x"), bytes("other", 32)))
        expect(gateway(p.body, bytes("nr", 12), 1).early).toBe(undefined)
        const q = writeResumeInit(attempt(nonceI, Buffer.from("x")))
        expect(hex(gateway(q.body, bytes("nr", 12), 1).early)).toBe("0178")
        // another device's id in the prologue
        expect(gateway(q.body, bytes("nr", 12), 1, bytes("other dev", 8)).early).toBe(undefined)
        for (const i of [1, 5, 33, 34, 37, 38, 45]) {
            const bad = q.body.slice(0)
            bad[i] ^= 0x01
            expect(gateway(bad, bytes("nr", 12), 1).early).toBe(undefined)
        }
    })
    test("early data limits and input sizes", () => {
        const n = bytes("n", 8)
        expect(writeResumeInit(attempt(n, Buffer.alloc(960))).body.length).toBe(1023)
        expect(() => writeResumeInit(attempt(n, Buffer.alloc(961)))).toThrow()
        expect(() => writeResumeInit(attempt(bytes("n", 12)))).toThrow() // a version 1 nonce_i
        const a = attempt(n)
        a.t = { ticket: TICKET.slice(1), secret: SECRET }
        expect(() => writeResumeInit(a)).toThrow()
        const b = attempt(n)
        b.obfuscatedAge = Buffer.alloc(3)
        expect(() => writeResumeInit(b)).toThrow()
        const c = attempt(n)
        c.deviceId = Buffer.alloc(9)
        expect(() => writeResumeInit(c)).toThrow()
    })
})

describe("the ticket's obfuscated age", () => {
    test('age_add = uint32 of HMAC-SHA-256(secret, "tether/2 age")[0..4], never negative', () => {
        const m = hmacSha256(SECRET, Buffer.from("tether/2 age"))
        expect(ageAdd(SECRET)).toBe((m[0] * 256 + m[1]) * 65536 + m[2] * 256 + m[3])
        // a secret whose age_add has the top bit set: still a non-negative uint32
        let s = SECRET
        for (let i = 0; i < 64 && hmacSha256(s, Buffer.from("tether/2 age"))[0] < 0x80; i++) s = sha256(s)
        const big = ageAdd(s)
        expect(big >= 2147483648 && big <= 4294967295).toBe(true)
        expect(() => ageAdd(SECRET.slice(1))).toThrow()
    })
    test("(ticket_age + age_add) mod 2^32, big-endian, on doubles", () => {
        expect(hex(obfuscateAge(0, 0))).toBe("00000000")
        expect(hex(obfuscateAge(385, 0))).toBe("00000181")
        expect(hex(obfuscateAge(380, 5))).toBe("00000181")
        expect(hex(obfuscateAge(0, 0xffffffff))).toBe("ffffffff")
        expect(hex(obfuscateAge(1, 0xffffffff))).toBe("00000000")
        expect(hex(obfuscateAge(10, 4294967290))).toBe("00000004")
        expect(hex(obfuscateAge(380, 3000000000))).toBe("b2d05f7c")
        expect(hex(obfuscateAge(0x80000000, 0x80000000))).toBe("00000000")
        expect(hex(obfuscateAge(4294967296 * 3 + 7, 0))).toBe("00000007")
        expect(hex(obfuscateAge(12.9, 0))).toBe("0000000c") // whole milliseconds
        expect(hex(obfuscateAge(-5, 1))).toBe("00000001")
    })
})

/** The body of a whole frame from the vector file, after checking its header. */
function body(frame: Buffer, type: number): Buffer {
    expect(frame[2]).toBe(type)
    expect(frame[0] * 256 + frame[1]).toBe(frame.length - 2)
    return frame.slice(HEADER_SIZE)
}

function start(v: any): ResumePending {
    return writeResumeInit({
        deviceId: h(v.device_id),
        t: { ticket: h(v.ticket), secret: h(v.resumption_secret) },
        obfuscatedAge: h(v.obfuscated_age),
        nonceI: h(v.nonce_i),
        early: v.early ? h(v.early_data) : undefined,
    })
}

/**
 * The handshake hash after RESUME_RESP, on a clone of the device's own SymmetricState
 * (readResumeResp keeps its clone to itself): nonce_r as a psk-mode e token, then the flags.
 */
function hashAfterResp(p: ResumePending, resp: Buffer): string {
    const sym = p.sym.clone()
    const nonceR = resp.slice(0, NONCE_R_LEN)
    sym.mixHash(nonceR)
    sym.mixKey(nonceR)
    expect(sym.decryptAndHash(resp.slice(NONCE_R_LEN)) === undefined).toBe(false)
    return hex(sym.h)
}

describe("Tether resume vectors", () => {
    test("the vector file has the cases: early accepted, no early data, early refused (replay rule, not fresh)", () => {
        expect(TETHER_RESUME.length).toBe(4)
        let accepted = 0
        let none = 0
        let refused = 0
        TETHER_RESUME.forEach((v: any) => {
            if (!v.early) none++
            else if (v.flags === 1) accepted++
            else refused++
        })
        expect(accepted + " " + none + " " + refused).toBe("1 1 2")
    })
    TETHER_RESUME.forEach((v: any) => {
        test(v.name + ": RESUME_INIT, RESUME_RESP, flags, hash, records byte for byte", async () => {
            await ds.sleep(0) // the VM allows 128K instructions between awaits
            expect(v.protocol_name).toBe("Tether_Resume2_AESCCM_SHA256")
            // the obfuscated age from the ticket's age and secret (6.2)
            expect(ageAdd(h(v.resumption_secret))).toBe(v.age_add)
            if (v.ticket_age !== undefined && v.ticket_age !== null)
                expect(hex(obfuscateAge(v.ticket_age, ageAdd(h(v.resumption_secret))))).toBe(v.obfuscated_age)
            else expect(v.early).toBe(false) // an unknown age: no early data
            const p = start(v)
            expect(p.early).toBe(v.early)
            expect(hex(encodeFrame(FrameType.RESUME_INIT, p.body))).toBe(v.resume_init)
            const resp = body(h(v.resume_resp), FrameType.RESUME_RESP)
            expect(hashAfterResp(p, resp)).toBe(v.handshake_hash)
            const r = readResumeResp(p, resp)
            expect(r === undefined).toBe(false)
            expect(r.flags).toBe(v.flags)
            const s = r.session
            // the gateway's first record: the next TICKET (n = 0)
            const t = s.decrypt(body(h(v.record_ticket), FrameType.RECORD))
            expect(t.type).toBe(InnerType.TICKET)
            expect(hex(t.content)).toBe(v.next_ticket + v.next_resumption_secret + v.next_pseudonym)
            // device -> gateway (n = 0), gateway -> device (n = 1)
            const up = s.encrypt(InnerType.DATA, h(v.data_i2r))
            expect(hex(encodeFrame(FrameType.RECORD, up[0]))).toBe(v.record_data_i2r)
            const d = s.decrypt(body(h(v.record_data_r2i), FrameType.RECORD))
            expect(d.type).toBe(InnerType.DATA)
            expect(hex(d.content)).toBe(v.data_r2i)
        })
        test(v.name + ": a flipped byte in RESUME_RESP or a record is refused, the state unchanged", async () => {
            await ds.sleep(0)
            const p = start(v)
            const h0 = hex(p.sym.h)
            const resp = body(h(v.resume_resp), FrameType.RESUME_RESP)
            for (let i = 0; i < RESUME_RESP_BODY_LEN; i++) {
                const bad = resp.slice(0)
                bad[i] ^= 0x20
                expect(readResumeResp(p, bad)).toBe(undefined)
                expect(hex(p.sym.h)).toBe(h0)
                await ds.sleep(0)
            }
            const r = readResumeResp(p, resp)
            expect(r.flags).toBe(v.flags)
            const s = r.session
            const ticket = body(h(v.record_ticket), FrameType.RECORD)
            for (const i of [0, 2, 50, ticket.length - 1]) {
                const bad = ticket.slice(0)
                bad[i] ^= 0x02
                expect(s.recv.decryptWithAd(EMPTY, bad)).toBe(undefined)
                expect(s.recv.n).toBe(0)
            }
            expect(hex(s.decrypt(ticket).content.slice(0, 33))).toBe(v.next_ticket)
            const data = body(h(v.record_data_r2i), FrameType.RECORD)
            const bad = data.slice(0)
            bad[data.length - 1] ^= 0x01
            expect(s.decrypt(bad)).toBe(undefined)
            expect(s.dead).toBe(true)
            expect(s.decrypt(data)).toBe(undefined)
        })
    })
})
