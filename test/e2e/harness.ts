// End-to-end harness: runs a device program in the DeviceScript simulator (`devs run --test -k`)
// against peers on loopback TCP in this Node process.
//
// A device program cannot read environment variables, so `runDevice` writes its configuration
// as `test/e2e/device/env.generated.ts` (git-ignored) before each run. That file is shared:
// device runs must not overlap (node:test runs the tests of a file one after the other, and
// run-all.mjs runs e2e files one at a time).
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { keyPairFromPrivate } from "tether-gateway"
import { MemoryTicketStore, type Pairing } from "tether-gateway/peer"
import { FrameDecoder, MAX_FRAME_LEN } from "tether-gateway/wire"

/** Repository root (this file compiles to test/e2e/dist/harness.js). */
export const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..", "..")
const DEVS = join(ROOT, "node_modules", ".bin", "devs")
const ENV_FILE = join(ROOT, "test", "e2e", "device", "env.generated.ts")
/** The operator's command, as `npx tether-gateway` runs it. */
export const CLI = join(ROOT, "gateway-peer", "bin", "tether-gateway.js")
const CLI_ENV = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }

/** Runs a CLI command to completion; its stdout. @throws on a non-zero exit, with its stderr */
export function cli(args: string[]): string {
    const r = spawnSync(process.execPath, [CLI, ...args], { env: CLI_ENV, encoding: "utf8" })
    if (r.status !== 0) throw new Error(`tether-gateway ${args[0]} failed (${r.status}): ${r.stderr}`)
    return r.stdout
}

/** A `tether-gateway serve` child process and its JSON log lines so far. */
export interface Serve {
    child: ChildProcess
    /** the port it listens on, from its "serve" log line */
    port: number
    lines: Record<string, unknown>[]
    exit: Promise<{ code: number | null; signal: string | null }>
}

/** Starts `tether-gateway serve ARGS...`; resolves once it logged that it listens. */
export async function serveProcess(args: string[]): Promise<Serve> {
    const child = spawn(process.execPath, [CLI, "serve", ...args], { env: CLI_ENV, stdio: ["ignore", "pipe", "pipe"] })
    const lines: Record<string, unknown>[] = []
    let rest = ""
    let stderr = ""
    child.stderr!.on("data", d => (stderr += d))
    const exit = new Promise<{ code: number | null; signal: string | null }>(resolve =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const port = await new Promise<number>((resolve, reject) => {
        child.stdout!.on("data", d => {
            rest += d.toString()
            let i: number
            while ((i = rest.indexOf("\n")) >= 0) {
                const line = rest.slice(0, i)
                rest = rest.slice(i + 1)
                try {
                    const j = JSON.parse(line) as Record<string, unknown>
                    lines.push(j)
                    if (j["event"] === "serve") resolve(j["port"] as number)
                } catch {
                    // not a log line
                }
            }
        })
        void exit.then(e => reject(new Error(`serve exited (${e.code}, ${e.signal}): ${stderr}`)))
    })
    return { child, port, lines, exit }
}

/** The settings file `pair` wrote: KEY=value lines, strings JSON-quoted. */
export function readSettings(path: string): Record<string, string | number> {
    const out: Record<string, string | number> = {}
    for (const line of readFileSync(path, "utf8").split("\n")) {
        const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line)
        if (m) out[m[1]!] = JSON.parse(m[2]!) as string | number
    }
    return out
}

/** A device as `pair` wrote it, for the Node twin: its pairing and its first (out-of-band) ticket. */
export interface PairedTwin {
    pairing: Pairing
    store: MemoryTicketStore
}

/** The Node twin's pairing and ticket store from the settings file `pair` wrote at `path`. */
export function deviceFrom(path: string): PairedTwin {
    const s = readSettings(path)
    const hex = (k: string) => Buffer.from(String(s[k]), "hex")
    return {
        pairing: { deviceId: hex("TT_ID"), s: keyPairFromPrivate(hex("TT_SK")), gatewayPublic: hex("TT_GW_PK"), psk: hex("TT_PSK") },
        store: new MemoryTicketStore({ ticket: hex("TT_TICKET"), secret: hex("TT_RSECRET") }),
    }
}

/** Outcome of one device run. */
export interface DeviceRun {
    /** Exit code of `devs run` (0 when every device test passed). */
    code: number
    /** Everything the simulator printed (stdout and stderr). */
    out: string
    /** From the `tests: N, pass: P, error: E` summary; 0 when there is none. */
    passed: number
    failed: number
}

/**
 * Runs a device test program in the simulator and waits for it to exit.
 * @param entry path of the device program relative to the repository root,
 *     e.g. "test/e2e/device/framing-ok.ts"
 * @param env constants the program imports from "./env.generated"
 * @param opts.timeoutMs the simulator's own timeout for the whole file (`-T`), default 30000;
 *     the process is killed 15 s after that if it has not exited
 * @param opts.onLine called with every output line as it arrives (tests that react to the
 *     device while it runs)
 */
export async function runDevice(
    entry: string,
    env: Record<string, string | number>,
    opts: { timeoutMs?: number; onLine?: (line: string) => void } = {}
): Promise<DeviceRun> {
    const timeoutMs = opts.timeoutMs ?? 30000
    refuseInNodeLane(entry)
    writeEnv(env)
    return await new Promise<DeviceRun>((resolve, reject) => {
        const child = spawn(DEVS, ["run", "--test", "-k", "-T", String(timeoutMs), "--no-colors", entry], {
            cwd: ROOT,
            env: { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" },
            stdio: ["ignore", "pipe", "pipe"],
        })
        let out = ""
        const lines = lineSplitter(line => opts.onLine?.(line))
        const onData = (d: Buffer) => {
            out += d.toString()
            if (process.env["TETHER_TEST_VERBOSE"]) process.stderr.write(d)
            lines(d)
        }
        child.stdout.on("data", onData)
        child.stderr.on("data", onData)
        const killer = setTimeout(() => {
            out += `\n[harness] killed after ${timeoutMs + 15000} ms\n`
            child.kill("SIGKILL")
        }, timeoutMs + 15000)
        child.on("error", err => {
            clearTimeout(killer)
            reject(err)
        })
        child.on("close", code => {
            clearTimeout(killer)
            const m = /tests: (\d+), pass: (\d+), error: (\d+)/.exec(out)
            resolve({
                code: code ?? -1,
                out,
                passed: m ? Number(m[2]) : 0,
                failed: m ? Number(m[1]) - Number(m[2]) : 0,
            })
        })
    })
}

/**
 * Throws when this file runs in test/run-all.mjs's node lane (marked `// @lane node`), beside
 * the simulator lane: one simulator at a time, so a wrongly marked file fails instead of racing.
 */
export function refuseInNodeLane(what: string): void {
    if (process.env["TETHER_TEST_LANE"] === "node")
        throw new Error(`${what}: this test file is marked "// @lane node" but starts the simulator; remove the mark`)
}

/** Writes test/e2e/device/env.generated.ts (device runs must not overlap). */
export function writeEnv(env: Record<string, string | number>): void {
    writeFileSync(ENV_FILE, envModule(env))
}

/** Splits a stream into lines for a callback. */
function lineSplitter(onLine: (line: string) => void): (d: Buffer) => void {
    let rest = ""
    return d => {
        rest += d.toString()
        let i: number
        while ((i = rest.indexOf("\n")) >= 0) {
            onLine(rest.slice(0, i))
            rest = rest.slice(i + 1)
        }
    }
}

function envModule(env: Record<string, string | number>): string {
    let text = "// GENERATED by test/e2e/harness.ts for one device run: do not edit, not committed.\n"
    for (const [name, value] of Object.entries(env)) {
        if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`runDevice: bad env name ${name}`)
        if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`runDevice: ${name} is not finite`)
        text += `export const ${name} = ${JSON.stringify(value)}\n`
    }
    return text
}

/** Whether a device test program printed `E2E-PASS <name>` (see test/e2e/device/*.ts). */
export function devicePassed(run: DeviceRun, name: string): boolean {
    return new RegExp(`E2E-PASS ${name}\\b`).test(run.out)
}

// ---------------------------------------------------------------------------------------------
// Frames on the Node side: uint16_be length || type || body (PROTOCOL.md section 2.1). A small
// test twin of the device's src/net/frame.ts, independent of it on purpose.

/** PROTOCOL.md's MAX_FRAME_LEN: the largest length field (type + body). */
export { MAX_FRAME_LEN }

/** A frame as the harness sees it. */
export interface TestFrame {
    type: number
    body: Buffer
}

/** Encodes one frame; no size check, so tests can also build invalid ones. */
export function encodeFrame(type: number, body: Buffer): Buffer {
    const out = Buffer.alloc(3 + body.length)
    out.writeUInt16BE(1 + body.length, 0)
    out[2] = type
    body.copy(out, 3)
    return out
}

/** One accepted connection, with frame reassembly and event bookkeeping. */
export class FrameConn {
    private decoder = new FrameDecoder()
    private frames: TestFrame[] = []
    private waiters: (() => void)[] = []
    /** Set when the peer closed (end or error). */
    closed = false
    /** Set when the peer sent a length field outside 1..MAX_FRAME_LEN. */
    violation = false
    /** Promise resolved when the connection is closed by either side. */
    readonly done: Promise<void>

    constructor(readonly socket: net.Socket) {
        socket.setNoDelay(true)
        this.done = new Promise(resolve => {
            socket.on("close", () => {
                this.closed = true
                this.notify()
                resolve()
            })
        })
        socket.on("error", () => {}) // a reset by the device shows up as "close"
        socket.on("data", d => {
            if (this.violation) return
            try {
                // the gateway's own decoder (tether-gateway/wire); bodies copied out of the chunk
                for (const f of this.decoder.push(d)) this.frames.push({ type: f.type, body: Buffer.from(f.body) })
            } catch {
                // a length field of 0 or above MAX_FRAME_LEN (FrameError)
                this.violation = true
                socket.destroy()
            }
            this.notify()
        })
    }

    private notify() {
        const w = this.waiters
        this.waiters = []
        for (const f of w) f()
    }

    /** Next frame from the device; `null` once it closed; throws after `timeoutMs`. */
    async recvFrame(timeoutMs = 10000): Promise<TestFrame | null> {
        const deadline = Date.now() + timeoutMs
        for (;;) {
            const f = this.frames.shift()
            if (f) return f
            if (this.closed) return null
            const left = deadline - Date.now()
            if (left <= 0) throw new Error("FrameConn.recvFrame: timeout")
            await new Promise<void>(resolve => {
                const t = setTimeout(resolve, left)
                this.waiters.push(() => {
                    clearTimeout(t)
                    resolve()
                })
            })
        }
    }

    /** Writes bytes as one write. */
    write(data: Buffer): Promise<void> {
        return new Promise((resolve, reject) => this.socket.write(data, err => (err ? reject(err) : resolve())))
    }

    /** Sends one frame in one write. */
    sendFrame(type: number, body: Buffer): Promise<void> {
        return this.write(encodeFrame(type, body))
    }

    /** Writes `data` in chunks of `chunk` bytes, waiting `delayMs` between them. */
    async writeChunked(data: Buffer, chunk = 1, delayMs = 1): Promise<void> {
        for (let i = 0; i < data.length; i += chunk) {
            await this.write(data.subarray(i, i + chunk))
            if (delayMs > 0) await sleep(delayMs)
        }
    }

    /** Half-closes (FIN) after everything written so far. */
    end(): Promise<void> {
        return new Promise(resolve => this.socket.end(() => resolve()))
    }
}

/** A loopback server whose connections are handed to `onConn`. */
export interface FrameServer {
    port: number
    /** Connections accepted so far, in order. */
    conns: FrameConn[]
    /** Errors thrown by `onConn`, for the test to assert there are none. */
    errors: Error[]
    /** Settles once every `onConn` started so far has finished. */
    idle(): Promise<void>
    close(): Promise<void>
}

/**
 * Starts a plain `node:net` server on 127.0.0.1, port 0 (any free port).
 * @param onConn runs for each accepted connection; what it throws is collected in `errors`
 */
export async function startFrameServer(onConn: (conn: FrameConn, index: number) => Promise<void> | void): Promise<FrameServer> {
    const conns: FrameConn[] = []
    const errors: Error[] = []
    const running: Promise<void>[] = []
    const server = net.createServer(socket => {
        const conn = new FrameConn(socket)
        const index = conns.length
        conns.push(conn)
        running.push(
            (async () => {
                try {
                    await onConn(conn, index)
                } catch (e) {
                    errors.push(e instanceof Error ? e : new Error(String(e)))
                    socket.destroy()
                }
            })()
        )
    })
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(0, "127.0.0.1", () => resolve())
    })
    const addr = server.address()
    if (!addr || typeof addr === "string") throw new Error("startFrameServer: no port")
    return {
        port: addr.port,
        conns,
        errors,
        idle: async () => {
            await Promise.all(running)
        },
        close: () =>
            new Promise<void>(resolve => {
                for (const c of conns) c.socket.destroy()
                server.close(() => resolve())
            }),
    }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
    return new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `pred` every 10 ms until it holds (true) or `ms` have passed (false). */
export async function until(pred: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
    const end = Date.now() + ms
    while (!(await pred())) {
        if (Date.now() > end) return false
        await sleep(10)
    }
    return true
}
