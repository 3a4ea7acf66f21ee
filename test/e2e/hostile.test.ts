// End to end, hostile peers and a bad upstream against the real `tether-gateway serve` process.
//
// The test sets the gateway up as an operator does (`init`, `pair` of three devices, a routes
// file with a local `node:http` upstream, `serve` in a child process with short policy values),
// then runs each attack bounded in count and time on loopback. During and after every attack a
// canary device (the Node peer, resuming from the ticket `pair` wrote) must get an upstream
// answer within 2 s; the `serve` process must still be running and its open descriptors
// (/proc/<pid>/fd) must come back near the baseline measured before the attacks.
// Attack sockets bind to other loopback addresses (127.0.0.2 ...) so the per-source limits
// they hit are theirs, not the canary's.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { randomBytes } from "tether-gateway"
import { AppClient, AppKind, DeviceApp, encodeApp, TetherClient, writeResumeInit, type Connection } from "tether-gateway/peer"
import { AGE_LEN, Code, DEVICE_ID_LEN, FrameType, NONCE_I_LEN, TICKET_LEN } from "tether-gateway/wire"
import { cli, deviceFrom, type PairedTwin, type Serve, serveProcess, sleep } from "./harness.js"

const CANARY_MS = 2000
const FD_SLACK = 8
const POLICY = {
    "linger-ms": 200,
    "hs-init-timeout-ms": 300,
    "handshake-timeout-ms": 1000,
    "shutdown-grace-ms": 1000,
    "max-write-buffer-bytes": 65536,
}

// ---------------------------------------------------------------------------------------------
// helpers

type Device = PairedTwin

/** `serve` with the test's short policy values, on a free port. */
function startServe(state: string, config: string): Promise<Serve> {
    const policy = Object.entries(POLICY).flatMap(([k, v]) => [`--${k}`, String(v)])
    return serveProcess(["--state", state, "--port", "0", "--config", config, ...policy])
}

function alive(g: Serve): boolean {
    return g.child.exitCode === null && g.child.signalCode === null
}

function fdCount(pid: number): number {
    return readdirSync(`/proc/${pid}/fd`).length
}

/** Waits until the gateway's descriptors are back within FD_SLACK of `base`; returns the count. */
async function fdsSettle(g: Serve, base: number, ms = 4000): Promise<number> {
    const end = Date.now() + ms
    let n = fdCount(g.child.pid!)
    while (n > base + FD_SLACK && Date.now() < end) {
        await sleep(50)
        n = fdCount(g.child.pid!)
    }
    return n
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let t: NodeJS.Timeout
    return Promise.race([
        p.finally(() => clearTimeout(t)),
        new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))),
    ])
}

/** A raw TCP client bound to `local`, collecting the gateway's frames; never ends its side on its own. */
class Raw {
    readonly frames: { type: number; body: Buffer }[] = []
    closed = false
    #buf = Buffer.alloc(0)
    private constructor(readonly sock: net.Socket) {
        sock.on("data", d => {
            this.#buf = Buffer.concat([this.#buf, d])
            while (this.#buf.length >= 2) {
                const len = this.#buf.readUInt16BE(0)
                if (this.#buf.length < 2 + len) break
                this.frames.push({ type: this.#buf[2]!, body: this.#buf.subarray(3, 2 + len) })
                this.#buf = this.#buf.subarray(2 + len)
            }
        })
        sock.on("error", () => {})
        sock.on("close", () => (this.closed = true))
    }
    static open(port: number, local: string): Promise<Raw> {
        return new Promise((resolve, reject) => {
            const s = net.connect({ host: "127.0.0.1", port, localAddress: local, allowHalfOpen: true }, () => resolve(new Raw(s)))
            s.once("error", reject)
        })
    }
    send(type: number, body: Buffer): void {
        const f = Buffer.alloc(3 + body.length)
        f.writeUInt16BE(1 + body.length, 0)
        f[2] = type
        body.copy(f, 3)
        if (!this.sock.destroyed) this.sock.write(f)
    }
    get rejectCode(): number | undefined {
        const r = this.frames.find(f => f.type === FrameType.REJECT)
        return r?.body[0]
    }
}

/** A well-sized RESUME_INIT whose ticket no gateway minted. */
function randomResumeInit(): Buffer {
    const t = { ticket: randomBytes(TICKET_LEN), secret: randomBytes(32) }
    return writeResumeInit(t, randomBytes(DEVICE_ID_LEN), randomBytes(AGE_LEN), randomBytes(NONCE_I_LEN)).body
}

const codeName = (c: number | undefined) =>
    c === undefined ? "none" : (Object.entries(Code).find(([, v]) => v === c)?.[0] ?? `0x${c.toString(16)}`)

function tally(socks: Raw[]): Record<string, number> {
    const out: Record<string, number> = {}
    for (const s of socks) {
        const k = s.frames.length === 0 ? (s.closed ? "closed-unanswered" : "silent") : codeName(s.rejectCode)
        out[k] = (out[k] ?? 0) + 1
    }
    return out
}

async function openMany(n: number, port: number, local: string, first?: (r: Raw) => void): Promise<Raw[]> {
    const out: Raw[] = []
    for (let i = 0; i < n; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => Raw.open(port, local)))
        for (const r of batch) first?.(r)
        out.push(...batch)
    }
    return out
}

// ---------------------------------------------------------------------------------------------

describe("tether: hostile peers and upstreams against `tether-gateway serve`", () => {
    let dir: string
    let g: Serve
    let upstream: http.Server
    let canaryDev: Device
    let flooder: Device
    let hog: Device
    let baseline = 0
    /** REQUESTs the upstream answered on the `big` route (attack 7 paces its device by them) */
    let bigServed = 0
    const open: { destroy(): void }[] = []

    /** The canary: resumes (or connects), asks the `ok` route, closes; returns the time taken. */
    async function canary(label: string): Promise<{ ms: number; resumed: boolean }> {
        const t0 = Date.now()
        const client = new TetherClient({
            pairing: canaryDev.pairing,
            store: canaryDev.store,
            host: "127.0.0.1",
            port: g.port,
            timeoutMs: CANARY_MS,
        })
        const app = new AppClient(client, new DeviceApp())
        const conn = await withTimeout(app.connect(), CANARY_MS, `canary ${label}: connect`)
        const r = await withTimeout(app.request("ok", Buffer.from("ping")), CANARY_MS - (Date.now() - t0), `canary ${label}: request`)
        const ms = Date.now() - t0
        await app.close()
        assert.equal(r.status, 200, `canary ${label}: status`)
        assert.equal(r.payload.toString(), "pong")
        assert.ok(ms < CANARY_MS, `canary ${label}: ${ms} ms`)
        return { ms, resumed: conn.resumed }
    }

    /** After an attack: serve still up, descriptors back near the baseline, the canary answered. */
    async function afterAttack(label: string): Promise<string> {
        assert.ok(alive(g), "serve is still running")
        const unhandled = g.lines.filter(l => l["event"] === "unhandled")
        assert.equal(unhandled.length, 0, JSON.stringify(unhandled))
        const fds = await fdsSettle(g, baseline)
        assert.ok(fds <= baseline + FD_SLACK, `${label}: descriptors ${fds}, baseline ${baseline}`)
        const c = await canary(`${label}/after`)
        return `fds ${baseline}->${fds}, canary after ${c.ms} ms (${c.resumed ? "resumed" : "full handshake"})`
    }

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "tether-e2e-hostile-"))
        const state = join(dir, "state")
        upstream = http.createServer((req, res) => {
            req.resume()
            req.on("end", () => {
                if (req.url === "/bad") {
                    res.writeHead(600)
                    res.end("six hundred")
                } else if (req.url === "/big") {
                    bigServed++
                    res.writeHead(200)
                    res.end(Buffer.alloc(990, 0x61))
                } else {
                    res.writeHead(200)
                    res.end("pong")
                }
            })
        })
        await new Promise<void>(r => upstream.listen(0, "127.0.0.1", () => r()))
        const up = (upstream.address() as net.AddressInfo).port
        const route = (p: string) => ({
            url: `http://127.0.0.1:${up}${p}`,
            method: "POST",
            timeoutMs: 1500,
            maxResponseBytes: 993,
            devices: ["*"],
        })
        const config = join(dir, "routes.json")
        writeFileSync(config, JSON.stringify({ routes: { ok: route("/ok"), bad: route("/bad"), big: route("/big") } }))
        cli(["init", "--state", state])
        for (const name of ["canary", "flooder", "hog"]) cli(["pair", name, "--state", state, "--out", join(dir, `${name}.env`)])
        canaryDev = deviceFrom(join(dir, "canary.env"))
        flooder = deviceFrom(join(dir, "flooder.env"))
        hog = deviceFrom(join(dir, "hog.env"))
        g = await startServe(state, config)
        const first = await canary("first")
        assert.equal(first.resumed, true, "the out-of-band ticket resumes")
        await sleep(300)
        baseline = fdCount(g.child.pid!)
        console.log(`hostile: serve pid ${g.child.pid} port ${g.port}, baseline ${baseline} descriptors, canary ${first.ms} ms`)
    })

    after(async () => {
        for (const s of open) s.destroy()
        if (g && alive(g)) {
            g.child.kill("SIGKILL")
            await g.exit
        }
        await new Promise<void>(r => (upstream ? upstream.close(() => r()) : r()))
        upstream?.closeAllConnections()
        if (dir) rmSync(dir, { recursive: true, force: true })
    })

    test("1. 520 RESUME_INITs with random tickets from one address, then silence: the canary still resumes", async () => {
        const socks = await openMany(520, g.port, "127.0.0.2", r => r.send(FrameType.RESUME_INIT, randomResumeInit()))
        open.push(...socks.map(s => s.sock))
        const during = await canary("1/during")
        assert.equal(during.resumed, true, "the canary resumed, not refused or pushed to a full handshake")
        await sleep(POLICY["hs-init-timeout-ms"] + 300)
        const t = tally(socks)
        assert.ok(
            socks.every(s => s.rejectCode === Code.TICKET_REJECTED || s.rejectCode === Code.BUSY),
            JSON.stringify(t)
        )
        assert.ok((t["TICKET_REJECTED"] ?? 0) > 0)
        const rest = await afterAttack("1")
        for (const s of socks) s.sock.destroy()
        console.log(
            `attack 1: 520 RESUME_INIT (random ticket) from 127.0.0.2 then silent -> ${JSON.stringify(t)}; canary during ${during.ms} ms; ${rest}`
        )
    })

    test("1b. 522 RESUME_INITs spread over three addresses (under every per-source limit): none held a handshake place", async () => {
        // 174 a source stays under perSourceAttempts, so every one reaches the responder and all
        // 520 together are more than maxConcurrentHandshakes (512) if a refused ticket kept its place
        const socks: Raw[] = []
        for (const local of ["127.0.1.1", "127.0.1.2", "127.0.1.3"])
            socks.push(...(await openMany(174, g.port, local, r => r.send(FrameType.RESUME_INIT, randomResumeInit()))))
        open.push(...socks.map(s => s.sock))
        const during = await canary("1b/during")
        assert.equal(during.resumed, true)
        await sleep(100)
        const t = tally(socks)
        assert.equal(t["TICKET_REJECTED"], socks.length, JSON.stringify(t))
        await sleep(POLICY["hs-init-timeout-ms"] + 300)
        const rest = await afterAttack("1b")
        for (const s of socks) s.sock.destroy()
        console.log(
            `attack 1b: ${socks.length} RESUME_INIT (random ticket) from 3 addresses then silent -> ${JSON.stringify(t)}; canary during ${during.ms} ms; ${rest}`
        )
    })

    test("2. 300 sockets that get REJECT and never send FIN: descriptors return after lingerMs", async () => {
        // an HS_INIT far too short: REJECT(PROTOCOL_ERROR) (or BUSY past the per-source cap)
        const socks = await openMany(300, g.port, "127.0.0.3", r => r.send(FrameType.HS_INIT, Buffer.from([1, 2, 3])))
        open.push(...socks.map(s => s.sock))
        const peak = fdCount(g.child.pid!)
        const during = await canary("2/during")
        await sleep(POLICY["linger-ms"] + 200)
        const t = tally(socks)
        assert.ok(
            socks.every(s => s.rejectCode !== undefined),
            JSON.stringify(t)
        )
        // none of the attack sockets sent its FIN (the gateway's end() left them half-open)
        assert.ok(socks.every(s => !s.sock.writableEnded))
        const ours = { halfOpen: socks.filter(s => !s.closed).length, closedByGateway: socks.filter(s => s.closed).length }
        const rest = await afterAttack("2")
        for (const s of socks) s.sock.destroy()
        console.log(
            `attack 2: 300 half-open sockets from 127.0.0.3 (short HS_INIT, no FIN) -> ${JSON.stringify(t)}, client side after linger ${JSON.stringify(ours)}; fds peak ${peak}; canary during ${during.ms} ms; ${rest}`
        )
    })

    test("3. an authenticated device floods refused-route REQUESTs at ~100/s and never acknowledges: cut off at the queue bound", async () => {
        const app = new DeviceApp()
        const client = new TetherClient({
            pairing: flooder.pairing,
            store: flooder.store,
            host: "127.0.0.1",
            port: g.port,
            timeoutMs: 2000,
        })
        const [early] = app.sessionStart()
        const conn: Connection = await client.connect(early)
        open.push(conn.sock.socket)
        let received = 0
        let closed = false
        const reader = (async () => {
            for (;;) {
                const c = await conn.recv(10_000)
                if (c === null || c === undefined) break
                received++ // read, never acknowledged
            }
            closed = true
        })()
        let sent = 0
        let during: { ms: number } | undefined
        const t0 = Date.now()
        const canaryAt = t0 + 1000
        let canaryRun: Promise<{ ms: number }> | undefined
        while (!closed && Date.now() - t0 < 6000) {
            void app.request("nope", Buffer.from(`r${sent}`))
            sent++
            for (const c of app.flush()) conn.send(c)
            if (!canaryRun && Date.now() >= canaryAt) canaryRun = canary("3/during")
            await sleep(10)
        }
        during = await canaryRun
        await withTimeout(reader, 2000, "flooder's reader")
        assert.ok(closed, `the flooder was cut off (sent ${sent})`)
        assert.equal(conn.closeCode, Code.PROTOCOL_ERROR)
        // cut at the queue bound (maxQueue, 256 unacknowledged RESPONSEs), not before, not long after
        assert.ok(sent >= 256 && sent <= 256 + 20, `sent ${sent}`)
        const rest = await afterAttack("3")
        conn.sock.socket.destroy()
        console.log(
            `attack 3: ${sent} REQUESTs to a refused route in ${Date.now() - t0} ms, none acknowledged -> ${received} records read, then CLOSE(${codeName(conn.closeCode)}); canary during ${during?.ms} ms; ${rest}`
        )
    })

    test("4. a REQUEST to a route whose upstream answers status 600: UPSTREAM_FAILED, serve keeps running", async () => {
        const client = new TetherClient({
            pairing: canaryDev.pairing,
            store: canaryDev.store,
            host: "127.0.0.1",
            port: g.port,
            timeoutMs: 2000,
        })
        const app = new AppClient(client, new DeviceApp())
        await app.connect()
        const r = await withTimeout(app.request("bad", Buffer.from("x")), 3000, "bad route")
        await app.close()
        assert.equal(r.status, 0)
        assert.deepEqual([...r.payload], [0x04], "UPSTREAM_FAILED")
        await sleep(200)
        const rest = await afterAttack("4")
        console.log(
            `attack 4: REQUEST to the status-600 upstream -> status ${r.status} payload 0x${r.payload.toString("hex")} (UPSTREAM_FAILED); ${rest}`
        )
    })

    test("5. 50 replays of the canary's captured RESUME_INIT: no replayer gets application data, the canary keeps its session", async () => {
        let captured: Buffer | undefined
        const client = new TetherClient({
            pairing: canaryDev.pairing,
            store: canaryDev.store,
            host: "127.0.0.1",
            port: g.port,
            timeoutMs: 2000,
            onSend: (t, body) => void (t === FrameType.RESUME_INIT && (captured = Buffer.from(body))),
        })
        const app = new AppClient(client, new DeviceApp())
        const conn = await app.connect()
        assert.ok(captured, "captured the canary's RESUME_INIT")
        assert.equal((await withTimeout(app.request("ok", Buffer.from("a")), 2000, "live canary")).status, 200)
        const replayers: Raw[] = []
        for (let i = 0; i < 50; i++) {
            const r = await Raw.open(g.port, "127.0.0.5")
            r.send(FrameType.RESUME_INIT, captured)
            replayers.push(r)
        }
        open.push(...replayers.map(r => r.sock))
        await sleep(500)
        // the live session still answers
        assert.ok(conn.isOpen(), `the canary's session is open (close code ${conn.closeCode})`)
        const live = await withTimeout(app.request("ok", Buffer.from("b")), 2000, "live canary after replays")
        assert.equal(live.status, 200)
        // each replayer: RESUME_RESP and nothing more, ever: no TICKET for a session that is
        // never confirmed (PROTOCOL.md 6.3)
        const kinds: Record<string, number> = {}
        for (const r of replayers) {
            const k =
                r.frames
                    .map(f => (f.type === FrameType.RESUME_RESP ? "RESP" : f.type === FrameType.RECORD ? "REC" : `T${f.type}`))
                    .join("+") || "none"
            kinds[k] = (kinds[k] ?? 0) + 1
            assert.equal(r.frames.filter(f => f.type === FrameType.RECORD).length, 0, `a replayer got ${k}`)
            if (r.frames.length > 0) assert.equal(r.frames[0]!.type, FrameType.RESUME_RESP)
        }
        await app.close()
        await sleep(POLICY["handshake-timeout-ms"] + 300) // the unconfirmed sessions time out
        const rest = await afterAttack("5")
        for (const r of replayers) r.sock.destroy()
        console.log(
            `attack 5: 50 replays of the canary's RESUME_INIT from 127.0.0.5 -> frames per replayer ${JSON.stringify(kinds)}; live canary session answered; ${rest}`
        )
    })

    test("6. floods from one address past perSourceAttempts and perSourceConnections: REJECT(BUSY); the canary still resumes", async () => {
        // attempts: 220 sequential RESUME_INITs from 127.0.0.6 (default 200 per 10 s window)
        const attempts: Raw[] = []
        for (let i = 0; i < 220; i++) {
            const r = await Raw.open(g.port, "127.0.0.6")
            r.send(FrameType.RESUME_INIT, randomResumeInit())
            attempts.push(r)
            if (attempts.length % 50 === 0) {
                await sleep(POLICY["hs-init-timeout-ms"] + 50) // keep under the connection cap
            }
        }
        await sleep(200)
        const ta = tally(attempts)
        for (const r of attempts) r.sock.destroy()
        assert.ok((ta["BUSY"] ?? 0) >= 20, JSON.stringify(ta))
        // connections: 300 silent sockets from 127.0.0.7 (default 256 at once), then a frame each
        const conns = await openMany(300, g.port, "127.0.0.7")
        open.push(...conns.map(s => s.sock))
        const during = await canary("6/during")
        await sleep(100)
        const atAccept = tally(conns)
        assert.equal(atAccept["BUSY"], 300 - 256, `REJECT(BUSY) at accept past the cap: ${JSON.stringify(atAccept)}`)
        const capLines = g.lines.filter(l => l["source"] === "127.0.0.7" && l["detail"] === "per-source connections").length
        assert.equal(capLines, 300 - 256)
        for (const r of conns) r.send(FrameType.RESUME_INIT, randomResumeInit())
        await sleep(300)
        const tc = tally(conns)
        assert.ok((tc["BUSY"] ?? 0) >= 300 - 256, JSON.stringify(tc))
        for (const r of conns) r.sock.destroy()
        const rest = await afterAttack("6")
        console.log(
            `attack 6: 220 attempts from 127.0.0.6 -> ${JSON.stringify(ta)}; 300 connections from 127.0.0.7 -> at accept ${JSON.stringify(atAccept)}, after a RESUME_INIT each ${JSON.stringify(tc)}; canary during ${during.ms} ms; ${rest}`
        )
    })

    test("7. a device that never reads while the gateway sends to it: destroyed at maxWriteBufferBytes", async () => {
        // the device asks the `big` route (990-byte answers) and acknowledges blindly, without
        // reading, what the upstream has answered less a margin (each answer becomes a RESPONSE
        // in the gateway's stream; an ACK ahead of the gateway is a protocol error), with at most
        // 16 REQUESTs beyond the answered ones (the gateway's per-device limit of upstream calls:
        // none refused, so every RESPONSE is an answer), so the queue bound never stops the
        // gateway: only the write buffer can. (A fixed lag of 200 behind the REQUESTs sent failed
        // under load: the gateway fell further behind and closed on "ACK of a message never sent".)
        const app = new DeviceApp()
        const client = new TetherClient({ pairing: hog.pairing, store: hog.store, host: "127.0.0.1", port: g.port, timeoutMs: 2000 })
        const [early] = app.sessionStart()
        const conn = await client.connect(early)
        open.push(conn.sock.socket)
        conn.sock.socket.pause()
        let sent = 0
        const t0 = Date.now()
        const logged = () => g.lines.some(l => l["outcome"] === "write-buffer-full")
        let during: { ms: number } | undefined
        const served0 = bigServed
        let acked = 0
        while (!logged() && !conn.sock.socket.destroyed && Date.now() - t0 < 20_000) {
            const served = bigServed - served0
            for (; sent < served + 16; sent++) void app.request("big", Buffer.from("x"))
            for (const c of app.flush()) conn.send(c)
            if (served - 32 > acked) conn.send(encodeApp({ kind: AppKind.ACK, id: (acked = served - 32) }))
            if (!during && Date.now() - t0 > 1000) during = await canary("7/during")
            await sleep(1)
        }
        const outcome = g.lines.filter(l => l["deviceName"] === "hog" && typeof l["outcome"] === "string").map(l => l["outcome"])
        const cut = logged()
        conn.sock.socket.destroy()
        const rest = await afterAttack("7")
        console.log(
            `attack 7: ${sent} REQUESTs for 990-byte answers in ${Date.now() - t0} ms, socket never read -> hog outcomes ${JSON.stringify([...new Set(outcome)])}; canary during ${during?.ms} ms; ${rest}`
        )
        assert.ok(cut, `write-buffer-full logged (hog outcomes ${JSON.stringify(outcome.slice(-5))})`)
    })

    test("8. SIGTERM with a silent peer connected: serve exits 0 within shutdownGraceMs + 2 s", async () => {
        const client = new TetherClient({ pairing: hog.pairing, store: hog.store, host: "127.0.0.1", port: g.port, timeoutMs: 2000 })
        const app = new DeviceApp()
        const conn = await client.connect(app.sessionStart()[0])
        open.push(conn.sock.socket)
        conn.sock.socket.pause() // silent: reads nothing, answers no CLOSE(SHUTDOWN)
        const raw = await Raw.open(g.port, "127.0.0.8") // and one that never sent a frame
        open.push(raw.sock)
        const c = await canary("8/before")
        const t0 = Date.now()
        g.child.kill("SIGTERM")
        const e = await withTimeout(g.exit, POLICY["shutdown-grace-ms"] + 2000, "serve's exit after SIGTERM")
        const ms = Date.now() - t0
        assert.equal(e.code, 0, JSON.stringify(e))
        assert.ok(g.lines.some(l => l["event"] === "shutdown" && l["outcome"] === "done"))
        const canaryLines = g.lines.filter(l => l["deviceName"] === "canary")
        const resumes = canaryLines.filter(l => l["outcome"] === "resumed")
        const full = canaryLines.filter(l => l["outcome"] === "full-handshake")
        console.log(
            `canary over the run: ${resumes.length} resumptions (last ticket generation ${resumes.at(-1)?.["generation"]}), ${full.length} full handshakes (generations ${full.map(l => l["generation"]).join(",")})`
        )
        console.log(
            `attack 8: SIGTERM with a silent session and a silent socket -> exit ${e.code} in ${ms} ms (grace ${POLICY["shutdown-grace-ms"]} ms); canary before ${c.ms} ms`
        )
    })
})
