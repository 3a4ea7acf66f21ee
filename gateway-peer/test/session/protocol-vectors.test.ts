// The committed protocol vectors still match the code (regenerate with
// devs/gen/protocol-vectors.mjs when the protocol changes, never by hand).
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { readHsResp, writeHsInit } from "../../src/session/handshake.js"
import { readResumeResp, writeResumeInit } from "../../src/session/resume.js"
import { mintTicket, TicketKeySet } from "../../src/tickets.js"
import { encodeFrame, FrameType, InnerType } from "../../src/wire.js"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "test", "vectors", "generated")
const load = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8")).tests as any[] // eslint-disable-line @typescript-eslint/no-explicit-any
const b = (h: string) => Buffer.from(h, "hex")
const frameBody = (h: string) => b(h).subarray(3)

test("tether-kk.json: the initiator reproduces HS_INIT, verifies HS_RESP, h and every record", () => {
    for (const v of load("tether-kk.json")) {
        const keys = {
            deviceId: b(v.device_id),
            s: keyPairFromPrivate(b(v.device_static_private)),
            rs: b(v.gateway_static_public),
            psk: b(v.psk),
        }
        const p = writeHsInit(keys, keyPairFromPrivate(b(v.device_ephemeral_private)))
        assert.equal(encodeFrame(FrameType.HS_INIT, p.body).toString("hex"), v.hs_init)
        const done = readHsResp(p, frameBody(v.hs_resp))
        assert.ok(done)
        assert.equal(done.handshakeHash.toString("hex"), v.handshake_hash)
        const t = done.session.decrypt(frameBody(v.record_ticket))
        assert.equal(t?.type, InnerType.TICKET)
        assert.equal(t?.content.toString("hex"), v.ticket + v.resumption_secret)
        const ks = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: b(v.ticket_key) }])
        const m = mintTicket({ deviceId: keys.deviceId, generation: v.generation, expiresAt: v.expires_at, keySet: ks })
        assert.equal(m.ticket.toString("hex"), v.ticket)
        assert.equal(v.expires_at, v.now + v.ticket_lifetime)
        assert.equal(
            encodeFrame(FrameType.RECORD, done.session.encrypt(InnerType.DATA, b(v.data_i2r))[0]!).toString("hex"),
            v.record_data_i2r
        )
        assert.equal(done.session.decrypt(frameBody(v.record_data_r2i))?.content.toString("hex"), v.data_r2i)
    }
})

test("tether-resume.json: the initiator reproduces RESUME_INIT, verifies RESUME_RESP, h and every record", () => {
    const cases = load("tether-resume.json")
    assert.equal(cases.length, 3)
    for (const v of cases) {
        const early = v.early ? b(v.early_data) : undefined
        const p = writeResumeInit({ ticket: b(v.ticket), secret: b(v.resumption_secret) }, b(v.nonce_i), early)
        assert.equal(encodeFrame(FrameType.RESUME_INIT, p.body).toString("hex"), v.resume_init, v.name)
        const done = readResumeResp(p, frameBody(v.resume_resp))
        assert.ok(done)
        assert.equal(done.flags, v.flags)
        assert.equal(done.handshakeHash.toString("hex"), v.handshake_hash)
        assert.equal(done.session.decrypt(frameBody(v.record_ticket))?.content.toString("hex"), v.next_ticket + v.next_resumption_secret)
        assert.equal(
            encodeFrame(FrameType.RECORD, done.session.encrypt(InnerType.DATA, b(v.data_i2r))[0]!).toString("hex"),
            v.record_data_i2r
        )
        assert.equal(done.session.decrypt(frameBody(v.record_data_r2i))?.content.toString("hex"), v.data_r2i)
        assert.equal(b(v.resume_init).length, 65 + (early === undefined ? 0 : 1 + early.length))
        assert.equal(b(v.resume_resp).length, 32)
    }
})
