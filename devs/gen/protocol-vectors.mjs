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
//   name; protocol_name (ASCII); device_id; pseudonym (the one HS_INIT carries); prologue
//   device_static_private/public, gateway_static_private/public, device_ephemeral_private/public,
//   gateway_ephemeral_private/public, psk; es: DH(e_device, s_gateway), computed while idle (4.3)
//   hs_init: HS_INIT frame (60 bytes); hs_resp: HS_RESP frame (51 bytes)
//   handshake_hash: h after message 2
//   data_i2r: DATA content the device sends first; record_data_i2r: its RECORD frame (n = 0)
//   now, ticket_lifetime (seconds); ticket_key_id, ticket_key: the gateway's current session key
//   generation, issued_at, chain_origin, ticket, resumption_secret, next_pseudonym: the ticket
//   the confirmed session issued; record_ticket: the gateway's first RECORD frame (TICKET, n = 0)
//   data_r2i: DATA content the gateway sends; record_data_r2i: its RECORD frame (n = 1)
//
// tether-resume.json, one case per row (early data accepted; no early data; early data on an
// already accepted generation; early data held back 10 s, so not fresh):
//   name; protocol_name; device_id
//   ticket_key_id, ticket_key, now (s), now_ms, ticket_lifetime, early_data_window_ms
//   generation, issued_at, chain_origin, ticket, resumption_secret: the ticket the device resumes with
//   age_add, ticket_age (ms, as the device measured it), obfuscated_age
//   accepted_generation: the registry's value before the resumption
//   nonce_i (8 bytes), nonce_r (12); early (boolean), early_data: DATA content sent as 0-RTT ("" if none)
//   resume_init: RESUME_INIT frame; resume_resp: RESUME_RESP frame; flags: its flags byte
//   handshake_hash: h after RESUME_RESP
//   data_i2r/record_data_i2r: the device's first record (n = 0; the early data again when it was
//   not accepted); next_generation, next_issued_at, next_ticket, next_resumption_secret,
//   next_pseudonym: the ticket issued; record_ticket: the gateway's first RECORD (TICKET, n = 0)
//   data_r2i/record_data_r2i (n = 1)
//
// Every ticket, resumption secret and age_add is also computed by devs/gen/ticket-reference.mjs
// (@noble/hashes), and the full handshake is checked against the Noise reference's
// HandshakeState: the file is written only when they agree.
import {
    ageAdd,
    keyPairFromPrivate,
    MemoryRegistry,
    mintTicket,
    newDevice,
    openTicket,
    Phase,
    pseudonym0,
    Responder,
    TicketKeySet,
    x25519,
} from "tether-gateway"
import {
    decodeTicketContent,
    obfuscateAge,
    readHsInit,
    readHsResp,
    readResumeResp,
    writeHsInit,
    writeResumeInit,
} from "tether-gateway/peer"
import { AESCCM, HandshakeState } from "tether-gateway/reference"
import {
    EARLY_DATA_WINDOW_MS,
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
import { referenceAgeAdd, referencePseudonym0, referenceTicket } from "./ticket-reference.mjs"

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
/** The pseudonym the device got in its last TICKET (the kk case's HS_INIT carries it). */
const storedPseudonym = seq(0x91, 8)
/** The next pseudonym the gateway draws when it confirms a session. */
const nextPseudonym = seq(0xb1, 8)

function check(cond, what) {
    if (!cond) throw new Error(`gen-protocol-vectors: ${what}`)
}

/** The gateway's randomness: nonce_r (12 bytes) and the next pseudonym (8), both fixed. */
const rng = n => (n === 12 ? seq(0xe1, 12) : n === 8 ? Buffer.from(nextPseudonym) : check(false, `rng(${n})`))

async function context({ accepted, issued, full }) {
    const registry = new MemoryRegistry()
    const d = newDevice({ id: hex(deviceId), name: "vector-device", publicKey: device.publicKey, psk, now: NOW })
    await registry.putDevice({
        ...d,
        issued_generation: issued,
        accepted_generation: accepted,
        full_generation: full,
        pseudonym: storedPseudonym,
    })
    return {
        registry,
        identity: gateway,
        ticketKeys: TicketKeySet.fromKeys([{ id: TICKET_KEY_ID, key: ticketKey, createdAt: NOW }]),
        now: () => NOW,
        nowMs: () => NOW * 1000,
        ephemeral: () => gatewayE,
        rng,
    }
}

/**
 * The device's first record (which confirms the session and brings the TICKET unless accepted
 * early data already did), the TICKET, and one DATA record back.
 */
async function records(deviceSession, responder, ctx, dataI2r, ticketFrame) {
    const [bodyI2r] = deviceSession.encrypt(InnerType.DATA, dataI2r)
    check(bodyI2r !== undefined, "record")
    const step = await responder.receive({ type: FrameType.RECORD, body: bodyI2r })
    check(step.delivered.length === 1 && step.delivered[0].equals(dataI2r), "device -> gateway record")
    if (ticketFrame === undefined) {
        check(step.frames.length === 1, "the first record brings one TICKET")
        ticketFrame = step.frames[0]
    } else check(step.frames.length === 0, "a TICKET only once")
    check(responder.state.phase === Phase.Established && responder.state.unconfirmed === undefined, "confirmed")
    const t = deviceSession.decrypt(ticketFrame.subarray(3))
    check(t !== undefined && t.type === InnerType.TICKET, "TICKET record")
    const dataR2i = Buffer.from("hello device")
    const [frameR2i] = responder.data(dataR2i)
    check(frameR2i !== undefined, "record")
    check(deviceSession.decrypt(frameR2i.subarray(3))?.content.equals(dataR2i) === true, "gateway -> device record")
    const content = decodeTicketContent(t.content)
    check(content !== undefined && content.pseudonym.equals(nextPseudonym), "TICKET content")
    const dev = await ctx.registry.getDevice(hex(deviceId))
    const f = openTicket(content.ticket, ctx.ticketKeys, NOW, dev.full_generation)
    check(!("error" in f), "the issued ticket opens")
    check(dev.pseudonym.equals(nextPseudonym) && dev.issued_generation === f.generation, "registry after confirmation")
    const ref = referenceTicket({
        ticketKey,
        keyId: TICKET_KEY_ID,
        deviceId,
        generation: f.generation,
        issuedAt: f.issuedAt,
        chainOrigin: dev.full_generation,
    })
    check(ref.ticket.equals(content.ticket) && ref.resumptionSecret.equals(content.secret), "the reference disagrees on the issued ticket")
    return {
        ticket: content.ticket,
        secret: content.secret,
        fields: f,
        chainOrigin: dev.full_generation,
        out: {
            data_i2r: hex(dataI2r),
            record_data_i2r: hex(encodeFrame(FrameType.RECORD, bodyI2r)),
            record_ticket: hex(ticketFrame),
            data_r2i: hex(dataR2i),
            record_data_r2i: hex(frameR2i),
        },
    }
}

async function kkCase() {
    const ctx = await context({ accepted: 3, issued: 4, full: 1 })
    const es = x25519(deviceE.privateKey, gateway.publicKey) // while idle (4.3)
    const pending = writeHsInit({ pseudonym: storedPseudonym, s: device, rs: gateway.publicKey, psk }, deviceE, es)
    const hsInit = encodeFrame(FrameType.HS_INIT, pending.body)
    const responder = new Responder(ctx)
    const step = await responder.receive({ type: FrameType.HS_INIT, body: hsInit.subarray(3) })
    check(step.frames.length === 1 && step.frames[0][2] === FrameType.HS_RESP, "HS_RESP alone: no TICKET before the device's record")
    const [hsResp] = step.frames
    const done = readHsResp(pending, hsResp.subarray(3))
    check(done !== undefined, "HS_RESP did not verify")
    // the same bytes from the Noise HandshakeState (which reproduces the cacophony vectors)
    const hs = new HandshakeState({
        pattern: KK_PATTERN,
        initiator: true,
        cipher: AESCCM,
        prologue: prologue(storedPseudonym),
        s: device,
        rs: gateway.publicKey,
        psks: [psk],
        e: deviceE,
    })
    const m1 = readHsInit(pending.body)
    check(!("error" in m1) && hs.writeMessage(Buffer.alloc(0)).equals(m1.message), "HandshakeState disagrees on message 1")
    check(hs.readMessage(hsResp.subarray(3))?.length === 0, "HandshakeState rejects message 2")
    check(hs.getHandshakeHash().equals(done.handshakeHash), "HandshakeState disagrees on h")
    const r = await records(done.session, responder, ctx, Buffer.from("hello gateway"), undefined)
    check(r.fields.generation === 5 && r.chainOrigin === 5, "a full handshake starts a chain at its ticket")
    return {
        name: "full handshake, KKpsk2 with AESCCM, then the device's first record and the TICKET",
        protocol_name: KK_PROTOCOL_NAME,
        device_id: hex(deviceId),
        pseudonym: hex(storedPseudonym),
        prologue: hex(prologue(storedPseudonym)),
        device_static_private: hex(device.privateKey),
        device_static_public: hex(device.publicKey),
        gateway_static_private: hex(gateway.privateKey),
        gateway_static_public: hex(gateway.publicKey),
        device_ephemeral_private: hex(deviceE.privateKey),
        device_ephemeral_public: hex(deviceE.publicKey),
        gateway_ephemeral_private: hex(gatewayE.privateKey),
        gateway_ephemeral_public: hex(gatewayE.publicKey),
        psk: hex(psk),
        pseudonym0: hex(pseudonym0(psk)),
        es: hex(es),
        hs_init: hex(hsInit),
        hs_resp: hex(hsResp),
        handshake_hash: hex(done.handshakeHash),
        now: NOW,
        ticket_lifetime: TICKET_LIFETIME,
        ticket_key_id: TICKET_KEY_ID,
        ticket_key: hex(ticketKey),
        generation: r.fields.generation,
        issued_at: r.fields.issuedAt,
        chain_origin: r.chainOrigin,
        ticket: hex(r.ticket),
        resumption_secret: hex(r.secret),
        next_pseudonym: hex(nextPseudonym),
        ...r.out,
    }
}

async function resumeCase(name, early, accepted, ticketAgeMs) {
    const generation = 5
    const issuedAt = NOW - 3600 // an hour old
    const nonceI = seq(0xc1, 8)
    const ctx = await context({ accepted, issued: generation, full: 1 })
    const m = mintTicket({ deviceId, generation, issuedAt, chainOrigin: 1, keySet: ctx.ticketKeys })
    const ref = referenceTicket({ ticketKey, keyId: TICKET_KEY_ID, deviceId, generation, issuedAt, chainOrigin: 1 })
    check(ref.ticket.equals(m.ticket) && ref.resumptionSecret.equals(m.resumptionSecret), "the reference disagrees on the ticket")
    const add = ageAdd(m.resumptionSecret)
    check(add === referenceAgeAdd(m.resumptionSecret), "the reference disagrees on age_add")
    const age = obfuscateAge(m.resumptionSecret, ticketAgeMs, () => check(false, "a known age needs no randomness"))
    check(age.readUInt32BE(0) === (ticketAgeMs + add) % 2 ** 32, "obfuscated_age")
    const pending = writeResumeInit({ ticket: m.ticket, secret: m.resumptionSecret }, deviceId, age, nonceI, early)
    const resumeInit = encodeFrame(FrameType.RESUME_INIT, pending.body)
    const responder = new Responder(ctx)
    const step = await responder.receive({ type: FrameType.RESUME_INIT, body: pending.body })
    const [resumeResp, ticketFrame] = step.frames
    check(resumeResp !== undefined && resumeResp[2] === FrameType.RESUME_RESP, "RESUME_RESP")
    const done = readResumeResp(pending, resumeResp.subarray(3))
    check(done !== undefined, "RESUME_RESP did not verify")
    check(step.delivered.length === (done.flags & 1), "delivery and EARLY_ACCEPTED disagree")
    check((ticketFrame !== undefined) === (step.delivered.length === 1), "a TICKET at once exactly when early data was accepted")
    const first = early !== undefined && (done.flags & 1) === 0 ? early : Buffer.from("hello gateway")
    const r = await records(done.session, responder, ctx, first, ticketFrame)
    return {
        name,
        protocol_name: RESUME_PROTOCOL_NAME,
        device_id: hex(deviceId),
        ticket_key_id: TICKET_KEY_ID,
        ticket_key: hex(ticketKey),
        now: NOW,
        now_ms: NOW * 1000,
        ticket_lifetime: TICKET_LIFETIME,
        early_data_window_ms: EARLY_DATA_WINDOW_MS,
        generation,
        issued_at: issuedAt,
        chain_origin: 1,
        ticket: hex(m.ticket),
        resumption_secret: hex(m.resumptionSecret),
        age_add: add,
        ticket_age: ticketAgeMs,
        obfuscated_age: hex(age),
        accepted_generation: accepted,
        nonce_i: hex(nonceI),
        nonce_r: hex(seq(0xe1, 12)),
        early: early !== undefined,
        early_data: early === undefined ? "" : hex(early),
        resume_init: hex(resumeInit),
        resume_resp: hex(resumeResp),
        flags: done.flags,
        handshake_hash: hex(done.handshakeHash),
        next_generation: r.fields.generation,
        next_issued_at: r.fields.issuedAt,
        next_ticket: hex(r.ticket),
        next_resumption_secret: hex(r.secret),
        next_pseudonym: hex(nextPseudonym),
        ...r.out,
    }
}

/** Writes both files into `dir`. */
export async function generate(dir = outDir()) {
    const kk = {
        description: "Tether v2 full handshake (PROTOCOL.md 4, 5, 6.1, 6.3): generated by devs/gen/protocol-vectors.mjs; do not edit",
        tests: [await kkCase()],
    }
    const resume = {
        description: "Tether v2 resumption (PROTOCOL.md 6.1-6.4): generated by devs/gen/protocol-vectors.mjs; do not edit",
        tests: [
            await resumeCase("resume with fresh early data, newer generation: EARLY_ACCEPTED", Buffer.from("early hello"), 4, 3_599_750),
            await resumeCase("resume without early data", undefined, 4, 3_599_750),
            await resumeCase("resume with early data, generation already accepted: discarded", Buffer.from("early hello"), 5, 3_599_750),
            await resumeCase("resume with early data held back 10 s: not fresh, discarded", Buffer.from("early hello"), 4, 3_590_000),
        ],
    }
    writeVectorFile(dir, "tether-kk.json", JSON.stringify(kk, null, 2) + "\n", "1 case")
    writeVectorFile(dir, "tether-resume.json", JSON.stringify(resume, null, 2) + "\n", "4 cases")
}

runAsMain(import.meta.url, argv => generate(outDir(argv)))
