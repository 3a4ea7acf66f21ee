// The committed protocol vectors still match the code (regenerate with
// devs/gen/protocol-vectors.mjs when the protocol changes, never by hand). The device's side
// here; the gateway's frames are checked in responder.test.ts.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { keyPairFromPrivate, x25519 } from "../../src/crypto/x25519.js"
import { pseudonym0 } from "../../src/registry/registry.js"
import { readHsResp, writeHsInit } from "../../src/session/handshake.js"
import { obfuscateAge, readResumeResp, writeResumeInit } from "../../src/session/resume.js"
import { ageAdd, decodeTicketContent, mintTicket, TicketKeySet } from "../../src/tickets.js"
import { encodeFrame, FrameType, InnerType, prologue, TICKET_LIFETIME } from "../../src/wire.js"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "test", "vectors", "generated")
const load = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8")).tests as any[] // eslint-disable-line @typescript-eslint/no-explicit-any
const b = (h: string) => Buffer.from(h, "hex")
const frameBody = (h: string) => b(h).subarray(3)
const noRandom = () => assert.fail("the vectors draw no randomness on the device")

test("tether-kk.json: the initiator reproduces HS_INIT, verifies HS_RESP, h, its first record and the TICKET", () => {
    for (const v of load("tether-kk.json")) {
        const s = keyPairFromPrivate(b(v.device_static_private))
        const e = keyPairFromPrivate(b(v.device_ephemeral_private))
        const keys = { pseudonym: b(v.pseudonym), s, rs: b(v.gateway_static_public), psk: b(v.psk) }
        assert.equal(prologue(keys.pseudonym).toString("hex"), v.prologue, "the prologue names the pseudonym")
        assert.equal(pseudonym0(keys.psk).toString("hex"), v.pseudonym0)
        const es = x25519(e.privateKey, keys.rs)
        assert.equal(es.toString("hex"), v.es)
        const p = writeHsInit(keys, e, es)
        assert.equal(encodeFrame(FrameType.HS_INIT, p.body).toString("hex"), v.hs_init)
        assert.equal(b(v.hs_init).length, 60)
        assert.ok(!b(v.hs_init).includes(b(v.device_id)), "HS_INIT never shows the device id")
        const done = readHsResp(p, frameBody(v.hs_resp))
        assert.ok(done)
        assert.equal(done.handshakeHash.toString("hex"), v.handshake_hash)
        // the device's first record (n = 0) confirms the session; the TICKET comes back (n = 0)
        assert.equal(
            encodeFrame(FrameType.RECORD, done.session.encrypt(InnerType.DATA, b(v.data_i2r))[0]!).toString("hex"),
            v.record_data_i2r
        )
        assert.equal(b(v.record_ticket).length, 93)
        const t = done.session.decrypt(frameBody(v.record_ticket))
        assert.equal(t?.type, InnerType.TICKET)
        assert.equal(t?.content.toString("hex"), v.ticket + v.resumption_secret + v.next_pseudonym)
        assert.deepEqual(decodeTicketContent(t!.content)?.pseudonym, b(v.next_pseudonym))
        const ks = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key) }])
        const m = mintTicket({
            deviceId: b(v.device_id),
            generation: v.generation,
            issuedAt: v.issued_at,
            chainOrigin: v.chain_origin,
            keySet: ks,
        })
        assert.equal(m.ticket.toString("hex"), v.ticket)
        assert.equal(m.resumptionSecret.toString("hex"), v.resumption_secret)
        assert.equal(v.chain_origin, v.generation, "a full handshake's ticket starts its chain")
        assert.equal(v.issued_at, v.now)
        assert.equal(v.ticket_lifetime, TICKET_LIFETIME)
        assert.equal(done.session.decrypt(frameBody(v.record_data_r2i))?.content.toString("hex"), v.data_r2i)
    }
})

test("tether-resume.json: the initiator reproduces RESUME_INIT, verifies RESUME_RESP, h, its first record and the TICKET", () => {
    const cases = load("tether-resume.json")
    assert.equal(cases.length, 4)
    for (const v of cases) {
        const secret = b(v.resumption_secret)
        const ks = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key) }])
        const m = mintTicket({
            deviceId: b(v.device_id),
            generation: v.generation,
            issuedAt: v.issued_at,
            chainOrigin: v.chain_origin,
            keySet: ks,
        })
        assert.equal(m.ticket.toString("hex"), v.ticket, v.name)
        assert.deepEqual(m.resumptionSecret, secret)
        assert.equal(ageAdd(secret), v.age_add)
        const age = obfuscateAge(secret, v.ticket_age, noRandom)
        assert.equal(age.toString("hex"), v.obfuscated_age)
        const early = v.early ? b(v.early_data) : undefined
        const p = writeResumeInit({ ticket: m.ticket, secret }, b(v.device_id), age, b(v.nonce_i), early)
        assert.equal(encodeFrame(FrameType.RESUME_INIT, p.body).toString("hex"), v.resume_init, v.name)
        const done = readResumeResp(p, frameBody(v.resume_resp))
        assert.ok(done)
        assert.equal(done.flags, v.flags)
        assert.equal(done.handshakeHash.toString("hex"), v.handshake_hash)
        assert.equal(
            encodeFrame(FrameType.RECORD, done.session.encrypt(InnerType.DATA, b(v.data_i2r))[0]!).toString("hex"),
            v.record_data_i2r
        )
        if (v.early && v.flags === 0) assert.equal(v.data_i2r, v.early_data, "early data not accepted goes again as the first record")
        const t = done.session.decrypt(frameBody(v.record_ticket))
        assert.equal(t?.type, InnerType.TICKET)
        assert.equal(t?.content.toString("hex"), v.next_ticket + v.next_resumption_secret + v.next_pseudonym)
        const next = mintTicket({
            deviceId: b(v.device_id),
            generation: v.next_generation,
            issuedAt: v.next_issued_at,
            chainOrigin: v.chain_origin,
            keySet: ks,
        })
        assert.equal(next.ticket.toString("hex"), v.next_ticket, "a resumption's ticket stays in the chain")
        assert.equal(v.next_generation, v.generation + 1)
        assert.equal(done.session.decrypt(frameBody(v.record_data_r2i))?.content.toString("hex"), v.data_r2i)
        assert.equal(b(v.resume_init).length, 65 + (early === undefined ? 0 : 1 + early.length))
        assert.equal(b(v.resume_resp).length, 32)
        assert.ok(!b(v.resume_init).includes(b(v.device_id)), "RESUME_INIT never shows the device id")
    }
})
