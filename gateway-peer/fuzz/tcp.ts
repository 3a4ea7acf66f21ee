// The TCP-level mutation fuzzer: a real gateway in a child process (tcp-gateway.ts) on
// loopback; many short connections each send a mutated stream of frames (the vectors' HS_INIT,
// RESUME_INIT and records, and the frames a live Node peer sent), cut into random chunks, and
// close after a moment; meanwhile a canary device (AppClient over TetherClient) publishes and
// drops and reconnects, and each publish must be acknowledged within 2 s and each reconnect
// must succeed. At the end the gateway must still be running, back to the canary's connection
// alone, with as many descriptors as before (a small slack for the runtime's own). Bounded in
// time and connections, loopback only. The fuzz connections come from 127.0.0.2..127.0.0.254 in
// turn and the canary from 127.0.0.1, as an attacker and a device come from different addresses:
// the gateway's per-source limits then keep the flood from reaching the canary (a flood from the
// canary's own address would be refused BUSY by design), and no one fuzz source reaches its own
// limit quickly, so the fuzz traffic goes past the admission check into the handshakes.
import { fork, type ChildProcess } from "node:child_process"
import { connect, type Socket } from "node:net"
import { fileURLToPath } from "node:url"
import { AppClient } from "../peer/device-app.js"
import { MemoryTicketStore, TetherClient } from "../peer/initiator.js"
import { keyPairFromPrivate } from "../src/crypto/x25519.js"
import { encodeFrame } from "../src/wire.js"
import { mutate, Rng } from "./mutate.js"
import type { Report } from "./run.js"
import { FRAME_DICTIONARY, hex, vectors } from "./targets/common.js"

export interface TcpOptions {
    readonly seconds: number
    readonly seed: number
    /** at most this many fuzz connections */
    readonly maxConnections?: number
    /** connections in flight at once */
    readonly parallel?: number
}

export interface TcpResult {
    readonly target: "tcp"
    readonly seconds: number
    readonly connections: number
    readonly bytesSent: number
    /** connections the gateway answered (any bytes) / closed itself */
    readonly answered: number
    readonly closedByGateway: number
    readonly canaryPublishes: number
    readonly canaryReconnects: number
    readonly canaryResumed: number
    readonly fdsBefore: number
    readonly fdsAfter: number
    readonly findings: Report[]
}

interface Ready {
    port: number
    gatewayPublic: string
    canary: { deviceId: string; s: string; psk: string; ticket: string; secret: string }
    fds: number
}

const ACK_MS = 2000
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

function request<T>(child: ChildProcess, op: string, want: string): Promise<T> {
    return new Promise(resolve => {
        const on = (m: { op: string }) => {
            if (m.op !== want) return
            child.off("message", on)
            resolve(m as T)
        }
        child.on("message", on)
        child.send({ op })
    })
}

/** The fuzz sources: every loopback address but the canary's 127.0.0.1 (Linux routes all of 127/8). */
const FUZZ_SOURCES = 253
let nextSource = 0

/** One fuzz connection: write the stream in chunks, read what comes back, close after a moment. */
function shoot(port: number, stream: Buffer, r: Rng): Promise<{ answered: boolean; closed: boolean }> {
    return new Promise(resolve => {
        let answered = false
        let closed = false
        const localAddress = `127.0.0.${2 + (nextSource++ % FUZZ_SOURCES)}`
        const s: Socket = connect({ host: "127.0.0.1", port, localAddress })
        s.setNoDelay(true)
        const finish = () => {
            clearTimeout(timer)
            s.destroy()
            resolve({ answered, closed })
        }
        const timer = setTimeout(finish, 50 + r.below(150))
        s.on("data", () => (answered = true))
        s.on("end", () => {
            closed = true
            finish()
        })
        s.on("error", () => finish())
        s.on("close", () => finish())
        s.once("connect", () => {
            for (let off = 0; off < stream.length;) {
                const n = 1 + r.below(Math.min(stream.length - off, 96))
                s.write(stream.subarray(off, off + n))
                off += n
            }
            if (r.below(4) === 0) s.end() // half-close sometimes
        })
    })
}

export async function tcpFuzz(o: TcpOptions): Promise<TcpResult> {
    const findings: Report[] = []
    const t0 = performance.now()
    const child = fork(fileURLToPath(new URL("./tcp-gateway.js", import.meta.url)), [], { stdio: ["ignore", "ignore", "pipe", "ipc"] })
    let stderr = ""
    child.stderr?.on("data", d => (stderr += d))
    let exited: number | null | undefined
    child.on("exit", code => (exited = code))
    const ready = await new Promise<Ready>((resolve, reject) => {
        child.once("message", m => resolve(m as Ready))
        child.once("exit", code => reject(new Error(`tcp: the gateway exited with ${code} before it was ready: ${stderr}`)))
    })

    // seeds: the vectors' streams, and every session the canary opens (a live peer's traffic)
    const kk = vectors("tether-kk.json")[0]
    const seeds: Buffer[] = [hex(kk.hs_init), Buffer.concat([hex(kk.hs_init), hex(kk.record_data_i2r)])]
    for (const v of vectors("tether-resume.json")) seeds.push(Buffer.concat([hex(v.resume_init), hex(v.record_data_i2r)]))
    let current: Buffer[] = []
    const c = ready.canary
    const client = new TetherClient({
        pairing: { deviceId: hex(c.deviceId), s: keyPairFromPrivate(hex(c.s)), psk: hex(c.psk), gatewayPublic: hex(ready.gatewayPublic) },
        store: new MemoryTicketStore({ ticket: hex(c.ticket), secret: hex(c.secret) }),
        host: "127.0.0.1",
        port: ready.port,
        timeoutMs: ACK_MS,
        onSend: (type, body) => current.push(encodeFrame(type, body)),
    })
    const canary = new AppClient(client)
    let publishes = 0
    let reconnects = 0
    let resumed = 0
    const connectCanary = async () => {
        if (current.length > 0) seeds.push(Buffer.concat(current))
        current = []
        const conn = await canary.connect()
        reconnects++
        if (conn.resumed) resumed++
    }
    await connectCanary()

    canary.publish("fuzz/canary", Buffer.from("seed"))
    await canary.settled(ACK_MS)

    let canaryFailed: string | undefined
    const deadline = t0 + o.seconds * 1000
    const canaryLoop = (async () => {
        for (let i = 0; performance.now() < deadline - 300 && canaryFailed === undefined; i++) {
            try {
                if (i % 5 === 4) {
                    await canary.drop()
                    await connectCanary()
                }
                canary.publish("fuzz/canary", Buffer.from(`n${i}`))
                publishes++
                await canary.settled(ACK_MS)
            } catch (err) {
                canaryFailed = `canary: ${(err as Error).message} (publish ${publishes}, reconnect ${reconnects})`
            }
            await sleep(50)
        }
    })()

    seeds.push(Buffer.concat(current))
    const rng = new Rng(o.seed)
    const ctx = { corpus: seeds, dictionary: FRAME_DICTIONARY, maxLen: 4096 }
    const maxConnections = o.maxConnections ?? 20000
    const parallel = o.parallel ?? 8
    let connections = 0
    let bytesSent = 0
    let answered = 0
    let closedByGateway = 0
    const worker = async () => {
        while (performance.now() < deadline - 500 && connections < maxConnections && exited === undefined && canaryFailed === undefined) {
            connections++
            const base = seeds[rng.below(seeds.length)] as Buffer
            const stream = rng.below(8) === 0 ? base : mutate(base, rng, ctx)
            bytesSent += stream.length
            const r = await shoot(ready.port, stream, new Rng(rng.next()))
            if (r.answered) answered++
            if (r.closed) closedByGateway++
        }
    }
    await Promise.all(Array.from({ length: parallel }, worker))
    await canaryLoop
    if (canaryFailed !== undefined) findings.push({ kind: "invariant", input: "", message: canaryFailed, stack: "" })

    // the gateway is alive, back to the canary alone, and holds no more descriptors than before
    let after = { fds: -1, stats: { connections: -1 }, errors: 0 }
    if (exited === undefined) {
        const end = Date.now() + 3000
        for (;;) {
            after = await request(child, "fds", "fds")
            if ((after.stats.connections <= 1 && after.fds <= ready.fds + 3) || Date.now() > end) break
            await sleep(100)
        }
        if (after.stats.connections > 1)
            findings.push({
                kind: "invariant",
                input: "",
                message: `tcp: ${after.stats.connections} connections still open after the fuzz connections closed`,
                stack: "",
            })
        if (after.fds > ready.fds + 3)
            findings.push({ kind: "invariant", input: "", message: `tcp: descriptors ${ready.fds} before, ${after.fds} after`, stack: "" })
        if (after.errors > 0)
            findings.push({ kind: "invariant", input: "", message: `tcp: the gateway logged ${after.errors} errors`, stack: "" })
    } else findings.push({ kind: "crash", input: "", message: `tcp: the gateway exited with ${exited}`, stack: stderr })
    await canary.close().catch(() => undefined)
    if (exited === undefined) {
        await request(child, "stop", "stopped")
        await new Promise(r => (exited === undefined ? child.once("exit", r) : r(undefined)))
    }
    return {
        target: "tcp",
        seconds: (performance.now() - t0) / 1000,
        connections,
        bytesSent,
        answered,
        closedByGateway,
        canaryPublishes: publishes,
        canaryReconnects: reconnects,
        canaryResumed: resumed,
        fdsBefore: ready.fds,
        fdsAfter: after.fds,
        findings,
    }
}
