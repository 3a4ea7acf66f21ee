// The resumption (PROTOCOL.md 6.2) on the device: the schedule against a test-local gateway
// side written token by token on SymmetricState, zero X25519, early data in and out,
// transactional RESUME_RESP processing, tampering.
// @timeout 30000
import { describe, test, expect } from "@devicescript/test"
import { sha256 } from "../../src/crypto/hash"
import { AESCCM } from "../../src/noise/cipher-state"
import { SymmetricState } from "../../src/noise/symmetric-state"
import { readResumeResp, writeResumeInit } from "../../src/tether/resume"
import { InnerType } from "../../src/tether/wire"

const hex = (b: Buffer) => b.toString("hex")
const EMPTY = Buffer.alloc(0)

function bytes(label: string, n: number) {
    return sha256(Buffer.from(label)).slice(0, n)
}

const TICKET = Buffer.concat(Buffer.from([7]), bytes("dev", 8), bytes("rest", 24))
const SECRET = bytes("secret", 32)

/** The gateway's side of 6.2, written out independently of resume.ts. */
function gateway(body: Buffer, nonceR: Buffer, flags: number) {
    const sym = new SymmetricState(AESCCM, "Tether_Resume1_AESCCM_SHA256")
    sym.mixHash(Buffer.concat(Buffer.from("tether/1"), Buffer.from([1]), body.slice(2, 10)))
    sym.mixKeyAndHash(SECRET)
    sym.mixHash(body.slice(1, 34))
    const nonceI = body.slice(34, 46)
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
        const nonceI = bytes("ni", 12)
        const p = writeResumeInit({ ticket: TICKET, secret: SECRET }, nonceI, Buffer.from("hello"))
        expect(p.body.length).toBe(62 + 1 + 5)
        expect(p.body[0]).toBe(1)
        expect(hex(p.body.slice(1, 34))).toBe(hex(TICKET))
        expect(hex(p.body.slice(34, 46))).toBe(hex(nonceI))
        const g = gateway(p.body, bytes("nr", 12), 1)
        expect(hex(g.early)).toBe("01" + hex(Buffer.from("hello")))
        expect(g.resp.length).toBe(29)
        const r = readResumeResp(p, g.resp)
        expect(r.flags).toBe(1)
        const up = r.session.encrypt(InnerType.DATA, Buffer.from("up"))[0]
        expect(hex(g.cs[0].decryptWithAd(EMPTY, up))).toBe("01" + hex(Buffer.from("up")))
        const down = g.cs[1].encryptWithAd(EMPTY, Buffer.from([1, 0x64]))
        expect(r.session.decrypt(down).content.toString()).toBe("d")

        const p0 = writeResumeInit({ ticket: TICKET, secret: SECRET }, nonceI)
        expect(p0.body.length).toBe(62)
        const g0 = gateway(p0.body, bytes("nr", 12), 0)
        expect(hex(g0.early)).toBe("")
        expect(readResumeResp(p0, g0.resp).flags).toBe(0)
    })
    test("a tampered or wrong RESUME_RESP is rejected and the pending state still works", () => {
        const p = writeResumeInit({ ticket: TICKET, secret: SECRET }, bytes("ni2", 12))
        const g = gateway(p.body, bytes("nr2", 12), 1)
        for (const i of [0, 11, 12, 13, 28]) {
            const bad = g.resp.slice(0)
            bad[i] ^= 0x04
            expect(readResumeResp(p, bad)).toBe(undefined)
        }
        expect(readResumeResp(p, g.resp.slice(0, 28))).toBe(undefined)
        expect(readResumeResp(p, Buffer.concat(g.resp, Buffer.alloc(1)))).toBe(undefined)
        // reserved flag bits set: not version 1
        expect(readResumeResp(p, gateway(p.body, bytes("nr2", 12), 3).resp)).toBe(undefined)
        expect(readResumeResp(p, g.resp).flags).toBe(1)
    })
    test("the secret, ticket and nonce are all bound", () => {
        const nonceI = bytes("ni3", 12)
        const p = writeResumeInit({ ticket: TICKET, secret: bytes("other", 32) }, nonceI, Buffer.from("x"))
        expect(gateway(p.body, bytes("nr", 12), 1).early).toBe(undefined)
        const q = writeResumeInit({ ticket: TICKET, secret: SECRET }, nonceI, Buffer.from("x"))
        for (const i of [1, 5, 33, 34, 45]) {
            const bad = q.body.slice(0)
            bad[i] ^= 0x01
            expect(gateway(bad, bytes("nr", 12), 1).early).toBe(undefined)
        }
    })
    test("early data limits", () => {
        const t = { ticket: TICKET, secret: SECRET }
        expect(writeResumeInit(t, bytes("n", 12), Buffer.alloc(960)).body.length).toBe(1023)
        expect(() => writeResumeInit(t, bytes("n", 12), Buffer.alloc(961))).toThrow()
        expect(() => writeResumeInit({ ticket: TICKET.slice(1), secret: SECRET }, bytes("n", 12))).toThrow()
    })
})
