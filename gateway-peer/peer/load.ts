// Load driver for the load test and the bench: many devices in one Node process, each the
// package's own initiator (session/initiator.ts) with the application twin (device-app.ts),
// and a flood of garbage connections. The gateway under load runs in another process
// (load-gateway.ts) so both sides get a core and its memory is measured alone.
import { fork, type ChildProcess } from "node:child_process"
import { connect as netConnect } from "node:net"
import { fileURLToPath } from "node:url"
import { randomBytes } from "../src/crypto/random.js"
import { generateKeyPair, type KeyPair } from "../src/crypto/x25519.js"
import { newDevice, type DeviceRecord } from "../src/registry/registry.js"
import type { ServerPolicy } from "../src/server.js"
import { MemoryTicketStore, RejectedError, TetherClient } from "./initiator.js"
import { encodeHsInit } from "../src/session/handshake.js"
import { encodeResumeInit, type ResumeTicket } from "../src/session/resume.js"
import { mintTicket, TicketKeySet } from "../src/tickets.js"
import { Code, DEVICE_ID_LEN, encodeFrame, FrameType, HS_INIT_MESSAGE_LEN, AGE_LEN, NONCE_I_LEN, TAG_LEN, TICKET_LEN } from "../src/wire.js"
import { AppClient } from "./device-app.js"

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** What the gateway process needs: the identity, ticket keys and device records (JSON-safe). */
export interface LoadGatewaySetup {
    identity: { privateKey: string; publicKey: string }
    ticketKeys: { id: number; key: string }[]
    devices: { id: string; name: string; publicKey: string; psk: string; issued: number }[]
    policy?: Partial<ServerPolicy>
}

/** A fleet of paired devices and the gateway state they were paired with. */
export interface Fleet {
    setup: LoadGatewaySetup
    identity: KeyPair
    clients: AppClient[]
}

/**
 * Pairs `n` devices for a gateway on host:port. Devices with an index below `withTicket`
 * start with an out-of-band ticket (their first connection resumes), the others with none
 * (a full handshake).
 */
export function makeFleet(opts: {
    n: number
    withTicket: number
    host: string
    policy?: Partial<ServerPolicy>
}): Fleet & { connectTo(port: number): void } {
    const now = Math.floor(Date.now() / 1000)
    const identity = generateKeyPair()
    const ticketKey = randomBytes(32)
    const keySet = TicketKeySet.fromKeys([{ id: 0, key: ticketKey }])
    const devices: LoadGatewaySetup["devices"] = []
    const clients: AppClient[] = []
    const ports: { port: number }[] = []
    for (let i = 0; i < opts.n; i++) {
        const s = generateKeyPair()
        const deviceId = randomBytes(8)
        const psk = randomBytes(32)
        let ticket: ResumeTicket | undefined
        if (i < opts.withTicket) {
            const t = mintTicket({ deviceId, generation: 1, issuedAt: now, chainOrigin: 1, keySet, kind: "oob" })
            ticket = { ticket: t.ticket, secret: t.resumptionSecret }
        }
        devices.push({
            id: deviceId.toString("hex"),
            name: `load-${i}`,
            publicKey: s.publicKey.toString("hex"),
            psk: psk.toString("hex"),
            issued: ticket ? 1 : 0,
        })
        const target = { port: 0 }
        ports.push(target)
        const client = new TetherClient({
            pairing: { deviceId, s, psk, gatewayPublic: identity.publicKey },
            store: new MemoryTicketStore(ticket),
            host: opts.host,
            get port() {
                return target.port
            },
            timeoutMs: 30000,
        })
        clients.push(new AppClient(client))
    }
    const setup: LoadGatewaySetup = {
        identity: { privateKey: identity.privateKey.toString("hex"), publicKey: identity.publicKey.toString("hex") },
        ticketKeys: [{ id: 0, key: ticketKey.toString("hex") }],
        devices,
        // the whole fleet connects from one loopback address: the per-source limits, which
        // would see it as one flooding source, are lifted unless the caller sets them
        policy: { perSourceConnections: Number.MAX_SAFE_INTEGER, perSourceAttempts: Number.MAX_SAFE_INTEGER, ...opts.policy },
    }
    return { setup, identity, clients, connectTo: port => ports.forEach(p => (p.port = port)) }
}

/** Device records for a registry, from a setup. */
export function setupRecords(setup: LoadGatewaySetup): DeviceRecord[] {
    return setup.devices.map(d => {
        // pairing's state: generation 1 issued (the out-of-band ticket, if the device got one)
        return newDevice({ id: d.id, name: d.name, publicKey: Buffer.from(d.publicKey, "hex"), psk: Buffer.from(d.psk, "hex"), now: 0 })
    })
}

/** Counts of a connect phase. */
export interface ConnectReport {
    ms: number
    full: number
    resumed: number
    busyRetries: number
    errors: string[]
}

/**
 * Connects every client, at most `window` connection attempts in flight; REJECT(BUSY) is
 * retried with a jittered backoff (the gateway's handshake cap at work).
 */
export async function connectAll(clients: AppClient[], window = 256): Promise<ConnectReport> {
    const report: ConnectReport = { ms: 0, full: 0, resumed: 0, busyRetries: 0, errors: [] }
    const t0 = performance.now()
    let next = 0
    const worker = async () => {
        for (;;) {
            const c = clients[next++]
            if (c === undefined) return
            for (let attempt = 0; ; attempt++) {
                try {
                    const conn = await c.connect()
                    if (conn.resumed) report.resumed++
                    else report.full++
                    break
                } catch (err) {
                    if (err instanceof RejectedError && err.code === Code.BUSY && attempt < 100) {
                        report.busyRetries++
                        await sleep(5 + Math.random() * 20 * Math.min(attempt + 1, 10))
                        continue
                    }
                    report.errors.push(err instanceof Error ? err.message : String(err))
                    break
                }
            }
        }
    }
    await Promise.all(Array.from({ length: Math.min(window, clients.length) }, worker))
    report.ms = performance.now() - t0
    return report
}

/** Every client publishes `n` messages; resolves when the gateway acknowledged all of them. */
export async function publishAll(clients: AppClient[], n: number, tag: string, timeoutMs = 60000): Promise<void> {
    for (const c of clients) for (let i = 0; i < n; i++) c.publish(tag, Buffer.from(`${tag}:${i}`))
    await Promise.all(clients.map(c => c.settled(timeoutMs)))
}

/** Tears every connection down without CLOSE (radios lost). */
export async function dropAll(clients: AppClient[]): Promise<void> {
    await Promise.all(clients.map(c => c.drop()))
}

/** Counts of a garbage flood. */
export interface FloodReport {
    connections: number
    /** closed by the gateway (not by us) */
    closedByGateway: number
    rejects: Record<string, number>
}

/**
 * Opens `n` garbage connections (at most `window` at once): random bytes, zero and oversized
 * lengths, records before a handshake, HS_INIT for unknown devices, RESUME_INIT with forged
 * tickets, and silent connections that only the handshake timeout ends. Resolves when the
 * gateway has closed every one of them (or `timeoutMs` passed for one).
 */
export async function garbageFlood(
    host: string,
    port: number,
    n: number,
    opts: { window?: number; timeoutMs?: number } = {}
): Promise<FloodReport> {
    const report: FloodReport = { connections: 0, closedByGateway: 0, rejects: {} }
    const kinds = [
        () => randomBytes(1 + Math.floor(Math.random() * 1500)),
        () => Buffer.from([0, 0, 1]),
        () => Buffer.from([0xff, 0xff, 1, 2, 3]),
        () => encodeFrame(FrameType.RECORD, randomBytes(40)),
        () => encodeFrame(FrameType.HS_INIT, encodeHsInit(randomBytes(DEVICE_ID_LEN), randomBytes(HS_INIT_MESSAGE_LEN))),
        () =>
            encodeFrame(
                FrameType.RESUME_INIT,
                encodeResumeInit(randomBytes(TICKET_LEN), randomBytes(AGE_LEN), randomBytes(NONCE_I_LEN), randomBytes(TAG_LEN))
            ),
        () => encodeFrame(FrameType.HS_INIT, encodeHsInit(randomBytes(DEVICE_ID_LEN), randomBytes(HS_INIT_MESSAGE_LEN), 9)),
        () => Buffer.alloc(0), // silent
    ]
    let next = 0
    const one = (i: number) =>
        new Promise<void>(resolve => {
            const s = netConnect({ host, port })
            let got = Buffer.alloc(0)
            let gaveUp = false
            const timer = setTimeout(() => {
                gaveUp = true
                s.destroy()
            }, opts.timeoutMs ?? 30000)
            s.on("connect", () => {
                report.connections++
                const bytes = (kinds[i % kinds.length] as () => Buffer)()
                if (bytes.length > 0) s.write(bytes)
            })
            s.on("data", d => (got = Buffer.concat([got, d])))
            s.on("error", () => {})
            s.on("close", () => {
                clearTimeout(timer)
                if (!gaveUp) report.closedByGateway++
                if (got.length >= 4 && got[2] === FrameType.REJECT) {
                    const code = String(got[3])
                    report.rejects[code] = (report.rejects[code] ?? 0) + 1
                }
                resolve()
            })
            s.on("end", () => s.end())
        })
    const worker = async () => {
        for (;;) {
            const i = next++
            if (i >= n) return
            await one(i)
        }
    }
    await Promise.all(Array.from({ length: Math.min(opts.window ?? 1000, n) }, worker))
    return report
}

/** The gateway under load, in a child process. */
export interface LoadGateway {
    readonly port: number
    readonly child: ChildProcess
    /** the gateway process's memory after a full GC */
    memory(): Promise<NodeJS.MemoryUsage>
    stats(): Promise<{ connections: number; sessions: number; handshakes: number; published: number; order: boolean }>
    /** makes the gateway send one MESSAGE to each named device */
    sendMessages(names: string[], payload: string): Promise<void>
    stop(): Promise<void>
}

/** Forks load-gateway.js with a setup; resolves when it listens. */
export async function forkGateway(setup: LoadGatewaySetup): Promise<LoadGateway> {
    const child = fork(fileURLToPath(new URL("./load-gateway.js", import.meta.url)), [], {
        execArgv: ["--expose-gc"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
    })
    let seq = 0
    const waiting = new Map<number, (v: unknown) => void>()
    child.on("message", (m: { seq: number; value: unknown }) => {
        waiting.get(m.seq)?.(m.value)
        waiting.delete(m.seq)
    })
    const call = <T>(op: string, arg?: unknown): Promise<T> =>
        new Promise((resolve, reject) => {
            const s = ++seq
            waiting.set(s, v => resolve(v as T))
            child.send({ seq: s, op, arg }, err => err && reject(err))
        })
    const exited = new Promise<void>(r => child.on("exit", () => r()))
    const port = await call<number>("start", setup)
    return {
        port,
        child,
        memory: () => call("memory"),
        stats: () => call("stats"),
        sendMessages: (names, payload) => call("send", { names, payload }),
        async stop() {
            await call("stop")
            child.disconnect()
            await exited
        },
    }
}
