// The full handshake against the gateway's generated vectors (test/vectors/generated/
// tether-kk.json, from devs/gen/protocol-vectors.mjs): with the vector's static and
// ephemeral keys injected and es and ss prepared (the vector's es, PROTOCOL.md 4.3), the
// device writes HS_INIT byte for byte without any X25519 (named by the vector's pseudonym,
// which is in the prologue), reads HS_RESP to the same handshake hash with exactly two
// (ee, se), writes its first DATA record byte for byte, and opens the gateway's TICKET
// (ticket, secret, next pseudonym) and DATA records. A flipped byte in HS_RESP or in a record
// is refused with undefined and leaves the state as it was (PROTOCOL.md 3.3, 5).
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

/** The idle work of PROTOCOL.md 4.3 for the vector's keys: es and ss (two DH, counted). */
async function prepared(v: any): Promise<{ es: Buffer; ss: Buffer }> {
    const es = await DH.x25519(h(v.device_ephemeral_private), h(v.gateway_static_public))
    const ss = await DH.x25519(h(v.device_static_private), h(v.gateway_static_public))
    return { es, ss }
}

function pairingOf(v: any): Pairing {
    return {
        deviceId: h(v.device_id),
        s: { privateKey: h(v.device_static_private), publicKey: h(v.device_static_public) },
        gatewayPublic: h(v.gateway_static_public),
        psk: h(v.psk),
    }
}

/** HS_INIT from the vector's keys and pseudonym, es and ss prepared. */
async function start(v: any): Promise<KkPending> {
    const e = { privateKey: h(v.device_ephemeral_private), publicKey: h(v.device_ephemeral_public) }
    const k = await prepared(v)
    return await writeHsInit({ pairing: pairingOf(v), pseudonym: h(v.pseudonym), e, es: k.es, ss: k.ss, dh: DH })
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
        test(v.name + ": writing HS_INIT with es and ss prepared costs no X25519", async () => {
            const k = await prepared(v)
            dhCalls = 0
            const e = { privateKey: h(v.device_ephemeral_private), publicKey: h(v.device_ephemeral_public) }
            const p = await writeHsInit({ pairing: pairingOf(v), pseudonym: h(v.pseudonym), e, es: k.es, ss: k.ss, dh: DH })
            expect(dhCalls).toBe(0)
            expect(hex(encodeFrame(FrameType.HS_INIT, p.body))).toBe(v.hs_init)
            // another pseudonym: another prologue, another message 1 (the pseudonym is authenticated)
            const k2 = await prepared(v)
            const e2 = { privateKey: h(v.device_ephemeral_private), publicKey: h(v.device_ephemeral_public) }
            const q = await writeHsInit({ pairing: pairingOf(v), pseudonym: h(v.pseudonym0), e: e2, es: k2.es, ss: k2.ss, dh: DH })
            expect(hex(q.body.slice(1, 9))).toBe(v.pseudonym0)
            expect(hex(q.body.slice(41)) === hex(p.body.slice(41))).toBe(false)
            // es and ss must be prepared
            let threw = false
            try {
                await writeHsInit({ pairing: pairingOf(v), pseudonym: h(v.pseudonym), e, es: undefined, ss: k.ss, dh: DH })
            } catch (err) {
                threw = true
            }
            expect(threw).toBe(true)
        })
        test(v.name + ": keys, names and prologue", async () => {
            expect(v.protocol_name).toBe("Noise_KKpsk2_25519_AESCCM_SHA256")
            // the full handshake's prologue names the pseudonym of HS_INIT, not the device_id
            expect(hex(prologue(h(v.pseudonym)))).toBe(v.prologue)
            expect(v.prologue).toBe(hex(Buffer.from("tether/2")) + "02" + v.pseudonym)
            expect(hex(await x25519Base(h(v.device_static_private)))).toBe(v.device_static_public)
            expect(hex(await x25519Base(h(v.device_ephemeral_private)))).toBe(v.device_ephemeral_public)
            // es = DH(e_device, s_gateway), what the device prepares while idle
            expect(hex((await prepared(v)).es)).toBe(v.es)
        })
        test(v.name + ": HS_INIT, HS_RESP, handshake hash, records byte for byte", async () => {
            const p = await start(v) // es and ss prepared: two DH before dhCalls is reset
            expect(hex(p.body.slice(1, 9))).toBe(v.pseudonym)
            expect(hex(encodeFrame(FrameType.HS_INIT, p.body))).toBe(v.hs_init)
            dhCalls = 0
            const s = await readHsResp(p, body(h(v.hs_resp), FrameType.HS_RESP))
            expect(s === undefined).toBe(false)
            expect(dhCalls).toBe(2) // ee, se: the critical path
            expect(hex(p.hs.getHandshakeHash())).toBe(v.handshake_hash)
            // the device goes first: its first record, n = 0
            const up = s.encrypt(InnerType.DATA, h(v.data_i2r))
            expect(up.length).toBe(1)
            expect(hex(encodeFrame(FrameType.RECORD, up[0]))).toBe(v.record_data_i2r)
            // then the gateway's first record: TICKET (n = 0)
            const t = s.decrypt(body(h(v.record_ticket), FrameType.RECORD))
            expect(t.type).toBe(InnerType.TICKET)
            expect(hex(t.content)).toBe(v.ticket + v.resumption_secret + v.next_pseudonym)
            expect(hex(t.content.slice(0, 33))).toBe(v.ticket)
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
