// The full handshake against the gateway's generated vectors (test/vectors/generated/
// tether-kk.json, from devs/gen/protocol-vectors.mjs): with the vector's static
// and ephemeral keys injected, the device writes HS_INIT byte for byte, reads HS_RESP to the
// same handshake hash, opens the gateway's TICKET and DATA records and writes its own DATA
// record byte for byte. A flipped byte in HS_RESP or in a record is refused with undefined
// and leaves the state as it was (PROTOCOL.md 3.3, 5).
// @timeout 60000
import { describe, test, expect } from "@devicescript/test"
import { x25519, x25519Base } from "../../../src/crypto/x25519"
import { encodeFrame, HEADER_SIZE } from "../../../src/net/frame"
import { Dh } from "../../../src/noise/dh"
import { readHsResp, writeHsInit, KkPending, Pairing } from "../../../src/tether/handshake"
import { Session } from "../../../src/tether/session"
import { FrameType, HS_RESP_BODY_LEN, InnerType, prologue } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"

const h = (s: string) => Buffer.from(s, "hex")
const hex = (b: Buffer) => b.toString("hex")
const EMPTY = Buffer.alloc(0)

/** The runtime's X25519, counted. */
let dhCalls = 0
const DH: Dh = {
    x25519: async (a: Buffer, u: Buffer) => {
        dhCalls++
        return await x25519(a, u)
    },
    x25519Base: async (a: Buffer) => {
        dhCalls++
        return await x25519Base(a)
    },
}

/** The body of a whole frame from the vector file, after checking its header. */
function body(frame: Buffer, type: number): Buffer {
    expect(frame[2]).toBe(type)
    expect(frame[0] * 256 + frame[1]).toBe(frame.length - 2)
    return frame.slice(HEADER_SIZE)
}

function pairingOf(v: any): Pairing {
    return {
        deviceId: h(v.device_id),
        s: { privateKey: h(v.device_static_private), publicKey: h(v.device_static_public) },
        gatewayPublic: h(v.gateway_static_public),
        psk: h(v.psk),
    }
}

/** HS_INIT from the vector's keys; `ss` is left to the handshake (one more DH). */
async function start(v: any): Promise<KkPending> {
    const e = { privateKey: h(v.device_ephemeral_private), publicKey: h(v.device_ephemeral_public) }
    return await writeHsInit({ pairing: pairingOf(v), e, dh: DH })
}

/** The established session of a vector (HS_INIT and HS_RESP processed). */
async function established(v: any): Promise<Session> {
    const p = await start(v)
    return await readHsResp(p, body(h(v.hs_resp), FrameType.HS_RESP))
}

describe("Tether KK vectors", () => {
    test("the vector file has cases", () => {
        expect(TETHER_KK.length >= 1).toBe(true)
    })
    TETHER_KK.forEach((v: any) => {
        test(v.name + ": keys, names and prologue", async () => {
            expect(v.protocol_name).toBe("Noise_KKpsk2_25519_AESCCM_SHA256")
            expect(hex(prologue(h(v.device_id)))).toBe(v.prologue)
            expect(hex(await x25519Base(h(v.device_static_private)))).toBe(v.device_static_public)
            expect(hex(await x25519Base(h(v.device_ephemeral_private)))).toBe(v.device_ephemeral_public)
        })
        test(v.name + ": HS_INIT, HS_RESP, handshake hash, records byte for byte", async () => {
            dhCalls = 0
            const p = await start(v)
            expect(hex(encodeFrame(FrameType.HS_INIT, p.body))).toBe(v.hs_init)
            expect(dhCalls).toBe(2) // es, and ss because none was cached
            const s = await readHsResp(p, body(h(v.hs_resp), FrameType.HS_RESP))
            expect(s === undefined).toBe(false)
            expect(dhCalls).toBe(4) // ee, se
            expect(hex(p.hs.getHandshakeHash())).toBe(v.handshake_hash)
            // the gateway's first record: TICKET (n = 0)
            const t = s.decrypt(body(h(v.record_ticket), FrameType.RECORD))
            expect(t.type).toBe(InnerType.TICKET)
            expect(hex(t.content)).toBe(v.ticket + v.resumption_secret)
            expect(hex(t.content.slice(0, 33))).toBe(v.ticket)
            // device -> gateway, n = 0
            const up = s.encrypt(InnerType.DATA, h(v.data_i2r))
            expect(up.length).toBe(1)
            expect(hex(encodeFrame(FrameType.RECORD, up[0]))).toBe(v.record_data_i2r)
            // gateway -> device, n = 1
            const d = s.decrypt(body(h(v.record_data_r2i), FrameType.RECORD))
            expect(d.type).toBe(InnerType.DATA)
            expect(hex(d.content)).toBe(v.data_r2i)
            expect(s.recv.n).toBe(2)
            expect(s.send.n).toBe(1)
        })
        test(v.name + ": a flipped byte anywhere in HS_RESP is refused, the state unchanged", async () => {
            const p = await start(v)
            const good = body(h(v.hs_resp), FrameType.HS_RESP)
            const h0 = hex(p.hs.getHandshakeHash())
            // re (changes ee and se: two more DH), the ciphertext's only bytes are the tag
            for (const i of [0, 31, 32, 40, HS_RESP_BODY_LEN - 1]) {
                const bad = good.slice(0)
                bad[i] ^= 0x01
                expect(await p.hs.readMessage(bad)).toBe(undefined)
                expect(hex(p.hs.getHandshakeHash())).toBe(h0)
                expect(p.hs.isComplete()).toBe(false)
            }
            // short, long
            expect(await readHsResp(p, good.slice(0, HS_RESP_BODY_LEN - 1))).toBe(undefined)
            expect(await readHsResp(p, Buffer.concat(good, Buffer.alloc(1)))).toBe(undefined)
            expect(hex(p.hs.getHandshakeHash())).toBe(h0)
            // the untouched message still completes the handshake to the vector's hash
            const s = await readHsResp(p, good)
            expect(s === undefined).toBe(false)
            expect(hex(p.hs.getHandshakeHash())).toBe(v.handshake_hash)
        })
        test(v.name + ": a flipped byte in a record: undefined, n unchanged, no plaintext", async () => {
            const s = await established(v)
            const ticket = body(h(v.record_ticket), FrameType.RECORD)
            // on the receiving CipherState: a failed decrypt leaves n alone (state unchanged)
            for (const i of [0, 1, 40, ticket.length - 1]) {
                const bad = ticket.slice(0)
                bad[i] ^= 0x80
                expect(s.recv.decryptWithAd(EMPTY, bad)).toBe(undefined)
                expect(s.recv.n).toBe(0)
            }
            expect(s.recv.decryptWithAd(EMPTY, ticket.slice(0, ticket.length - 1))).toBe(undefined)
            expect(s.recv.n).toBe(0)
            expect(s.dead).toBe(false)
            // the Session: the untouched TICKET opens; then a tampered DATA record kills it
            expect(s.decrypt(ticket).type).toBe(InnerType.TICKET)
            const data = body(h(v.record_data_r2i), FrameType.RECORD)
            const bad = data.slice(0)
            bad[3] ^= 0x01
            expect(s.decrypt(bad)).toBe(undefined)
            expect(s.dead).toBe(true)
            expect(s.recv.n).toBe(1)
            // and nothing more is released from it, not even the good record
            expect(s.decrypt(data)).toBe(undefined)
        })
    })
})
