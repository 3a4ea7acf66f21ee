// End to end, the guarantees of PROTOCOL.md version 2 against the real `tether-gateway serve`
// process, set up as an operator does (init, pair, a routes file, serve), with the Node peer as
// the device and raw sockets as the attacker on other loopback addresses:
//
//   - a replayed HS_INIT and 100 replayed RESUME_INITs change nothing for the device (6.3, 6.4):
//     the registry's generations are as they were and the device's next connection resumes with
//     no X25519 and its early data accepted;
//   - a RESUME_INIT held back 5 s does not execute its early REQUEST upstream (6.2's age check),
//     while one on time does, with `Early-Data: 1` (9.3);
//   - a retired ticket key's tickets are refused at once, the out-of-band key's too (6.1);
//   - an observer of several connections of one device cannot link them by any field (9.1).
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { x25519, x25519Base } from "tether-gateway"
import { AppKind, encodeApp, MemoryTicketStore, TetherClient, type Connection, type Pairing } from "tether-gateway/peer"
import { Code, FrameType, HS_INIT_PSEUDONYM_OFFSET, PSEUDONYM_LEN, RESUME_INIT_AGE_OFFSET } from "tether-gateway/wire"
import { cli, deviceFrom, type Serve, serveProcess, sleep, startFrameServer } from "./harness.js"

interface Sent {
    type: number
    body: Buffer
}

/** A device as `pair` wrote it, on the Node peer, with its DH counted and every frame it sends kept. */
class Device {
    readonly pairing: Pairing
    readonly store: MemoryTicketStore
    readonly sent: Sent[] = []
    dh = { x: 0, base: 0 }
    #stream = 0x5eed0000 + Math.floor(Math.random() * 0xffff)
    #id = 0

    constructor(path: string) {
        ;({ pairing: this.pairing, store: this.store } = deviceFrom(path))
    }

    client(port: number, timeoutMs = 3000): TetherClient {
        const counted = {
            x25519: (k: Buffer, u: Buffer) => (this.dh.x++, x25519(k, u)),
            x25519Base: (k: Buffer) => (this.dh.base++, x25519Base(k)),
        }
        return new TetherClient({
            pairing: this.pairing,
            store: this.store,
            host: "127.0.0.1",
            port,
            dh: counted,
            timeoutMs,
            onSend: (type, body) => this.sent.push({ type, body: Buffer.from(body) }),
        })
    }

    /** STREAM (a new stream each time: the gateway's receiving state follows it) and then `more`. */
    early(...more: Buffer[]): Buffer {
        this.#id = 0
        this.#stream++
        return Buffer.concat([encodeApp({ kind: AppKind.STREAM, streamId: this.#stream, peerStreamId: 0, delivered: 0 }), ...more])
    }

    publish(topic: string, payload: string): Buffer {
        return encodeApp({ kind: AppKind.PUBLISH, id: ++this.#id, topic, payload: Buffer.from(payload) })
    }

    request(route: string, payload: string): Buffer {
        return encodeApp({ kind: AppKind.REQUEST, id: ++this.#id, route, payload: Buffer.from(payload) })
    }

    frames(type: number): Buffer[] {
        return this.sent.filter(f => f.type === type).map(f => f.body)
    }
}

/** A raw connection from another loopback address (the attacker's), collecting whole frames. */
async function raw(port: number, local: string, type: number, body: Buffer, waitMs = 400): Promise<Sent[]> {
    const sock = net.connect({ host: "127.0.0.1", port, localAddress: local })
    await new Promise<void>((resolve, reject) => {
        sock.once("connect", () => resolve())
        sock.once("error", reject)
    })
    const got: Sent[] = []
    let buf = Buffer.alloc(0)
    sock.on("data", d => {
        buf = Buffer.concat([buf, d])
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const len = buf.readUInt16BE(0)
            got.push({ type: buf[2]!, body: Buffer.from(buf.subarray(3, 2 + len)) })
            buf = buf.subarray(2 + len)
        }
    })
    sock.on("error", () => {})
    const f = Buffer.alloc(3 + body.length)
    f.writeUInt16BE(1 + body.length, 0)
    f[2] = type
    body.copy(f, 3)
    sock.write(f)
    await sleep(waitMs)
    sock.destroy()
    return got
}

/** The registry's view of a device, as the operator sees it. */
function listed(state: string, name: string): Record<string, unknown> {
    const rows = JSON.parse(cli(["list", "--state", state, "--json"])) as Record<string, unknown>[]
    const row = rows.find(r => r["name"] === name)
    assert.ok(row, `${name} is listed`)
    return row
}

describe("protocol version 2 against the real serve", () => {
    let dir: string
    let state: string
    let g: Serve
    let upstream: http.Server
    const calls: { body: string; headers: http.IncomingHttpHeaders }[] = []
    let dev: Device
    let other: Device
    let oobDev: Device

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "tether-e2e-v2-"))
        state = join(dir, "state")
        upstream = http.createServer((req, res) => {
            const chunks: Buffer[] = []
            req.on("data", c => chunks.push(c))
            req.on("end", () => {
                calls.push({ body: Buffer.concat(chunks).toString(), headers: req.headers })
                res.writeHead(200, { "content-type": "text/plain" }).end("ok")
            })
        })
        await new Promise<void>(resolve => upstream.listen(0, "127.0.0.1", () => resolve()))
        const port = (upstream.address() as net.AddressInfo).port
        const config = join(dir, "routes.json")
        writeFileSync(
            config,
            JSON.stringify({ routes: { echo: { url: `http://127.0.0.1:${port}/echo`, method: "POST", devices: ["*"] } } })
        )
        cli(["init", "--state", state])
        for (const name of ["dev", "other", "oob"]) cli(["pair", name, "--state", state, "--out", join(dir, `${name}.env`)])
        dev = new Device(join(dir, "dev.env"))
        other = new Device(join(dir, "other.env"))
        oobDev = new Device(join(dir, "oob.env"))
        g = await serveProcess(["--state", state, "--port", "0", "--config", config, "--handshake-timeout-ms", "1500"])
    })

    after(async () => {
        g?.child.kill("SIGTERM")
        await g?.exit
        await new Promise<void>(resolve => upstream?.close(() => resolve()))
        rmSync(dir, { recursive: true, force: true })
    })

    /** One connection of `d` with early data `early`; its TICKET stored before it returns. */
    async function connect(d: Device, early: Buffer): Promise<Connection> {
        const conn = await d.client(g.port).connect(early)
        return conn
    }

    test("a replayed HS_INIT and 100 replayed RESUME_INITs change nothing for the device", async () => {
        // the out-of-band ticket (age unknown: the STREAM goes as the first record), then a
        // full handshake (expire-tickets), then a resumption with fresh early data: captured
        const c1 = await connect(dev, dev.early())
        assert.ok(c1.resumed && !c1.earlyAccepted, "the first connection resumes from the out-of-band ticket, no early data")
        c1.close()
        cli(["expire-tickets", "dev", "--state", state])
        const c2 = await connect(dev, dev.early())
        assert.ok(!c2.resumed && c2.fellBack, "after expire-tickets: TICKET_REJECTED, then the full handshake")
        c2.close()
        const hsInit = dev.frames(FrameType.HS_INIT).at(-1)!
        await sleep(300)
        const before = listed(state, "dev")
        const hs = await raw(g.port, "127.0.0.8", FrameType.HS_INIT, hsInit)
        assert.equal(hs[0]?.type, FrameType.HS_RESP, "a replayed HS_INIT is answered (the gateway cannot tell it from the device)")
        assert.equal(hs.length, 1, "and gets no TICKET: the replayer cannot send a record")
        await sleep(300)
        assert.deepEqual(listed(state, "dev"), before, "a replayed HS_INIT moves no generation")

        const c3 = await connect(dev, dev.early(dev.publish("v2/replay", "once")))
        assert.ok(c3.resumed && c3.earlyAccepted, "a fresh resumption's early data is accepted")
        c3.close()
        const resumeInit = dev.frames(FrameType.RESUME_INIT).at(-1)!
        await sleep(300)
        const before3 = listed(state, "dev")
        const kinds = new Map<string, number>()
        for (let i = 0; i < 100; i++) {
            const got = await raw(g.port, "127.0.0.8", FrameType.RESUME_INIT, resumeInit, 60)
            const k = got.map(f => f.type).join("+") || "none"
            kinds.set(k, (kinds.get(k) ?? 0) + 1)
            assert.ok(
                got.every(f => f.type === FrameType.RESUME_RESP),
                `replay ${i}: only RESUME_RESP, never a TICKET (got ${k})`
            )
        }
        await sleep(300)
        assert.deepEqual(listed(state, "dev"), before3, "the registry's generations did not move")
        // once two sessions rotated the pseudonyms, the old HS_INIT names no device at all (4.4)
        const stale = await raw(g.port, "127.0.0.8", FrameType.HS_INIT, hsInit)
        assert.deepEqual(
            stale.map(f => [f.type, f.body[0]]),
            [[FrameType.REJECT, Code.UNKNOWN_DEVICE]],
            "an HS_INIT two rotations old: UNKNOWN_DEVICE"
        )

        // the device notices nothing: its next connection resumes, no X25519, early data accepted
        const dh0 = { ...dev.dh }
        const c4 = await connect(dev, dev.early(dev.publish("v2/replay", "next")))
        assert.ok(c4.resumed && c4.earlyAccepted, "the device resumes with its newest ticket and 0-RTT")
        assert.deepEqual(dev.dh, dh0, "no X25519 on the device")
        c4.close()
        const replayed = () => g.lines.filter(l => l["outcome"] === "publish" && l["topic"] === "v2/replay")
        for (let i = 0; i < 30 && replayed().length < 2; i++) await sleep(100)
        await sleep(300) // and nothing more arrives
        const publishes = replayed()
        assert.equal(publishes.length, 2, "each early PUBLISH delivered once, the replayed one never again")
        console.log(
            `replays: 1 HS_INIT -> HS_RESP only; 100 RESUME_INIT -> ${JSON.stringify(Object.fromEntries(kinds))}; registry unchanged`
        )
    })

    test("a RESUME_INIT held back 5 s does not run its early REQUEST; one on time does, with Early-Data: 1", async () => {
        // the device's first frame goes to a black hole that never answers: the device gives up
        const hole = await startFrameServer(async () => {})
        const early = dev.early(dev.request("echo", "late"))
        await assert.rejects(dev.client(hole.port, 500).connect(early), /no answer/)
        await hole.close()
        const held = dev.frames(FrameType.RESUME_INIT).at(-1)!
        await sleep(5000)
        const got = await raw(g.port, "127.0.0.9", FrameType.RESUME_INIT, held, 1000)
        assert.equal(got[0]?.type, FrameType.RESUME_RESP, "the ticket is valid: the gateway answers")
        assert.equal(got.length, 1, "no TICKET: the early data was not accepted")
        assert.equal(calls.filter(c => c.body === "late").length, 0, "the held-back REQUEST never reached the upstream")
        const line = g.lines.filter(l => l["outcome"] === "resumed" && l["deviceName"] === "dev").at(-1)
        assert.equal(line?.["detail"], "early data: not fresh")

        const conn = await connect(dev, dev.early(dev.request("echo", "on time")))
        assert.ok(conn.resumed && conn.earlyAccepted, "the same ticket, on time: early data accepted")
        for (let i = 0; i < 30 && !calls.some(c => c.body === "on time"); i++) await sleep(100)
        conn.close()
        const onTime = calls.filter(c => c.body === "on time")
        assert.equal(onTime.length, 1, "the on-time REQUEST ran once")
        assert.equal(onTime[0]!.headers["early-data"], "1", "forwarded with Early-Data: 1 (RFC 8470)")
        assert.equal(onTime[0]!.headers["x-tether-device"], "dev")
    })

    test("a retired ticket key's tickets are refused at once; the out-of-band key's too", async () => {
        const warm = await connect(dev, dev.early())
        assert.ok(warm.resumed && warm.earlyAccepted, "a ticket under the current session key")
        warm.close()
        const n = g.lines.length
        cli(["rotate-ticket-key", "--state", state])
        cli(["rotate-ticket-key", "--oob", "--state", state])
        const out = cli(["retire-ticket-key", "--now", "--state", state])
        assert.match(out, /retired ticket keys session \d+, oob \d+/)
        for (let i = 0; i < 40 && g.lines.slice(n).filter(l => l["outcome"] === "retired").length < 2; i++) await sleep(100)
        assert.equal(
            g.lines.slice(n).filter(l => l["event"] === "ticket-key" && l["outcome"] === "retired").length,
            2,
            "serve took up both retirements"
        )
        const c = await connect(dev, dev.early())
        assert.ok(!c.resumed && c.fellBack, "the retired session key's ticket: TICKET_REJECTED, then the full handshake")
        c.close()
        const o = await connect(oobDev, oobDev.early())
        assert.ok(!o.resumed && o.fellBack, "the retired out-of-band key's ticket: refused too")
        o.close()
        const again = await connect(dev, dev.early(dev.publish("v2/after-retire", "x")))
        assert.ok(again.resumed && again.earlyAccepted, "tickets of the new key resume")
        again.close()
    })

    test("an observer of several connections of one device cannot link them by any field", async () => {
        // what the observer sees from here on (no failed attempt among them: a device that
        // retries a failed attempt reuses its ticket, which PROTOCOL.md 9.1 says links the two)
        const from = dev.sent.length
        for (let i = 0; i < 2; i++) {
            cli(["expire-tickets", "dev", "--state", state])
            ;(await connect(dev, dev.early())).close()
            for (let j = 0; j < 2; j++) (await connect(dev, dev.early(dev.publish("v2/observe", `${i}.${j}`)))).close()
        }
        dev.sent.splice(0, from)
        ;(await connect(other, other.early())).close()
        ;(await connect(other, other.early(other.publish("v2/observe", "other")))).close()
        const id = dev.pairing.deviceId
        for (const f of dev.sent) assert.equal(f.body.indexOf(id), -1, `the device id is in a frame of type ${f.type}`)
        const resumes = dev.frames(FrameType.RESUME_INIT)
        const full = dev.frames(FrameType.HS_INIT)
        assert.ok(resumes.length >= 6 && full.length >= 2, `${resumes.length} resumptions, ${full.length} full handshakes seen`)
        // every field of every RESUME_INIT differs from that field in every other one, except
        // key_id, which other devices share in the same key epoch
        const fields = (b: Buffer) => ({
            sealed: b.subarray(2, 18).toString("hex"),
            mac: b.subarray(18, 34).toString("hex"),
            age: b.subarray(RESUME_INIT_AGE_OFFSET, RESUME_INIT_AGE_OFFSET + 4).toString("hex"),
            nonce: b.subarray(RESUME_INIT_AGE_OFFSET + 4, RESUME_INIT_AGE_OFFSET + 12).toString("hex"),
        })
        for (const k of ["sealed", "mac", "age", "nonce"] as const) {
            const seen = resumes.map(b => fields(b)[k])
            assert.equal(new Set(seen).size, seen.length, `RESUME_INIT ${k} repeats across connections`)
        }
        const lastKeyId = resumes.at(-1)![1]
        assert.equal(other.frames(FrameType.RESUME_INIT).at(-1)![1], lastKeyId, "key_id is shared with another device")
        // each full handshake after the first TICKET names the device by a new pseudonym
        const pseudonyms = full.map(b => b.subarray(HS_INIT_PSEUDONYM_OFFSET, HS_INIT_PSEUDONYM_OFFSET + PSEUDONYM_LEN).toString("hex"))
        assert.equal(new Set(pseudonyms).size, pseudonyms.length, `pseudonyms repeat: ${pseudonyms.join(" ")}`)
        console.log(`observer: ${resumes.length} RESUME_INITs and ${full.length} HS_INITs of one device share no field but key_id`)
    })

    test("the serve log holds no protocol error and the process is still running", () => {
        assert.equal(g.child.exitCode, null)
        const bad = g.lines.filter(l => l["outcome"] === "error" || l["outcome"] === "internal-error")
        assert.deepEqual(bad, [])
        assert.ok(!g.lines.some(l => l["code"] === "PROTOCOL_ERROR" && l["deviceName"] !== undefined), "no PROTOCOL_ERROR for a device")
    })
})
