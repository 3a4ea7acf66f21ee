// Interoperability of an independent device implementation (./device.mjs, written from
// PROTOCOL.md alone) with the real gateway, driven only through its command line
// (tether-gateway init / pair / serve / expire-tickets), as an operator would.
// Section numbers (§) are PROTOCOL.md's.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { spawn, execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import http from "node:http"
import net from "node:net"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import * as D from "./device.mjs"

const root = join(fileURLToPath(import.meta.url), "..", "..", "..")
const bin = join(root, "node_modules", ".bin", "tether-gateway")
const H = s => Buffer.from(s, "hex")
const hex = b => Buffer.from(b).toString("hex")
const sleep = ms => new Promise(r => setTimeout(r, ms))
const vectors = name => JSON.parse(readFileSync(join(root, "test", "vectors", "generated", name), "utf8")).tests

// ---------------------------------------------------------------- the published vectors (check 6)

test("vectors: tether-aead.json (AESCCM, §3.1)", () => {
    for (const v of vectors("tether-aead.json")) {
        if (v.result === "valid") {
            assert.equal(hex(D.aesccmEncrypt(H(v.k), v.n, H(v.ad), H(v.plaintext))), v.ciphertext, v.comment)
            assert.equal(hex(D.aesccmDecrypt(H(v.k), v.n, H(v.ad), H(v.ciphertext))), v.plaintext, v.comment)
        } else assert.throws(() => D.aesccmDecrypt(H(v.k), v.n, H(v.ad), H(v.ciphertext)), undefined, v.comment)
    }
})

test("vectors: tether-kk.json (full handshake, records, TICKET, ticket minting)", () => {
    for (const v of vectors("tether-kk.json")) {
        assert.equal(v.protocol_name, "Noise_KKpsk2_25519_AESCCM_SHA256")
        assert.equal(hex(D.x25519Public(H(v.device_static_private))), v.device_static_public)
        assert.equal(hex(D.x25519Public(H(v.device_ephemeral_private))), v.device_ephemeral_public)
        assert.equal(hex(D.pseudonym0(H(v.psk))), v.pseudonym0)
        assert.equal(v.prologue, hex("tether/2") + "02" + v.pseudonym)
        const kk = new D.KkInitiator({
            s: H(v.device_static_private),
            rs: H(v.gateway_static_public),
            psk: H(v.psk),
            pseudonym: H(v.pseudonym),
            e: H(v.device_ephemeral_private),
        })
        assert.equal(hex(kk.es), v.es, "es = DH(e_device, s_gateway) (§4.3)")
        const m1 = kk.writeHsInit()
        assert.equal(m1.length, D.SIZES.HS_INIT)
        assert.equal(hex(m1), v.hs_init, "HS_INIT")
        assert.equal(H(v.hs_resp).length, D.SIZES.HS_RESP)
        const r = kk.readHsResp(H(v.hs_resp).subarray(3))
        assert.equal(hex(r.handshakeHash), v.handshake_hash)
        const t = new D.Transport(r.send, r.recv)
        assert.equal(hex(t.seal(D.INNER.DATA, H(v.data_i2r))), v.record_data_i2r, "device's first record")
        const tk = t.open(H(v.record_ticket).subarray(3))
        assert.equal(H(v.record_ticket).length, D.SIZES.TICKET_RECORD)
        assert.equal(tk.inner, D.INNER.TICKET)
        assert.equal(hex(tk.content), v.ticket + v.resumption_secret + v.next_pseudonym)
        const d = t.open(H(v.record_data_r2i).subarray(3))
        assert.equal(d.inner, D.INNER.DATA)
        assert.equal(hex(d.content), v.data_r2i)
        // §6.1 from the gateway's side: the ticket and the secret from the ticket key
        const mt = D.mintTicket({
            ticketKey: H(v.ticket_key),
            keyId: v.ticket_key_id,
            deviceId: H(v.device_id),
            generation: v.generation,
            issuedAt: v.issued_at,
            chainOrigin: v.chain_origin,
        })
        assert.equal(hex(mt.ticket), v.ticket)
        assert.equal(hex(mt.secret), v.resumption_secret)
        // a changed pseudonym (prologue) changes message 1 (§3.2)
        const other = new D.KkInitiator({
            ...kk,
            s: H(v.device_static_private),
            e: H(v.device_ephemeral_private),
            pseudonym: H(v.pseudonym0),
        })
        assert.notEqual(hex(other.writeHsInit().subarray(44)), v.hs_init.slice(88))
    }
})

test("vectors: tether-resume.json (resumption, ticket age, early data, records)", () => {
    const vs = vectors("tether-resume.json")
    assert.equal(vs.length, 4)
    for (const v of vs) {
        assert.equal(v.protocol_name, "Tether_Resume2_AESCCM_SHA256")
        const mt = D.mintTicket({
            ticketKey: H(v.ticket_key),
            keyId: v.ticket_key_id,
            deviceId: H(v.device_id),
            generation: v.generation,
            issuedAt: v.issued_at,
            chainOrigin: v.chain_origin,
        })
        assert.equal(hex(mt.ticket), v.ticket, v.name)
        assert.equal(hex(mt.secret), v.resumption_secret, v.name)
        assert.equal(D.ageAdd(H(v.resumption_secret)), v.age_add, v.name)
        assert.equal(hex(D.obfuscateAge(v.ticket_age, H(v.resumption_secret))), v.obfuscated_age, v.name)
        // the vectors' early_data is the DATA content; the §6.2 plaintext is DATA || content
        const early = v.early_data ? Buffer.concat([Buffer.from([D.INNER.DATA]), H(v.early_data)]) : Buffer.alloc(0)
        const ri = new D.ResumeInitiator({
            deviceId: H(v.device_id),
            ticket: H(v.ticket),
            secret: H(v.resumption_secret),
            ageMs: v.ticket_age,
            nonceI: H(v.nonce_i),
            earlyData: early,
        })
        const f = ri.writeResumeInit()
        assert.equal(hex(f), v.resume_init, v.name)
        assert.equal(f.length, D.SIZES.RESUME_INIT + early.length, v.name)
        assert.equal(H(v.resume_resp).length, D.SIZES.RESUME_RESP)
        const r = ri.readResumeResp(H(v.resume_resp).subarray(3))
        assert.equal(r.flags, v.flags, v.name)
        assert.equal(hex(r.handshakeHash), v.handshake_hash, v.name)
        const t = new D.Transport(r.send, r.recv)
        assert.equal(hex(t.seal(D.INNER.DATA, H(v.data_i2r))), v.record_data_i2r, v.name)
        const tk = t.open(H(v.record_ticket).subarray(3))
        assert.equal(tk.inner, D.INNER.TICKET)
        assert.equal(hex(tk.content), v.next_ticket + v.next_resumption_secret + v.next_pseudonym, v.name)
        assert.equal(hex(t.open(H(v.record_data_r2i).subarray(3)).content), v.data_r2i, v.name)
        const nt = D.mintTicket({
            ticketKey: H(v.ticket_key),
            keyId: v.ticket_key_id,
            deviceId: H(v.device_id),
            generation: v.next_generation,
            issuedAt: v.next_issued_at,
            chainOrigin: v.chain_origin,
        })
        assert.equal(hex(nt.ticket), v.next_ticket, v.name)
        assert.equal(hex(nt.secret), v.next_resumption_secret, v.name)
        // §6.2 freshness and §6.4 replay rule, as the vector's flags say
        const expected = v.now_ms - 1000 * v.issued_at
        const window = v.early_data_window_ms + Math.floor(expected / 10000)
        const fresh = expected - 1000 - window <= v.ticket_age && v.ticket_age <= expected + window
        const accepted = v.early && fresh && v.generation > v.accepted_generation
        assert.equal(r.flags, accepted ? 1 : 0, v.name)
        // a changed age makes RESUME_RESP fail (§6.2: the age is bound into the transcript)
        const bad = new D.ResumeInitiator({ ...ri, deviceId: H(v.device_id), ageMs: v.ticket_age + 1, earlyData: early })
        bad.writeResumeInit()
        assert.throws(() => bad.readResumeResp(H(v.resume_resp).subarray(3)))
    }
})

test("vectors: tether-pairing.json (settings §6.8, pseudonym0 §4.4, TICKET content §6.3)", () => {
    for (const v of vectors("tether-pairing.json")) {
        const s = D.parseEnv(v.env_text)
        assert.equal(hex(s.deviceId), v.expect_device_id)
        assert.equal(hex(s.sk), v.expect_private_key)
        assert.equal(hex(s.gwPk), v.expect_gateway_public)
        assert.equal(hex(s.psk), v.expect_psk)
        assert.equal(s.host, v.expect_host)
        assert.equal(s.port, v.expect_port)
        assert.equal(hex(s.ticket), v.expect_ticket)
        assert.equal(hex(s.secret), v.expect_secret)
        assert.equal(hex(D.pseudonym0(s.psk)), v.expect_pseudonym0)
        const dev = new D.Device(s)
        const slot = dev.storeTicket(H(v.ticket_content), true)
        assert.equal(hex(slot.ticket), v.expect_ticket)
        assert.equal(hex(slot.pseudonym), v.expect_next_pseudonym)
        const raw = dev.flash.get("tt_slot_a")
        assert.equal(raw.length, D.SIZES.SLOT)
        assert.deepEqual(D.decodeSlot(raw), { seq: 1, ticket: slot.ticket, secret: slot.secret, pseudonym: slot.pseudonym, resumed: 0 })
        raw[10] ^= 1
        assert.equal(D.decodeSlot(raw), null, "a torn slot is not valid (§6.6)")
    }
})

// ---------------------------------------------------------------- the real gateway

let dir, port, serveProc, upstream, upstreamPort, settings, device, envFile
const serveLog = []
const upstreamSeen = []
const allWire = [] // every frame of every connection: { dir, type, length, raw, conn, what }

function cli(...args) {
    return new Promise((resolve, reject) => {
        execFile(process.execPath, [bin, ...args], { cwd: dir, timeout: 10000 }, (err, stdout, stderr) => {
            if (err) reject(new Error(`tether-gateway ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`))
            else resolve(stdout)
        })
    })
}

async function freePort() {
    for (;;) {
        const p = await new Promise((resolve, reject) => {
            const s = net.createServer()
            s.once("error", reject)
            s.listen(0, "127.0.0.1", () => {
                const { port } = s.address()
                s.close(() => resolve(port))
            })
        })
        if (p !== 8082) return p
    }
}

function keep(conn, what) {
    for (const w of conn.wire) allWire.push({ ...w, what })
}

// wait for a JSON log line of serve matching pred
async function logLine(pred, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
        const l = serveLog.find(pred)
        if (l) return l
        if (Date.now() > deadline)
            throw new Error(
                "no such log line; last lines:\n" +
                    serveLog
                        .slice(-8)
                        .map(l => JSON.stringify(l))
                        .join("\n")
            )
        await sleep(20)
    }
}

before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tether-interop-"))
    upstream = http.createServer((req, res) => {
        const chunks = []
        req.on("data", c => chunks.push(c))
        req.on("end", () => {
            const body = Buffer.concat(chunks)
            upstreamSeen.push({ method: req.method, url: req.url, headers: req.headers, body })
            res.writeHead(201, { "content-type": "application/octet-stream" })
            res.end(Buffer.concat([Buffer.from("pong:"), body]))
        })
    })
    await new Promise(r => upstream.listen(0, "127.0.0.1", r))
    upstreamPort = upstream.address().port
    port = await freePort()
    await cli("init", "--state", join(dir, "state"))
    envFile = join(dir, "dev1.env")
    await cli("pair", "dev1", "--state", join(dir, "state"), "--out", envFile, "--host", "127.0.0.1", "--port", String(port))
    await cli("pair", "dev2", "--state", join(dir, "state"), "--out", join(dir, "dev2.env"), "--host", "127.0.0.1", "--port", String(port))
    const config = {
        routes: {
            echo: { url: `http://127.0.0.1:${upstreamPort}/echo`, method: "POST", timeoutMs: 3000, maxResponseBytes: 993, devices: ["*"] },
            nobody: { url: `http://127.0.0.1:${upstreamPort}/nobody`, devices: ["someone-else"] },
        },
    }
    writeFileSync(join(dir, "config.json"), JSON.stringify(config))
    serveProc = spawn(
        process.execPath,
        [bin, "serve", "--state", join(dir, "state"), "--port", String(port), "--config", join(dir, "config.json")],
        {
            cwd: dir,
            stdio: ["ignore", "pipe", "pipe"],
        }
    )
    let pending = ""
    serveProc.stdout.on("data", d => {
        pending += d
        let i
        while ((i = pending.indexOf("\n")) >= 0) {
            const line = pending.slice(0, i)
            pending = pending.slice(i + 1)
            try {
                serveLog.push(JSON.parse(line))
            } catch {
                serveLog.push({ unparsed: line })
            }
        }
    })
    serveProc.stderr.on("data", d => serveLog.push({ stderr: String(d) }))
    // should this process end without running after(), serve must not outlive it
    process.once("exit", () => serveProc.exitCode === null && serveProc.kill("SIGKILL"))
    const l = await logLine(l => l.event === "serve", 8000)
    assert.equal(l.port, port)
    settings = D.parseEnv(readFileSync(envFile, "utf8"))
    assert.equal(settings.port, port)
    assert.equal(settings.host, "127.0.0.1")
    device = new D.Device(settings)
})

after(async () => {
    if (serveProc && serveProc.exitCode === null) {
        const exited = new Promise(r => serveProc.once("exit", r))
        serveProc.kill("SIGTERM")
        await Promise.race([exited, sleep(4000)])
        if (serveProc.exitCode === null && serveProc.signalCode === null) serveProc.kill("SIGKILL")
    }
    if (upstream) await new Promise(r => upstream.close(r))
    if (dir) rmSync(dir, { recursive: true, force: true })
})

// the frames of one connection, as "dir:type:length" strings
const shape = conn => conn.wire.map(w => `${w.dir}:${w.type.toString(16)}:${w.length}`)
const isStream = e => e.kind === "app" && e.msg.kind === D.APP.STREAM
async function endSession(s, what, { newStreams = 0 } = {}) {
    s.close(D.CODE.NORMAL)
    await s.conn.waitClosed(2000)
    keep(s.conn, what)
    assert.equal(s.error, null, "session error: " + s.error)
    assert.equal(s.events.filter(e => e.kind === "new_stream").length, newStreams, "new streams of the device")
}
function assertGatewayStream(s) {
    const st = s.events.find(isStream)
    assert.ok(st, "the gateway sent its STREAM")
    assert.equal(st.msg.id, 0)
    assert.notEqual(st.msg.streamId, 0, "stream_id is non-zero (§12.1)")
    assert.equal(st.msg.peerStreamId, device.tx.streamId, "the gateway's STREAM names the device's stream as the one it receives")
    return st.msg
}

let ticketAfterConn1, storeAfterConn1, receivedAtConn1, resumeInitConn2
test("1. first connection: out-of-band ticket, age unknown, no early data; first record; TICKET (§6.7, §6.2, §6.3)", async () => {
    assert.equal(device.store, null)
    const s = await device.connect()
    assert.equal(s.trace.oob, true)
    assert.equal(s.trace.resumed, true)
    assert.equal(s.trace.sentEarly, null, "no early data with the out-of-band ticket")
    assert.equal(s.trace.earlyAccepted, false)
    // RESUME_INIT carries the out-of-band ticket as written by pair
    const out0 = s.conn.wire[0]
    assert.equal(out0.type, D.FRAME.RESUME_INIT)
    assert.equal(out0.length, D.SIZES.RESUME_INIT)
    assert.equal(hex(out0.raw.subarray(4, 37)), hex(settings.ticket))
    const ev = await s.waitFor(e => e.kind === "ticket")
    assert.equal(ev.frameLength, D.SIZES.TICKET_RECORD)
    await s.waitFor(isStream)
    const gst = assertGatewayStream(s)
    assert.equal(gst.delivered, 0)
    // order on the wire: RESUME_INIT, RESUME_RESP, the device's first record, then the TICKET
    const sh = shape(s.conn)
    assert.deepEqual(sh.slice(0, 3), ["out:3:65", "in:4:32", `out:10:${3 + 1 + 19 + 16}`])
    assert.ok(sh.indexOf("in:10:93") > 2, "TICKET after the device's first record: " + sh)
    // the store (§6.6): ticket, secret, next pseudonym and the arrival time
    assert.ok(device.store)
    assert.equal(device.store.ticket.length, 33)
    assert.notEqual(hex(device.store.ticket), hex(settings.ticket))
    assert.notEqual(hex(device.store.pseudonym), hex(D.pseudonym0(settings.psk)), "a fresh next_pseudonym")
    assert.equal(device.store.resumed, 1)
    assert.equal(device.ticketReceivedAt, ev.receivedAt, "the arrival time is kept (RAM)")
    assert.deepEqual(D.decodeSlot(device.flash.get(device.slotName)), device.store)
    ticketAfterConn1 = device.store.ticket
    storeAfterConn1 = { ...device.store }
    receivedAtConn1 = device.ticketReceivedAt
    await endSession(s, "conn1")
})

test("2. second connection: stored ticket, fresh early data (STREAM + PUBLISH): EARLY_ACCEPTED, TICKET at once (§6.2, §6.3, §6.4)", async () => {
    const id = device.publish("interop/hello", Buffer.from("hi from the interop device"))
    assert.equal(id, 1)
    const beforeTicket = hex(device.store.ticket)
    const s = await device.connect()
    resumeInitConn2 = { raw: s.conn.wire[0].raw, ri: s.trace.resumeInit }
    assert.equal(s.trace.oob, false)
    assert.ok(s.trace.sentEarly, "early data sent")
    assert.equal(s.trace.earlyAccepted, true, "EARLY_ACCEPTED")
    assert.equal(hex(s.conn.wire[0].raw.subarray(4, 37)), beforeTicket)
    assert.equal(s.conn.wire[0].length, D.SIZES.RESUME_INIT + s.trace.sentEarly.length)
    const ev = await s.waitFor(e => e.kind === "ticket")
    assert.equal(ev.frameLength, D.SIZES.TICKET_RECORD)
    // "it follows RESUME_RESP at once": the device sent nothing after RESUME_INIT, and the TICKET
    // is the first record from the gateway
    const sh = shape(s.conn)
    assert.deepEqual(sh.slice(0, 3), [`out:3:${65 + s.trace.sentEarly.length}`, "in:4:32", "in:10:93"], sh.join(" "))
    const ack = await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === 1)
    assert.ok(ack)
    assert.equal(device.tx.unacked.length, 0, "PUBLISH acknowledged")
    await s.waitFor(isStream)
    assertGatewayStream(s)
    const pub = await logLine(l => JSON.stringify(l).includes("interop/hello"))
    assert.ok(pub, "the gateway's log shows the PUBLISH")
    assert.equal(device.store.resumed, 2)
    assert.notEqual(hex(device.store.ticket), beforeTicket)
    await endSession(s, "conn2")
})

test("2b. a replayed RESUME_INIT: answered, early data not delivered again, no TICKET (§6.4, §9.3)", async () => {
    const conn = await D.FrameConn.connect("127.0.0.1", port)
    conn.send(resumeInitConn2.raw)
    const f = await conn.next(3000)
    assert.ok(f, "answered")
    assert.equal(f.type, D.FRAME.RESUME_RESP)
    assert.equal(f.raw.length, D.SIZES.RESUME_RESP)
    const r = resumeInitConn2.ri.readResumeResp(f.body)
    assert.equal(r.flags, 0, "EARLY_ACCEPTED clear on a replay")
    // the replayer sends no record: no TICKET may come
    const g = await conn.next(700).catch(() => "none")
    assert.equal(g, "none", "nothing after RESUME_RESP for a session that is never confirmed")
    conn.destroy()
    keep(conn, "replay")
    assert.equal(serveLog.filter(l => JSON.stringify(l).includes("interop/hello")).length, 1, "the PUBLISH was delivered once")
})

test("2c. an older ticket of the chain: resumes, early data discarded and resent as the first record; TICKET after it (§6.2, §6.3, §6.4)", async () => {
    // a device that lost its newest TICKET (torn before it was stored) still holds the previous one
    device.store = { ...storeAfterConn1 }
    device.ticketReceivedAt = receivedAtConn1
    const id = device.publish("interop/again", Buffer.from("second"))
    const s = await device.connect({ deferFirst: true })
    assert.ok(s.trace.sentEarly)
    assert.equal(s.trace.earlyAccepted, false, "generation already accepted: discarded")
    assert.equal(hex(s.conn.wire[0].raw.subarray(4, 37)), hex(ticketAfterConn1))
    assert.equal(s.pendingFirst.toString("hex"), s.trace.sentEarly.subarray(1).toString("hex"), "the same data is sent again")
    // no TICKET before the first record
    await sleep(400)
    assert.equal(s.events.filter(e => e.kind === "ticket").length, 0, "no TICKET before the device's first record")
    s.sendFirst()
    await s.waitFor(e => e.kind === "ticket")
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === id)
    await logLine(l => JSON.stringify(l).includes("interop/again"))
    assert.equal(device.store.resumed, storeAfterConn1.resumed + 1)
    await endSession(s, "conn2c")
})

test("2d. early data with a wrong age is not fresh: resumes with EARLY_ACCEPTED clear; an unconfirmed session moves nothing (§6.2, §6.3)", async () => {
    const st = device.store
    const age = device.ticketAge()
    for (const skew of [+6000, -6000]) {
        const ri = new D.ResumeInitiator({
            deviceId: settings.deviceId,
            ticket: st.ticket,
            secret: st.secret,
            ageMs: age + skew,
            earlyData: Buffer.concat([
                Buffer.from([D.INNER.DATA]),
                D.streamMsg(device.tx.streamId, device.rx.streamId, device.rx.delivered),
            ]),
        })
        const c = await D.FrameConn.connect("127.0.0.1", port)
        c.send(ri.writeResumeInit())
        const f = await c.next(3000)
        assert.ok(f)
        assert.equal(f.type, D.FRAME.RESUME_RESP, `age skewed by ${skew} ms still resumes`)
        assert.equal(ri.readResumeResp(f.body).flags, 0, `age skewed by ${skew} ms: early data not fresh`)
        c.destroy()
        keep(c, "stale-age")
    }
    // the same ticket with its true age: nothing was consumed by the two attempts above
    const s = await device.connect()
    assert.equal(hex(s.conn.wire[0].raw.subarray(4, 37)), hex(st.ticket))
    assert.equal(s.trace.earlyAccepted, true)
    await s.waitFor(e => e.kind === "ticket")
    await endSession(s, "conn2d")
})

test("2e. size limits: the largest early data (961 bytes, length 1024) and the largest record (content 1006) are taken; 1025 is not (§2.1, §5, §6.2)", async () => {
    const topic = "interop/big"
    // STREAM 19 + PUBLISH header 7 + topic_len 1 + topic + payload = 960 = the largest DATA content
    const pid = device.publish(topic, Buffer.alloc(960 - 19 - 7 - 1 - topic.length, 0x61))
    const s = await device.connect()
    assert.equal(s.trace.sentEarly.length, D.MAX_EARLY_DATA)
    assert.equal(s.conn.wire[0].length, 2 + 1024)
    assert.equal(s.trace.earlyAccepted, true)
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === pid)
    // a record of 1006 content bytes (frame length 1024) under 1-RTT keys
    const pid2 = device.publish(topic, Buffer.alloc(1006 - 7 - 1 - topic.length, 0x62))
    s.flush()
    assert.equal(s.conn.wire.at(-1).length, 2 + 1024)
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === pid2)
    await endSession(s, "conn2e")
    // one byte more of early data: length 1025, the gateway closes without a word
    const ri = new D.ResumeInitiator({
        deviceId: settings.deviceId,
        ticket: device.store.ticket,
        secret: device.store.secret,
        ageMs: device.ticketAge(),
        earlyData: Buffer.concat([Buffer.from([D.INNER.DATA]), Buffer.alloc(961)]),
        unchecked: true,
    })
    const c = await D.FrameConn.connect("127.0.0.1", port)
    const big = ri.writeResumeInit()
    assert.equal(big.readUInt16BE(0), 1025)
    c.send(big)
    assert.equal(await c.next(3000), null, "closed, nothing sent")
    c.destroy()
})

test("3a. full handshake after expire-tickets: TICKET_REJECTED, HS_INIT with the stored pseudonym on the same connection (§4, §6.2, §6.9)", async () => {
    await cli("expire-tickets", "dev1", "--state", join(dir, "state"))
    const stored = device.store.pseudonym
    const s = await device.connect({ deferFirst: true })
    assert.equal(s.trace.rejectCode, D.CODE.TICKET_REJECTED)
    assert.equal(s.trace.fellBack, true)
    assert.equal(hex(s.trace.pseudonym), hex(stored), "HS_INIT names the stored pseudonym")
    const sh = shape(s.conn)
    assert.deepEqual(sh, [`out:3:${65 + (s.trace.sentEarly?.length ?? 0)}`, "in:7f:4", "out:1:60", "in:2:51"], sh.join(" "))
    assert.equal(s.conn.wire[1].raw[3], D.CODE.TICKET_REJECTED)
    assert.equal(hex(s.conn.wire[2].raw.subarray(4, 12)), hex(stored))
    await sleep(400)
    assert.equal(s.events.length, 0, "the gateway sends nothing before the device's first record")
    s.sendFirst()
    const ev = await s.waitFor(e => e.kind === "ticket")
    assert.equal(ev.frameLength, D.SIZES.TICKET_RECORD)
    await s.waitFor(isStream)
    assertGatewayStream(s)
    assert.equal(device.store.resumed, 0, "a slot written after a full handshake has resumed = 0")
    assert.notEqual(hex(device.store.pseudonym), hex(stored), "pseudonym rotated")
    await endSession(s, "conn3a")
    // the device's rejection counter is not reset by a full handshake (§6.9)
    assert.equal(device.rejections, 1)
    // the new chain resumes
    const s2 = await device.connect()
    assert.equal(s2.trace.resumed, true)
    assert.equal(s2.trace.earlyAccepted, true)
    await s2.waitFor(e => e.kind === "ticket")
    assert.equal(device.rejections, 0, "a successful resumption resets it")
    await endSession(s2, "conn3a-resume")
})

test("3b. full handshake with pseudonym0 on a wiped device (no stored pseudonym) (§4.4)", async () => {
    const wiped = new D.Device(settings) // empty flash
    assert.equal(hex(wiped.currentPseudonym()), hex(D.pseudonym0(settings.psk)))
    const s = await wiped.connect({ mode: "full" })
    const sh = shape(s.conn)
    assert.deepEqual(sh.slice(0, 3), ["out:1:60", "in:2:51", `out:10:${3 + 1 + 19 + 16}`], sh.join(" "))
    assert.equal(hex(s.conn.wire[0].raw.subarray(4, 12)), hex(D.pseudonym0(settings.psk)))
    const ev = await s.waitFor(e => e.kind === "ticket")
    assert.equal(ev.frameLength, D.SIZES.TICKET_RECORD)
    await s.waitFor(isStream)
    const st = s.events.find(isStream).msg
    assert.equal(st.peerStreamId, wiped.tx.streamId)
    assert.equal(wiped.store.resumed, 0)
    const oldStore = device.store
    device = wiped // the wiped device is the device from now on
    await endSession(s, "conn3b")
    // the ticket the device held before the wipe is of the older chain now (§6.4): refused
    const c = await D.FrameConn.connect("127.0.0.1", port)
    c.send(new D.ResumeInitiator({ deviceId: settings.deviceId, ticket: oldStore.ticket, secret: oldStore.secret }).writeResumeInit())
    const f = await c.next(3000)
    assert.ok(f)
    assert.equal(f.type, D.FRAME.REJECT)
    assert.equal(f.body[0], D.CODE.TICKET_REJECTED, "a ticket of the older chain")
    c.destroy()
})

test("3c. unknown pseudonym: REJECT(UNKNOWN_DEVICE); the device uses pseudonym0 next (§4.1, §4.4)", async () => {
    const fake = { ...device.store, pseudonym: randomBytes(8) }
    device.store = fake
    await assert.rejects(device.connect({ mode: "full" }), e => e.code === D.CODE.UNKNOWN_DEVICE)
    assert.equal(device.useFallbackPseudonym, true)
    const s = await device.connect({ mode: "full" })
    assert.equal(hex(s.trace.pseudonym), hex(D.pseudonym0(settings.psk)))
    await s.waitFor(e => e.kind === "ticket")
    await endSession(s, "conn3c")
})

test("4. REQUEST through a route: as early data (Early-Data: 1) and under 1-RTT keys (§12.2, §9.3)", async () => {
    upstreamSeen.length = 0
    const payload = Buffer.from([0, 1, 2, 0xff, 0x80])
    const rid = device.request("echo", payload)
    const s = await device.connect()
    assert.equal(s.trace.earlyAccepted, true)
    const resp = await s.waitFor(e => e.kind === "deliver" && e.msg.kind === D.APP.RESPONSE && e.msg.requestId === rid, 5000)
    assert.equal(resp.msg.status, 201)
    assert.equal(hex(resp.msg.payload), hex(Buffer.concat([Buffer.from("pong:"), payload])))
    assert.equal(upstreamSeen.length, 1)
    const up = upstreamSeen[0]
    assert.equal(up.method, "POST")
    assert.equal(up.url, "/echo")
    assert.equal(hex(up.body), hex(payload))
    assert.equal(up.headers["x-tether-device"], "dev1")
    assert.equal(up.headers["content-type"], "application/octet-stream")
    assert.equal(up.headers["early-data"], "1", "a REQUEST from early data carries Early-Data: 1")
    // a second REQUEST, under the 1-RTT keys of the same session
    const rid2 = device.request("echo", Buffer.from("late"))
    s.flush()
    const resp2 = await s.waitFor(e => e.kind === "deliver" && e.msg.kind === D.APP.RESPONSE && e.msg.requestId === rid2, 5000)
    assert.equal(resp2.msg.status, 201)
    assert.equal(resp2.msg.payload.toString(), "pong:late")
    assert.equal(upstreamSeen.length, 2)
    assert.equal(upstreamSeen[1].headers["early-data"], undefined, "no Early-Data header under 1-RTT keys")
    assert.equal(upstreamSeen[1].headers["x-tether-device"], "dev1")
    // responses acknowledged; our requests acknowledged by the gateway
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === rid2)
    // KEY_UPDATE from the device (a sender MAY update earlier, §5.1): the gateway follows
    s.sendKeyUpdate()
    const pid = device.publish("interop/after-key-update", Buffer.from("k"))
    s.flush()
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === pid)
    await endSession(s, "conn4")
})

test("4b. REQUEST on a route the device may not use, as early data: RESPONSE status 0 ROUTE_REFUSED, after the gateway's STREAM (§12.1, §12.2)", async () => {
    const calls = upstreamSeen.length
    const refused = device.request("nobody", Buffer.from("x"))
    const s = await device.connect()
    assert.equal(s.trace.earlyAccepted, true)
    const apps = () => s.events.filter(e => e.kind === "app").map(e => e.msg)
    await s.waitFor(e => e.kind === "deliver" && e.msg.kind === D.APP.RESPONSE && e.msg.requestId === refused, 3000)
    assert.equal(apps()[0].kind, D.APP.STREAM, "the gateway's first application message is its STREAM")
    const ref = s.events.find(e => e.kind === "deliver" && e.msg.requestId === refused).msg
    assert.equal(ref.status, 0)
    assert.equal(hex(ref.payload), "01", "ROUTE_REFUSED")
    assert.equal(upstreamSeen.length, calls, "the refused route made no call")
    await endSession(s, "conn4b")
})

test("4c. a gap in the device's stream: the gateway drops it, asks for a new stream (peer_stream_id 0); renumbered, delivered once (§12.1)", async () => {
    const s = await device.connect()
    await s.waitFor(isStream)
    const n0 = s.events.length
    const oldStream = device.tx.streamId
    const id = device.publish("interop/gap", Buffer.from("after a gap"))
    device.tx.unacked.at(-1).id = id + 1 // an id one further ahead than the gateway expects
    device.tx.nextId = id + 2
    s.flush()
    const ask = await s.waitFor(e => isStream(e) && e.msg.peerStreamId === 0, 3000, n0)
    assert.equal(ask.msg.delivered, 0)
    const ns = await s.waitFor(e => e.kind === "new_stream", 3000, n0)
    assert.notEqual(ns.streamId, oldStream)
    assert.equal(device.tx.unacked[0].id, 1, "renumbered from 1")
    await s.waitFor(e => isStream(e) && e.msg.peerStreamId === ns.streamId, 3000, n0)
    await s.waitFor(e => e.kind === "app" && e.msg.kind === D.APP.ACK && e.msg.id === 1, 3000, n0)
    assert.equal(device.tx.unacked.length, 0)
    await sleep(100)
    assert.equal(serveLog.filter(l => JSON.stringify(l).includes("interop/gap")).length, 1, "delivered once")
    await endSession(s, "conn4c", { newStreams: 1 })
})

test("5. sizes on the wire as §4.1, §4.2, §6.2 and §6.3 state them", () => {
    const by = t => allWire.filter(w => w.type === t)
    assert.ok(by(D.FRAME.HS_INIT).length >= 3)
    for (const w of by(D.FRAME.HS_INIT)) assert.equal(w.length, 60, "HS_INIT " + w.what)
    for (const w of by(D.FRAME.HS_RESP)) assert.equal(w.length, 51, "HS_RESP " + w.what)
    for (const w of by(D.FRAME.RESUME_RESP)) assert.equal(w.length, 32, "RESUME_RESP " + w.what)
    const noEarly = by(D.FRAME.RESUME_INIT).filter(w => w.what === "conn1")
    assert.equal(noEarly.length, 1)
    assert.equal(noEarly[0].length, 65, "RESUME_INIT without early data")
    const tickets = allWire.filter(w => w.dir === "in" && w.type === D.FRAME.RECORD && w.length === 93)
    assert.ok(tickets.length >= 6, "TICKET records of 93 bytes: " + tickets.length)
    assert.equal(by(D.FRAME.HS_INIT)[0].length + by(D.FRAME.HS_RESP)[0].length, 111)
    assert.equal(noEarly[0].length + by(D.FRAME.RESUME_RESP)[0].length, 97)
})

test("6. rejects before a session exists (§2.1, §2.2, §4.1, §7, §8)", async () => {
    const oneShot = async (bytes, expectCode) => {
        const c = await D.FrameConn.connect("127.0.0.1", port)
        c.send(bytes)
        const f = await c.next(3000)
        if (expectCode === null) {
            assert.equal(f, null, "closed without a word")
        } else {
            assert.ok(f, "answered")
            assert.equal(f.type, D.FRAME.REJECT)
            assert.equal(f.raw.length, 4)
            assert.equal(f.body[0], expectCode)
            if (expectCode === D.CODE.TICKET_REJECTED) {
                await sleep(50)
                assert.equal(c.closed, false, "left open for HS_INIT after TICKET_REJECTED (§7)")
            } else assert.ok(await c.waitClosed(3000), "closed after REJECT")
        }
        c.destroy()
    }
    const kk = () => new D.KkInitiator({ s: settings.sk, rs: settings.gwPk, psk: settings.psk, pseudonym: D.pseudonym0(settings.psk) })
    const hsInit = kk().writeHsInit()
    const v1 = Buffer.from(hsInit)
    v1[3] = 1
    await oneShot(v1, D.CODE.UNSUPPORTED_VERSION)
    await oneShot(D.frame(D.FRAME.HS_INIT, hsInit.subarray(3, 50)), D.CODE.PROTOCOL_ERROR) // short body
    await oneShot(D.frame(D.FRAME.HS_INIT, Buffer.concat([hsInit.subarray(3), Buffer.from([0])])), D.CODE.HANDSHAKE_FAILED) // payload
    const tampered = Buffer.from(hsInit)
    tampered[hsInit.length - 1] ^= 1
    await oneShot(tampered, D.CODE.HANDSHAKE_FAILED)
    await oneShot(D.frame(D.FRAME.RECORD, Buffer.alloc(17)), D.CODE.PROTOCOL_ERROR) // wrong type for AwaitFirst
    // a changed obfuscated_age makes the resumption fail (§6.2: bound into the transcript)
    const ageTampered = new D.ResumeInitiator({
        deviceId: settings.deviceId,
        ticket: device.store.ticket,
        secret: device.store.secret,
        ageMs: device.ticketAge(),
    }).writeResumeInit()
    ageTampered[3 + 1 + 33] ^= 0x80
    await oneShot(ageTampered, D.CODE.TICKET_REJECTED)
    // early data whose inner type is not DATA (§6.2 step 3)
    const notData = new D.ResumeInitiator({
        deviceId: settings.deviceId,
        ticket: device.store.ticket,
        secret: device.store.secret,
        ageMs: device.ticketAge(),
        earlyData: Buffer.from([D.INNER.CLOSE, D.CODE.NORMAL]),
        unchecked: true,
    })
    await oneShot(notData.writeResumeInit(), D.CODE.TICKET_REJECTED)
    // RESUME_INIT of version 1, and one with a short body
    const ri1 = new D.ResumeInitiator({
        deviceId: settings.deviceId,
        ticket: device.store.ticket,
        secret: device.store.secret,
    }).writeResumeInit()
    const v1r = Buffer.from(ri1)
    v1r[3] = 1
    await oneShot(v1r, D.CODE.UNSUPPORTED_VERSION)
    await oneShot(D.frame(D.FRAME.RESUME_INIT, ri1.subarray(3, 3 + 61)), D.CODE.PROTOCOL_ERROR)
    await oneShot(Buffer.from([0, 0, 1]), null) // length 0
    await oneShot(Buffer.from([0x04, 0x01, 1]), null) // length 1025
    // after TICKET_REJECTED only HS_INIT is accepted (one resumption attempt per connection)
    const ri = new D.ResumeInitiator({ deviceId: settings.deviceId, ticket: settings.ticket, secret: settings.secret })
    const c = await D.FrameConn.connect("127.0.0.1", port)
    c.send(ri.writeResumeInit())
    const f1 = await c.next(3000)
    assert.equal(f1.type, D.FRAME.REJECT)
    assert.equal(f1.body[0], D.CODE.TICKET_REJECTED, "the out-of-band ticket belongs to an older chain now")
    assert.equal(c.closed, false, "left open for HS_INIT")
    c.send(new D.ResumeInitiator({ deviceId: settings.deviceId, ticket: settings.ticket, secret: settings.secret }).writeResumeInit())
    const f2 = await c.next(3000)
    assert.ok(f2)
    assert.equal(f2.type, D.FRAME.REJECT)
    assert.equal(f2.body[0], D.CODE.PROTOCOL_ERROR)
    c.destroy()
})

test("7. one live session per device: a second connection takes over at its first record; the first gets CLOSE(SUPERSEDED) (§8)", async () => {
    const a = await device.connect()
    await a.waitFor(e => e.kind === "ticket")
    await a.waitFor(isStream)
    // a second connection while the first is still open (the device lost it without a FIN)
    const b = await device.connect({ early: false, deferFirst: true })
    assert.equal(b.trace.resumed, true)
    await sleep(400)
    assert.equal(a.events.filter(e => e.kind === "close").length, 0, "not replaced before the new session is confirmed")
    b.sendFirst()
    const cl = await a.waitFor(e => e.kind === "close", 3000)
    assert.equal(cl.code, D.CODE.SUPERSEDED)
    assert.equal(cl.contentLength, 1)
    await b.waitFor(e => e.kind === "ticket")
    await b.waitFor(isStream)
    await endSession(b, "conn7")
    keep(a.conn, "conn7-superseded")
})

test("8. revoke while connected: CLOSE(REVOKED); then TICKET_REJECTED and UNKNOWN_DEVICE (§6.2, §4.1, §7)", async () => {
    const s2 = D.parseEnv(readFileSync(join(dir, "dev2.env"), "utf8"))
    const dev2 = new D.Device(s2)
    const s = await dev2.connect()
    await s.waitFor(e => e.kind === "ticket")
    await cli("revoke", "dev2", "--state", join(dir, "state"))
    const cl = await s.waitFor(e => e.kind === "close", 5000)
    assert.equal(cl.code, D.CODE.REVOKED)
    keep(s.conn, "conn8")
    await assert.rejects(dev2.connect(), e => {
        assert.equal(e.trace.rejectCode, D.CODE.TICKET_REJECTED)
        assert.equal(e.trace.fellBack, true)
        assert.equal(e.code, D.CODE.UNKNOWN_DEVICE)
        return true
    })
})

test("9. shutdown: serve sends CLOSE(SHUTDOWN) to a live session and exits 0 (§7, §9.4)", async () => {
    const s = await device.connect()
    await s.waitFor(e => e.kind === "ticket")
    await s.waitFor(isStream)
    const exited = new Promise(r => serveProc.once("exit", (code, signal) => r({ code, signal })))
    serveProc.kill("SIGTERM")
    const cl = await s.waitFor(e => e.kind === "close", 5000)
    assert.equal(cl.code, D.CODE.SHUTDOWN)
    s.conn.destroy()
    assert.deepEqual(await exited, { code: 0, signal: null })
})
