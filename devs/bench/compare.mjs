// Tether next to TLS 1.3 (node:tls, loopback), measured in the same run: bytes on the wire,
// round trips before the client can send, gateway-side handshakes per second on one core, and
// record throughput for 1 KiB records next to raw aes-256-ccm from node:crypto; then Tether's
// version 2 byte budget, frame by frame and field by field (tether-peers.mjs tetherBudget).
import { createCipheriv, randomBytes } from "node:crypto"
import { tlsPeers } from "./lib/tls-peers.mjs"
import { startServerProcess, measureBytes, measureRoundTrips, measureHandshakeRate, measureThroughput } from "./lib/measure.mjs"

const RUNS = 5

/** Raw AES-256-CCM (13-byte nonce, 16-byte tag) over 1 KiB messages, MB/s, in this process. */
function rawCcmThroughput(totalBytes = 16 << 20) {
    const key = randomBytes(32)
    const nonce = Buffer.alloc(13)
    const msg = Buffer.alloc(1024)
    const t0 = performance.now()
    for (let i = 0; i < totalBytes / 1024; i++) {
        nonce.writeUInt32BE(i, 9)
        const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
        c.setAAD(Buffer.alloc(0), { plaintextLength: msg.length })
        c.update(msg)
        c.final()
        c.getAuthTag()
    }
    return totalBytes / ((performance.now() - t0) / 1000) / 1e6
}

export async function run(ctx) {
    const { median, spread } = ctx
    const figures = []
    const peers = [...(await tlsPeers())]
    let tether
    try {
        tether = await import("./lib/tether-peers.mjs")
        peers.push(...(await tether.tetherPeers()))
    } catch (e) {
        if (e.code !== "ERR_MODULE_NOT_FOUND") throw e
    }
    for (const peer of peers) {
        const srv = await startServerProcess(peer.server)
        try {
            if (peer.prepare) await peer.prepare(srv.port)
            const bytes = []
            for (let i = 0; i < RUNS; i++) bytes.push(await measureBytes(peer, srv.port))
            const rtts = []
            for (let i = 0; i < 3; i++) rtts.push((await measureRoundTrips(peer, srv.port)).roundTrips)
            const rates = []
            for (let i = 0; i < RUNS; i++) rates.push(await measureHandshakeRate(peer, srv, 200))
            const tput = []
            for (let i = 0; i < 3; i++) tput.push(await measureThroughput(peer, srv.port))
            const hs = bytes.map(b => b.handshake)
            const tk = bytes.map(b => b.tickets)
            // a peer may say what its rows count (peer.notes.bytes, .tickets, .rtt, .rate, .tput)
            const more = key => (peer.notes?.[key] ? `; ${peer.notes[key]}` : "")
            figures.push(
                {
                    name: `${peer.name}: handshake bytes`,
                    value: median(hs),
                    unit: "B",
                    note: `${RUNS} runs, ${spread(hs)}; client→server ${median(bytes.map(b => b.clientToServer))}, server→client ${median(bytes.map(b => b.serverToClient))}${more("bytes")}`,
                },
                { name: `${peer.name}: ticket bytes`, value: median(tk), unit: "B", note: `${RUNS} runs, ${spread(tk)}${more("tickets")}` },
                {
                    name: `${peer.name}: round trips before client data`,
                    value: median(rtts),
                    unit: "RTT",
                    note: `3 runs through a 40 ms/direction proxy, ${spread(rtts)}${more("rtt")}`,
                },
                {
                    name: `${peer.name}: gateway handshakes/s (one core)`,
                    value: median(rates),
                    unit: "hs/s",
                    note: `${RUNS} runs of 200 by server CPU time, ${spread(rates)}${more("rate")}`,
                },
                {
                    name: `${peer.name}: 1 KiB record throughput`,
                    value: median(tput),
                    unit: "MB/s",
                    note: `3 runs of 8 MiB, ${spread(tput)}${more("tput")}`,
                }
            )
            if (peer.finish) await peer.finish() // an error no measurement was waiting for fails the run
        } finally {
            await srv.stop()
        }
    }
    // Tether's version 2 byte budget, from the frames on the wire
    if (tether) figures.push(...(await tether.tetherBudget(ctx)))
    const raw = []
    for (let i = 0; i < RUNS; i++) raw.push(rawCcmThroughput())
    figures.push({
        name: "node:crypto aes-256-ccm, 1 KiB messages (reference)",
        value: median(raw),
        unit: "MB/s",
        note: `${RUNS} runs of 16 MiB in-process, ${spread(raw)}`,
    })
    return figures
}
