// `tether-gateway serve` as the perf group's workers figure runs it (issue 15, every core): the
// real CLI on a SQLite state directory with `--workers N`, and a fleet of Node twin devices
// (TetherClient and DeviceApp) paired into that directory. One measured connection is what a
// battery device does after a radio drop: a resumption carrying a STREAM and one 64-byte
// PUBLISH as early data, the gateway's ACK, CLOSE. Its CPU is the whole process tree's (the
// primary and every worker, from /proc: user + system clock ticks), read before and after.
import { spawn, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(fileURLToPath(import.meta.url), "..", "..", "..", "..")
const CLI = join(root, "gateway-peer", "bin", "tether-gateway.js")
const TICK_US = 1e6 / 100 // USER_HZ: the kernel's clock ticks in /proc/<pid>/stat

/** CPU µs of `pid` and its children (utime + stime of each, from /proc). */
function treeCpuUs(pid) {
    const kids = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
        .stdout.split("\n")
        .filter(x => x.length > 0)
    let ticks = 0
    for (const p of [String(pid), ...kids]) {
        try {
            const f = readFileSync(`/proc/${p}/stat`, "utf8")
            const fields = f.slice(f.lastIndexOf(")") + 2).split(" ")
            ticks += Number(fields[11]) + Number(fields[12]) // utime, stime
        } catch {
            // gone meanwhile
        }
    }
    return ticks * TICK_US
}

/**
 * A state directory with `n` devices paired into it (named PREFIX-i); their clients (tickets
 * kept in memory, the first one the out-of-band ticket unless `ticket` is false: then the first
 * connection is a full handshake).
 */
export async function pairFleet(stateDir, n, { prefix = "fleet", ticket = true } = {}) {
    const [gateway, peer] = await Promise.all([import("tether-gateway"), import("tether-gateway/peer")])
    const store = await gateway.initStore({ stateDir })
    const devices = []
    try {
        const ticketKeys = await store.loadTicketKeys()
        const gatewayPublic = (await store.loadIdentity()).publicKey
        const now = Math.floor(Date.now() / 1000)
        for (let i = 0; i < n; i++) {
            const p = await gateway.pairDevice({ registry: store.registry, ticketKeys, name: `${prefix}-${i}`, now })
            const dev = { port: 0, app: new peer.DeviceApp() }
            dev.client = new peer.TetherClient({
                pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic },
                store: new peer.MemoryTicketStore(ticket ? p.ticket : undefined),
                host: "127.0.0.1",
                get port() {
                    return dev.port
                },
                timeoutMs: 30000,
            })
            devices.push(dev)
        }
    } finally {
        await store.close()
    }
    return devices
}

/** Starts `serve --workers N` on the state directory; resolves once it accepts connections. */
export async function startServe(stateDir, workers) {
    const { freePort } = await import("tether-gateway/peer")
    const port = await freePort()
    // the log at warn (TLS logs nothing either), and the fleet comes from one address: the
    // per-source limits would refuse it
    const args = ["serve", "--state", stateDir, "--port", String(port), "--workers", String(workers), "--log-level", "warn"]
    args.push("--per-source-attempts", "1000000000", "--per-source-connections", "1000000000", "--max-concurrent-handshakes", "100000")
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    let err = ""
    child.stderr.on("data", d => (err += d))
    let exited = false
    child.once("exit", () => (exited = true))
    for (let i = 0; ; i++) {
        if (exited) throw new Error(`serve --workers ${workers} exited: ${err}`)
        if (await accepts(port)) break
        if (i > 300) throw new Error(`serve --workers ${workers} did not listen on ${port}`)
        await new Promise(r => setTimeout(r, 50))
    }
    await new Promise(r => setTimeout(r, 1000)) // the other workers: they share the socket once forked
    return handle(child, port)
}

/** Whether a TCP connection to the port is accepted. */
function accepts(port) {
    return new Promise(resolve => {
        const s = net.connect(port, "127.0.0.1")
        s.once("connect", () => {
            s.destroy()
            resolve(true)
        })
        s.once("error", () => resolve(false))
    })
}

function handle(child, port) {
    return {
        port,
        cpu: async () => treeCpuUs(child.pid),
        stop: () =>
            new Promise(resolve => {
                child.once("exit", () => resolve())
                child.kill("SIGTERM")
            }),
    }
}

/**
 * `count` connections of the fleet, `parallel` at a time: each a resumption with a STREAM and a
 * PUBLISH as early data, until the gateway's ACK, then CLOSE.
 * @returns connections per wall-second and gateway CPU µs per connection
 */
export async function fleetRate(devices, srv, count, parallel) {
    for (const d of devices) d.port = srv.port
    const cpu0 = await srv.cpu()
    const t0 = performance.now()
    let next = 0
    const free = [...devices]
    const lane = async () => {
        while (next < count) {
            next++
            const d = free.pop()
            if (d === undefined) throw new Error("serve-fleet: more lanes than devices")
            d.app.publish("t", Buffer.alloc(64, 1))
            const [first, ...more] = d.app.sessionStart()
            const conn = await d.client.connect(first)
            for (const c of more) conn.send(c)
            while (d.app.send.unacked > 0) {
                const c = await conn.recv(30000)
                if (c === null || c === undefined) throw new Error(`serve-fleet: connection ended (close code ${conn.closeCode})`)
                for (const out of d.app.data(c)) conn.send(out)
            }
            conn.close()
            free.unshift(d)
        }
    }
    await Promise.all(Array.from({ length: parallel }, lane))
    const wall = (performance.now() - t0) / 1000
    return { perWallSecond: count / wall, cpuUsPerConnection: ((await srv.cpu()) - cpu0) / count }
}
