#!/usr/bin/env node
// Writes the Tether protocol vectors from fixed inputs, through the gateway's own code paths
// (its Responder for the gateway's frames, the initiator's messages of tether-gateway/peer for the
// device's), and checks the full handshake against the Noise reference's HandshakeState as it
// goes. Output: test/vectors/generated/tether-kk.json and tether-resume.json; then
// `node devs/gen/vectors-to-device.mjs` refreshes the device's modules. Never edit the JSON.
//
//     npm run build -w gateway-peer && node devs/gen/protocol-vectors.mjs [--out DIR]
//
// Both files are { description, tests: [case, ...] }, each case a flat object of lowercase hex
// strings (bytes), numbers and booleans. Frames ("hs_init", "record_...") are whole frames,
// length and type included.
//
// tether-kk.json, one case per row:
//   name; protocol_name (ASCII); device_id; prologue
//   device_static_private/public, gateway_static_private/public, device_ephemeral_private/public,
//   gateway_ephemeral_private/public, psk
//   hs_init: HS_INIT frame (60 bytes); hs_resp: HS_RESP frame (51 bytes)
//   handshake_hash: h after message 2
//   now, ticket_lifetime (seconds); ticket_key_id, ticket_key: the gateway's current ticket key
//   generation, expires_at, ticket, resumption_secret: the first ticket
//   record_ticket: the gateway's first RECORD frame (TICKET, gateway -> device, n = 0)
//   data_i2r: DATA content the device sends; record_data_i2r: its RECORD frame (n = 0)
//   data_r2i: DATA content the gateway sends; record_data_r2i: its RECORD frame (n = 1)
//
// tether-resume.json, one case per row (with early data accepted, without early data, and
// with early data on an already accepted generation, so EARLY_ACCEPTED is clear):
//   name; protocol_name; device_id
//   ticket_key_id, ticket_key, now, ticket_lifetime
//   generation, expires_at, ticket, resumption_secret: the ticket the device resumes with
//   accepted_generation: the registry's value before the resumption
//   nonce_i, nonce_r; early (boolean), early_data: DATA content sent as 0-RTT ("" if none)
//   resume_init: RESUME_INIT frame; resume_resp: RESUME_RESP frame; flags: its flags byte
//   handshake_hash: h after RESUME_RESP
//   next_generation, next_expires_at, next_ticket, next_resumption_secret: the ticket issued
//   record_ticket: the gateway's first RECORD frame (TICKET, n = 0)
//   data_i2r/record_data_i2r (device -> gateway, n = 0), data_r2i/record_data_r2i (n = 1)
import { keyPairFromPrivate, MemoryRegistry, mintTicket, newDevice, peekTicket, Phase, Responder, TicketKeySet } from "tether-gateway"
import { decodeTicketContent, readHsInit, readHsResp, readResumeResp, writeHsInit, writeResumeInit } from "tether-gateway/peer"
import { AESCCM, HandshakeState } from "tether-gateway/reference"
import {
    encodeFrame,
    FrameType,
    InnerType,
    KK_PATTERN,
    KK_PROTOCOL_NAME,
    prologue,
    RESUME_PROTOCOL_NAME,
    TICKET_LIFETIME,
} from "tether-gateway/wire"
import { outDir, runAsMain, writeVectorFile } from "./common.mjs"

const hex = b => Buffer.from(b).toString("hex")
const seq = (start, n = 32) => Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff))

const NOW = 1_767_225_600 // 2026-01-01T00:00:00Z
const deviceId = Buffer.from("d1d2d3d4d5d6d7d8", "hex")
const device = keyPairFromPrivate(seq(0x01))
const gateway = keyPairFromPrivate(seq(0x21))
const deviceE = keyPairFromPrivate(seq(0x41))
const gatewayE = keyPairFromPrivate(seq(0x61))
const psk = seq(0x81)
const ticketKey = seq(0xa1)
const TICKET_KEY_ID = 3

function check(cond, what) {
    if (!cond) throw new Error(`gen-protocol-vectors: ${what}`)
}

async function context(accepted, issued, rng) {
    const registry = new MemoryRegistry()
    await registry.putDevice({
        ...newDevice({ id: hex(deviceId), name: "vector-device", publicKey: device.publicKey, psk, now: NOW }),
        issued_generation: issued,
        accepted_generation: accepted,
        full_generation: 1,
    })
    return {
        registry,
        identity: gateway,
        ticketKeys: TicketKeySet.fromKeys([{ id: TICKET_KEY_ID, key: ticketKey, createdAt: NOW }]),
        now: () => NOW,
        ephemeral: () => gatewayE,
        rng,
    }
}

/** Reads the TICKET record, then one DATA record each way, from both ends' sessions. */
function records(deviceSession, responder, ticketFrame) {
    const s = responder.state
    check(s.phase === Phase.Established, "responder not established")
    const t = deviceSession.decrypt(ticketFrame.subarray(3))
    check(t !== undefined && t.type === InnerType.TICKET, "TICKET record")
    const dataI2r = Buffer.from("hello gateway")
    const [bodyI2r] = deviceSession.encrypt(InnerType.DATA, dataI2r)
    check(bodyI2r !== undefined, "record")
    const got = s.session.decrypt(bodyI2r)
    check(got !== undefined && got.content.equals(dataI2r), "device -> gateway record")
    const dataR2i = Buffer.from("hello device")
    const [frameR2i] = responder.data(dataR2i)
    check(frameR2i !== undefined, "record")
    check(deviceSession.decrypt(frameR2i.subarray(3))?.content.equals(dataR2i) === true, "gateway -> device record")
    const content = decodeTicketContent(t.content)
    check(content !== undefined, "TICKET content")
    const f = peekTicket(content.ticket)
    check(f !== undefined, "ticket")
    return {
        ticket: content.ticket,
        secret: content.secret,
        fields: f,
        out: {
            record_ticket: hex(ticketFrame),
            data_i2r: hex(dataI2r),
            record_data_i2r: hex(encodeFrame(FrameType.RECORD, bodyI2r)),
            data_r2i: hex(dataR2i),
            record_data_r2i: hex(frameR2i),
        },
    }
}

async function kkCase() {
    const ctx = await context(0, 0)
    const pending = writeHsInit({ deviceId, s: device, rs: gateway.publicKey, psk }, deviceE)
    const hsInit = encodeFrame(FrameType.HS_INIT, pending.body)
    const responder = new Responder(ctx)
    const step = await responder.receive({ type: FrameType.HS_INIT, body: hsInit.subarray(3) })
    const [hsResp, ticketFrame] = step.frames
    check(hsResp !== undefined && ticketFrame !== undefined && hsResp[2] === FrameType.HS_RESP, "HS_RESP")
    const done = readHsResp(pending, hsResp.subarray(3))
    check(done !== undefined, "HS_RESP did not verify")
    // the same bytes from the Noise HandshakeState (which reproduces the cacophony vectors)
    const hs = new HandshakeState({
        pattern: KK_PATTERN,
        initiator: true,
        cipher: AESCCM,
        prologue: prologue(deviceId),
        s: device,
        rs: gateway.publicKey,
        psks: [psk],
        e: deviceE,
    })
    const m1 = readHsInit(pending.body)
    check(!("error" in m1) && hs.writeMessage(Buffer.alloc(0)).equals(m1.message), "HandshakeState disagrees on message 1")
    check(hs.readMessage(hsResp.subarray(3))?.length === 0, "HandshakeState rejects message 2")
    check(hs.getHandshakeHash().equals(done.handshakeHash), "HandshakeState disagrees on h")
    const r = records(done.session, responder, ticketFrame)
    return {
        name: "full handshake, KKpsk2 with AESCCM",
        protocol_name: KK_PROTOCOL_NAME,
        device_id: hex(deviceId),
        prologue: hex(prologue(deviceId)),
        device_static_private: hex(device.privateKey),
        device_static_public: hex(device.publicKey),
        gateway_static_private: hex(gateway.privateKey),
        gateway_static_public: hex(gateway.publicKey),
        device_ephemeral_private: hex(deviceE.privateKey),
        device_ephemeral_public: hex(deviceE.publicKey),
        gateway_ephemeral_private: hex(gatewayE.privateKey),
        gateway_ephemeral_public: hex(gatewayE.publicKey),
        psk: hex(psk),
        hs_init: hex(hsInit),
        hs_resp: hex(hsResp),
        handshake_hash: hex(done.handshakeHash),
        now: NOW,
        ticket_lifetime: TICKET_LIFETIME,
        ticket_key_id: TICKET_KEY_ID,
        ticket_key: hex(ticketKey),
        generation: r.fields.generation,
        expires_at: r.fields.expiresAt,
        ticket: hex(r.ticket),
        resumption_secret: hex(r.secret),
        ...r.out,
    }
}

async function resumeCase(name, early, accepted) {
    const generation = 5
    const nonceI = seq(0xc1, 12)
    const nonceR = seq(0xe1, 12)
    const ctx = await context(accepted, generation, n => (check(n === 12, "rng"), Buffer.from(nonceR)))
    const expiresAt = NOW + 3600
    const m = mintTicket({ deviceId, generation, expiresAt, keySet: ctx.ticketKeys })
    const pending = writeResumeInit({ ticket: m.ticket, secret: m.resumptionSecret }, nonceI, early)
    const resumeInit = encodeFrame(FrameType.RESUME_INIT, pending.body)
    const responder = new Responder(ctx)
    const step = await responder.receive({ type: FrameType.RESUME_INIT, body: pending.body })
    const [resumeResp, ticketFrame] = step.frames
    check(resumeResp !== undefined && ticketFrame !== undefined && resumeResp[2] === FrameType.RESUME_RESP, "RESUME_RESP")
    const done = readResumeResp(pending, resumeResp.subarray(3))
    check(done !== undefined, "RESUME_RESP did not verify")
    check(step.delivered.length === (done.flags & 1), "delivery and EARLY_ACCEPTED disagree")
    const r = records(done.session, responder, ticketFrame)
    return {
        name,
        protocol_name: RESUME_PROTOCOL_NAME,
        device_id: hex(deviceId),
        ticket_key_id: TICKET_KEY_ID,
        ticket_key: hex(ticketKey),
        now: NOW,
        ticket_lifetime: TICKET_LIFETIME,
        generation,
        expires_at: expiresAt,
        ticket: hex(m.ticket),
        resumption_secret: hex(m.resumptionSecret),
        accepted_generation: accepted,
        nonce_i: hex(nonceI),
        nonce_r: hex(nonceR),
        early: early !== undefined,
        early_data: early === undefined ? "" : hex(early),
        resume_init: hex(resumeInit),
        resume_resp: hex(resumeResp),
        flags: done.flags,
        handshake_hash: hex(done.handshakeHash),
        next_generation: r.fields.generation,
        next_expires_at: r.fields.expiresAt,
        next_ticket: hex(r.ticket),
        next_resumption_secret: hex(r.secret),
        ...r.out,
    }
}

/** Writes both files into `dir`. */
export async function generate(dir = outDir()) {
    const kk = {
        description: "Tether v1 full handshake (PROTOCOL.md 4, 5, 6.1): generated by devs/gen/protocol-vectors.mjs; do not edit",
        tests: [await kkCase()],
    }
    const resume = {
        description: "Tether v1 resumption (PROTOCOL.md 6.2-6.4): generated by devs/gen/protocol-vectors.mjs; do not edit",
        tests: [
            await resumeCase("resume with early data, newer generation: EARLY_ACCEPTED", Buffer.from("early hello"), 4),
            await resumeCase("resume without early data", undefined, 4),
            await resumeCase("resume with early data, generation already accepted: discarded", Buffer.from("early hello"), 5),
        ],
    }
    writeVectorFile(dir, "tether-kk.json", JSON.stringify(kk, null, 2) + "\n", "1 case")
    writeVectorFile(dir, "tether-resume.json", JSON.stringify(resume, null, 2) + "\n", "3 cases")
}

runAsMain(import.meta.url, argv => generate(outDir(argv)))
