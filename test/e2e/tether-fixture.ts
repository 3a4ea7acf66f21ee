// Fixtures of the Tether end-to-end tests against the real gateway (gateway-peer/src/server.ts):
//
// - startRealGateway: startGateway with a real state directory (initState in a temporary
//   directory), a SQLite or in-memory registry, devices paired with the real pairDevice; it
//   records the connection log, the DATA delivered to the application and the gateway's
//   X25519 count, and answers each DATA with "ack:" + content (the device programs expect it);
// - FrameProxy: a recording TCP proxy between the device and the gateway that sees whole
//   frames and can drop, alter or cut them (capture for replay, torn connections, tampering);
// - runDeviceLive: harness.ts's runDevice, whose onLine hands each output line to the test as it
//   comes, for scenarios where Node acts in the middle of a device run.
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
    type DeviceRecord,
    type Gateway,
    type GatewayState,
    initState,
    type LogLine,
    MemoryRegistry,
    pairDevice,
    type Paired,
    type Registry,
    type ServerPolicy,
    SqliteRegistry,
    startGateway,
    x25519,
    x25519Base,
} from "tether-gateway"
import { encodeFrame, FrameDecoder } from "tether-gateway/wire"

/** A log line of the gateway, with the gateway's X25519 count when it was written. */
export type GwLog = LogLine & { dh: number }

/** The real gateway on loopback, with what the tests look at. */
export interface RealGateway {
    gw: Gateway
    port: number
    state: GatewayState
    registry: Registry
    dir: string
    /** connection events, in order */
    logs: GwLog[]
    /** DATA contents delivered to the application, early data included, in order */
    delivered: { device: string; content: string }[]
    /** X25519 operations the gateway ran */
    dh: { n: number }
    /** Pairs a device with the real pairDevice (record, key pair, PSK, out-of-band ticket). */
    pair(name: string): Promise<Paired>
    /** How many times `content` was delivered (for any device). */
    count(content: string): number
    /** Log lines with this outcome (and device name, when given). */
    outcomes(outcome: string, deviceName?: string): GwLog[]
    close(): Promise<void>
}

/** Seconds since the Unix epoch. */
export const nowSeconds = () => Math.floor(Date.now() / 1000)

/**
 * Starts the real gateway with a new state directory.
 * @param opts.sqlite use a SQLite registry in the state directory (default in-memory)
 * @param opts.onData called for each DATA before the default "ack:" answer; return true to
 *     answer yourself
 */
export async function startRealGateway(
    opts: {
        sqlite?: boolean
        policy?: Partial<ServerPolicy>
        onData?: (g: RealGateway, device: DeviceRecord, content: string) => boolean
    } = {}
): Promise<RealGateway> {
    const dir = mkdtempSync(join(tmpdir(), "tether-e2e-"))
    const state = initState(join(dir, "state"))
    const registry: Registry = opts.sqlite ? new SqliteRegistry(state.registryPath, { create: true }) : new MemoryRegistry()
    const logs: GwLog[] = []
    const delivered: RealGateway["delivered"] = []
    const dh = { n: 0 }
    let self: RealGateway | undefined
    const gw = await startGateway({
        registry,
        state,
        policy: opts.policy,
        log: l => logs.push({ ...l, dh: dh.n }),
        dh: {
            x25519: (a, b) => {
                dh.n++
                return x25519(a, b)
            },
            x25519Base: a => {
                dh.n++
                return x25519Base(a)
            },
        },
        onData: (device, content) => {
            const text = content.toString()
            delivered.push({ device: device.name, content: text })
            if (self && opts.onData?.(self, device, text)) return
            gw.send(device.id, Buffer.from("ack:" + text))
        },
    })
    self = {
        gw,
        port: gw.port,
        state,
        registry,
        dir,
        logs,
        delivered,
        dh,
        pair: name => pairDevice({ registry, ticketKeys: state.ticketKeys, name, now: nowSeconds() }),
        count: content => delivered.filter(d => d.content === content).length,
        outcomes: (outcome, deviceName) =>
            logs.filter(l => l["outcome"] === outcome && (deviceName === undefined || l["deviceName"] === deviceName)),
        close: async () => {
            await gw.close()
            await registry.close()
            rmSync(dir, { recursive: true, force: true })
        },
    }
    return self
}

// ---------------------------------------------------------------------------------------------
// A recording frame proxy.

/** "up": device -> gateway; "down": gateway -> device. */
export type Dir = "up" | "down"

/** A frame as the proxy saw it. */
export interface ProxyFrame {
    /** connection index, in accept order */
    conn: number
    dir: Dir
    type: number
    /** the whole frame, length and type included */
    raw: Buffer
}

/** What to do with a frame: forward it, drop it, forward other bytes, and maybe cut after. */
export type Verdict = { action: "pass" | "drop"; cut?: boolean; replace?: Buffer }

/** A TCP proxy on 127.0.0.1 that forwards whole frames and records them. */
export class FrameProxy {
    readonly frames: ProxyFrame[] = []
    /** Decides each frame's fate; default: pass. */
    hook: ((f: ProxyFrame) => Verdict | undefined) | undefined
    private conns = 0
    private sockets = new Set<net.Socket>()

    private constructor(
        private server: net.Server,
        readonly port: number
    ) {}

    /** Starts a proxy to 127.0.0.1:`target`. */
    static async start(target: number): Promise<FrameProxy> {
        const server = net.createServer()
        await new Promise<void>((resolve, reject) => {
            server.once("error", reject)
            server.listen(0, "127.0.0.1", () => resolve())
        })
        const addr = server.address()
        if (!addr || typeof addr === "string") throw new Error("FrameProxy: no port")
        const proxy = new FrameProxy(server, addr.port)
        server.on("connection", down => proxy.accept(down, target))
        return proxy
    }

    private accept(device: net.Socket, target: number) {
        const conn = this.conns++
        const gateway = net.connect(target, "127.0.0.1")
        for (const s of [device, gateway]) {
            s.setNoDelay(true)
            s.on("error", () => {})
            this.sockets.add(s)
            s.on("close", () => this.sockets.delete(s))
        }
        let cut = false
        const cutBoth = () => {
            cut = true
            device.destroy()
            gateway.destroy()
        }
        const pipe = (from: net.Socket, to: net.Socket, dir: Dir) => {
            // the gateway's own decoder; `unsent` holds the bytes of the frame it is gathering
            const decoder = new FrameDecoder()
            let unsent = Buffer.alloc(0)
            let raw = false
            from.on("data", d => {
                if (cut) return
                if (raw) return void to.write(d)
                let frames
                try {
                    frames = decoder.push(d)
                } catch {
                    // not frames any more (a bad length field): pass every byte not yet
                    // forwarded through as it is, and all that follows
                    raw = true
                    to.write(Buffer.concat([unsent, d]))
                    return
                }
                unsent = decoder.buffered > 0 ? Buffer.from(Buffer.concat([unsent, d]).subarray(-decoder.buffered)) : Buffer.alloc(0)
                for (const frame of frames) {
                    const f: ProxyFrame = { conn, dir, type: frame.type, raw: encodeFrame(frame.type, frame.body) }
                    this.frames.push(f)
                    const v = this.hook?.(f) ?? { action: "pass" }
                    if (v.action === "pass") to.write(v.replace ?? f.raw)
                    if (v.cut) {
                        // let what was written leave before the reset
                        to.end(() => cutBoth())
                        cut = true
                        return
                    }
                }
            })
            from.on("close", () => {
                if (!cut) to.end()
            })
        }
        pipe(device, gateway, "up")
        pipe(gateway, device, "down")
    }

    /** Frames of one connection and direction. */
    of(conn: number, dir: Dir): ProxyFrame[] {
        return this.frames.filter(f => f.conn === conn && f.dir === dir)
    }

    async close(): Promise<void> {
        for (const s of this.sockets) s.destroy()
        await new Promise<void>(resolve => this.server.close(() => resolve()))
    }
}

// ---------------------------------------------------------------------------------------------
// Device runs with live output: harness.ts's runDevice and writeEnv serve both.

export { runDevice as runDeviceLive, writeEnv } from "./harness.js"

/** The `BENCH name value` lines a device printed. */
export function benchLines(run: { out: string }): string[] {
    return run.out
        .split("\n")
        .filter(l => l.includes("BENCH "))
        .map(l => l.replace(/^.*BENCH /, "BENCH "))
}
