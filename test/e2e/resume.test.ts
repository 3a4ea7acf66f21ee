// End to end, resumption (PROTOCOL.md 6): the device (test/e2e/device/tether-resume.ts, one
// simulator run) against the real gateway (startGateway, a real state directory, a SQLite
// registry, devices paired with pairDevice) through a recording proxy:
//
// - full handshake, drop, resumption with 0-RTT data delivered once and zero X25519 on the
//   device, data both ways; the resume exchange is at most 100 bytes on the wire;
// - the first connection from the out-of-band ticket that pairing minted;
// - an expired ticket, a tampered ticket and a ticket from another gateway (another state
//   directory's ticket keys): TICKET_REJECTED, then the full handshake on the same connection;
// - a revoked device: TICKET_REJECTED, then UNKNOWN_DEVICE;
// - the connection torn after the gateway sent the TICKET (the proxy swallows it and cuts):
//   the older ticket resumes and the early data is delivered once; the same after a power cut
//   during the ticket write (MemoryStorage tears it on the device);
// - the captured RESUME_INIT of the out-of-band connection replayed from Node: its early data
//   is never delivered again, and the replayer gets no usable session.
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { initState, mintTicket, type Paired, randomBytes } from "tether-gateway"
import { readResumeResp, writeResumeInit } from "tether-gateway/peer"
import { EARLY_ACCEPTED, FrameType, RESUME_INIT_NONCE_OFFSET, RESUME_INIT_PAYLOAD_OFFSET, TICKET_LIFETIME } from "tether-gateway/wire"
import { devicePassed, FrameConn, runDevice, type DeviceRun } from "./harness.js"
import { benchLines, FrameProxy, nowSeconds, startRealGateway, type ProxyFrame, type RealGateway } from "./tether-fixture.js"

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

const hexOf = (b: Buffer) => b.toString("hex")
/** The device id inside a RESUME_INIT frame's ticket (header 3, version 1, key_id 1). */
const resumeDeviceId = (f: ProxyFrame) => hexOf(f.raw.subarray(5, 13))

describe("tether: resumption end to end (real gateway)", () => {
    let g: RealGateway
    let proxy: FrameProxy
    let run: DeviceRun
    let dev: Paired
    let oob: Paired
    let rev: Paired
    let torn: Paired
    let otherDir: string
    before(async () => {
        g = await startRealGateway({ sqlite: true })
        proxy = await FrameProxy.start(g.port)
        dev = await g.pair("dev")
        oob = await g.pair("oob")
        rev = await g.pair("revoked")
        torn = await g.pair("torn")
        await g.registry.revoke("revoked")
        const now = nowSeconds()
        const expired = mintTicket({ deviceId: dev.deviceId, generation: 1, expiresAt: now - 60, keySet: g.state.ticketKeys })
        // another gateway: its own state directory, so its own ticket keys
        otherDir = mkdtempSync(join(tmpdir(), "tether-e2e-other-"))
        const other = initState(join(otherDir, "state"))
        const foreign = mintTicket({ deviceId: dev.deviceId, generation: 50, expiresAt: now + TICKET_LIFETIME, keySet: other.ticketKeys })

        // tear the first connection that resumes with the "torn" device's ticket: the gateway's
        // TICKET record is swallowed and the connection cut (sent, never stored)
        const tornConn = new Set<number>()
        let tornDone = false
        proxy.hook = f => {
            if (f.dir === "up" && f.type === FrameType.RESUME_INIT && !tornDone && resumeDeviceId(f) === hexOf(torn.deviceId)) {
                tornDone = true
                tornConn.add(f.conn)
            }
            if (f.dir === "down" && f.type === FrameType.RECORD && tornConn.has(f.conn)) {
                tornConn.delete(f.conn)
                return { action: "drop", cut: true }
            }
            return undefined
        }
        const keys = (p: Paired, prefix: string) => ({
            [`${prefix}_ID`]: hexOf(p.deviceId),
            [`${prefix}_PRIV`]: hexOf(p.s.privateKey),
            [`${prefix}_PUB`]: hexOf(p.s.publicKey),
            [`${prefix}_PSK`]: hexOf(p.psk),
            [`${prefix}_TICKET`]: hexOf(p.ticket.ticket),
            [`${prefix}_SECRET`]: hexOf(p.ticket.secret),
        })
        run = await runDevice(
            "test/e2e/device/tether-resume.ts",
            {
                PORT: proxy.port,
                GW_PUB: hexOf(g.state.identity.publicKey),
                DEV_ID: hexOf(dev.deviceId),
                DEV_PRIV: hexOf(dev.s.privateKey),
                DEV_PUB: hexOf(dev.s.publicKey),
                PSK: hexOf(dev.psk),
                OOB_DEV_ID: hexOf(oob.deviceId),
                OOB_DEV_PRIV: hexOf(oob.s.privateKey),
                OOB_DEV_PUB: hexOf(oob.s.publicKey),
                OOB_PSK: hexOf(oob.psk),
                OOB_TICKET: hexOf(oob.ticket.ticket),
                OOB_SECRET: hexOf(oob.ticket.secret),
                EXP_TICKET: hexOf(expired.ticket),
                EXP_SECRET: hexOf(expired.resumptionSecret),
                OTHER_TICKET: hexOf(foreign.ticket),
                OTHER_SECRET: hexOf(foreign.resumptionSecret),
                ...keys(rev, "REV"),
                ...keys(torn, "TORN"),
            },
            { timeoutMs: 120000 }
        )
        for (const line of benchLines(run)) console.log(line)
    })
    after(async () => {
        if (process.env["TETHER_E2E_DEBUG"]) {
            for (const l of g.logs) console.log(JSON.stringify(l))
            for (const f of proxy.frames) console.log(f.conn, f.dir, f.type, f.raw.length)
        }
        await proxy?.close()
        await g?.close()
        if (otherDir) rmSync(otherDir, { recursive: true, force: true })
    })

    test("full handshake, drop, resumption with 0-RTT delivered once, zero X25519, data both ways", () => {
        assertDevice(run, "full-then-resume")
        assert.equal(g.count("early-1"), 1)
        assert.equal(g.count("ping-2"), 1)
        assert.equal(g.count("ping-3"), 1)
        const resumed = g.outcomes("resumed", "dev")
        assert.equal(resumed[0]?.["earlyAccepted"], true)
        // the resume exchange without early data (the third connection): 65 + 32 bytes
        const c3 = proxy.frames.filter(
            f => f.dir === "up" && f.type === FrameType.RESUME_INIT && resumeDeviceId(f) === hexOf(dev.deviceId)
        )[1]!
        const resp = proxy.of(c3.conn, "down")[0]!
        assert.equal(resp.type, FrameType.RESUME_RESP)
        assert.equal(c3.raw.length, 65)
        assert.equal(resp.raw.length, 32)
        assert.ok(c3.raw.length + resp.raw.length <= 100)
    })
    test("first connection from an out-of-band ticket", () => {
        assertDevice(run, "oob-ticket")
        assert.equal(g.count("oob-early"), 1)
        assert.equal(g.outcomes("full-handshake", "oob").length, 0)
        const r = g.outcomes("resumed", "oob")[0]!
        assert.equal(r["earlyAccepted"], true)
        assert.equal(r["generation"], 2) // pairing issued 1 to the out-of-band ticket
    })
    for (const [name, early] of [
        ["expired-ticket", "after-expiry"],
        ["tampered-ticket", "after-tamper"],
        ["other-gateway-ticket", "after-other"],
    ] as const) {
        test(`${name}: TICKET_REJECTED, then the full handshake, early data sent once as a record`, () => {
            assertDevice(run, name)
            assert.equal(g.count(early), 1)
        })
    }
    test("fallbacks: three TICKET_REJECTED for the paired device, each followed by a full handshake", () => {
        const dl = g.logs.filter(
            l =>
                l["deviceName"] === "dev" || (l["outcome"] === "reject" && l["code"] === "TICKET_REJECTED" && l["deviceName"] === undefined)
        )
        const seq = dl.map(l => (l["outcome"] === "reject" ? `reject:${l["code"]}` : String(l["outcome"])))
        // full, resumed, resumed, then three times: refused ticket, full handshake
        const fallbacks = seq.filter((s, i) => s === "reject:TICKET_REJECTED" && seq[i + 1] === "full-handshake")
        assert.equal(fallbacks.length, 3, seq.join(" "))
        assert.equal(g.outcomes("full-handshake", "dev").length, 4)
    })
    test("revoked device: TICKET_REJECTED, then UNKNOWN_DEVICE; no session", () => {
        assertDevice(run, "revoked-device")
        const codes = g.logs.filter(l => l["deviceName"] === "revoked").map(l => `${l["outcome"]}:${l["code"]}`)
        assert.deepEqual(codes, ["reject:TICKET_REJECTED", "reject:UNKNOWN_DEVICE"])
        assert.equal(g.count("revoked-early"), 0)
    })
    test("torn connection after the TICKET was sent: the older ticket resumes, early data delivered once each", () => {
        assertDevice(run, "torn-connection")
        assert.equal(g.count("torn-1"), 1) // accepted as 0-RTT on the torn connection
        assert.equal(g.count("torn-2"), 1) // refused as 0-RTT (older generation), sent again as a record
        const r = g.outcomes("resumed", "torn")
        assert.deepEqual(
            r.slice(0, 2).map(l => [l["earlyAccepted"], l["generation"]]),
            [
                [true, 2],
                [false, 3],
            ]
        )
    })
    test("power cut during the ticket write: the newest valid slot survives and resumes", () => {
        assertDevice(run, "power-cut-during-ticket-write")
        assert.equal(g.count("cut-1"), 1)
        assert.equal(g.count("cut-2"), 1)
        const r = g.outcomes("resumed", "torn")
        assert.deepEqual(
            r.slice(2).map(l => l["earlyAccepted"]),
            [true, false]
        )
    })
    test("the device run passed as a whole", () => {
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })

    test("replay of the captured out-of-band RESUME_INIT: no second delivery, no session for the replayer", async () => {
        assertDevice(run, "oob-ticket")
        const captured = proxy.frames.find(
            f => f.dir === "up" && f.type === FrameType.RESUME_INIT && resumeDeviceId(f) === hexOf(oob.deviceId)
        )
        assert.ok(captured, "the proxy captured the out-of-band RESUME_INIT")
        const body = captured.raw.subarray(3)
        // the capture is what the device built: rebuilt from the ticket, secret and its nonce
        const nonceI = body.subarray(RESUME_INIT_NONCE_OFFSET, RESUME_INIT_PAYLOAD_OFFSET)
        const rebuilt = writeResumeInit(
            { ticket: oob.ticket.ticket, secret: oob.ticket.secret },
            Buffer.from(nonceI),
            Buffer.from("oob-early")
        )
        assert.equal(hexOf(rebuilt.body), hexOf(body))
        const before = g.logs.length
        for (let i = 0; i < 3; i++) {
            const sock = net.connect(g.port, "127.0.0.1")
            await new Promise<void>((resolve, reject) => {
                sock.once("connect", () => resolve())
                sock.once("error", reject)
            })
            const conn = new FrameConn(sock)
            await conn.write(captured.raw)
            const resp = await conn.recvFrame(5000)
            assert.equal(resp?.type, FrameType.RESUME_RESP, "the ticket is still valid: the gateway answers")
            const ticket = await conn.recvFrame(5000)
            assert.equal(ticket?.type, FrameType.RECORD)
            // only the holder of the resumption secret can read the answer; the test can (it
            // minted the pairing): EARLY_ACCEPTED is clear, the early data was discarded
            const r = readResumeResp(rebuilt, resp!.body)
            assert.ok(r)
            assert.equal(r.flags & EARLY_ACCEPTED, 0)
            // the replayer has no secret: a wrong one cannot read RESUME_RESP
            const guess = writeResumeInit(
                { ticket: oob.ticket.ticket, secret: randomBytes(32) },
                Buffer.from(nonceI),
                Buffer.from("oob-early")
            )
            assert.equal(readResumeResp(guess, resp!.body), undefined)
            // and any record it sends is refused: the gateway closes without answering
            await conn.sendFrame(FrameType.RECORD, randomBytes(40))
            assert.equal(await conn.recvFrame(5000), null)
            sock.destroy()
        }
        assert.equal(g.count("oob-early"), 1, "never delivered again")
        const replays = g.logs.slice(before).filter(l => l["deviceName"] === "oob")
        assert.deepEqual(
            replays.map(l => `${l["outcome"]}:${l["earlyAccepted"] ?? ""}`),
            ["resumed:false", "bad-record:", "resumed:false", "bad-record:", "resumed:false", "bad-record:"]
        )
    })
})
