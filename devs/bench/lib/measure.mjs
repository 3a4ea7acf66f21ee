// The measurements of the TLS comparison, the same for every peer (TLS or Tether):
//
//   bytes       both directions at the raw TCP socket, for the handshake up to the point where
//               both sides have finished it; ticket issuance (TLS NewSessionTicket, Tether's
//               TICKET record) is counted separately as what arrives after the client was ready.
//               Tether issues its ticket only after the client's first record (PROTOCOL.md 6.3):
//               a peer whose conn has confirm() sends that record when ready, and its bytes
//               (application data) are counted in neither figure
//   round trips time from TCP connect to "client may send application data" through a proxy
//               that delays each direction by D ms, divided by 2D and rounded
//   handshakes  per second of the server's own CPU time (server in a child process, clients in
//               this one): the gateway-side cost on one core
//   throughput  MB/s of application data in 1 KiB writes over one established connection
//
// A peer: { name, server: { kind, config }, prepare?(port), finish?(), connect(port) -> conn }
// with conn { raw, connected: Promise<ms>, ready: Promise<ms>, write(buf) -> boolean,
// waitDrain(), onData(f), close() } and optionally confirm() -> bytes written, ticket: Promise
// (settles when the connection's ticket is stored) and failure: Promise (rejects on the
// connection's first error after `ready`, so that a wait on the peer's answer fails instead of
// hanging). finish() throws an error the peer's connections met where nobody was waiting. The
// server answers a trailing "!" of application data with "!".
import { fork } from "node:child_process"
import { join, dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { startDelayProxy } from "./delay-proxy.mjs"

const here = dirname(fileURLToPath(import.meta.url))
const sleep = ms => new Promise(r => setTimeout(r, ms))

/** `p`, or the connection's failure if that comes first. */
export const guarded = (c, p) => (c.failure ? Promise.race([p, c.failure]) : p)

/** Starts a peer's server in a child process; returns { port, cpu(), stats(), stop() }. */
export async function startServerProcess(server) {
    const child = fork(join(here, "server-proc.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    const ask = msg =>
        new Promise((resolve, reject) => {
            child.once("message", m => (m.error ? reject(new Error(m.error)) : resolve(m)))
            child.send(msg)
        })
    const { port } = await ask({ cmd: "start", kind: server.kind, config: server.config })
    return {
        port,
        cpu: async () => (await ask({ cmd: "cpu" })).cpu,
        stats: async () => (await ask({ cmd: "stats" })).stats,
        stop: () => {
            child.send({ cmd: "stop" })
            return new Promise(r => child.once("exit", r))
        },
    }
}

/** Handshake and ticket bytes of one connection, counted at the client's raw socket. */
export async function measureBytes(peer, port) {
    const c = peer.connect(port)
    await c.ready
    const readAtReady = c.raw.bytesRead
    const app = c.confirm ? c.confirm() : 0 // Tether: the first record, which brings the TICKET
    await sleep(150) // let the client's last flight and any tickets cross
    if (c.ticket) await guarded(c, c.ticket)
    const written = c.raw.bytesWritten - app
    const r = {
        clientToServer: written,
        serverToClient: readAtReady,
        handshake: written + readAtReady,
        tickets: c.raw.bytesRead - readAtReady,
    }
    c.close()
    return r
}

/** Round trips before the client may send application data, through a delaying proxy. */
export async function measureRoundTrips(peer, port, delayMs = 40) {
    const proxy = await startDelayProxy(port, delayMs)
    try {
        const c = peer.connect(proxy.port)
        const t0 = await c.connected
        const t1 = await c.ready
        c.close()
        return { roundTrips: Math.round((t1 - t0) / (2 * delayMs)), ms: t1 - t0 }
    } finally {
        await proxy.close()
    }
}

/** Handshakes per second of server CPU: `count` handshakes, `parallel` at a time. */
export async function measureHandshakeRate(peer, srv, count, parallel = 8) {
    const before = await srv.cpu()
    let next = 0
    const worker = async () => {
        while (next < count) {
            next++
            const c = peer.connect(srv.port)
            await c.ready
            // wait for the server's side of the handshake to be done: a round trip of data
            await probe(c)
            c.close()
        }
    }
    await Promise.all(Array.from({ length: parallel }, worker))
    const used = (await srv.cpu()) - before
    return count / (used / 1e6)
}

function probe(c) {
    return guarded(
        c,
        new Promise(resolve => {
            c.onData(d => {
                if (d.length && d[d.length - 1] === 0x21) resolve()
            })
            c.write(Buffer.from("!"))
        })
    )
}

/** MB/s of 1 KiB application writes over one connection, until the server has them all. */
export async function measureThroughput(peer, port, totalBytes = 8 << 20, recordSize = 1024) {
    const c = peer.connect(port)
    await c.ready
    await probe(c) // handshake and tickets out of the way
    const chunk = Buffer.alloc(recordSize, 0)
    const t0 = performance.now()
    const done = new Promise(resolve => c.onData(d => d.length && d[d.length - 1] === 0x21 && resolve()))
    for (let sent = 0; sent < totalBytes; sent += recordSize) {
        if (!c.write(chunk)) await guarded(c, c.waitDrain())
    }
    c.write(Buffer.from("!"))
    await guarded(c, done)
    const s = (performance.now() - t0) / 1000
    c.close()
    return totalBytes / s / 1e6
}
