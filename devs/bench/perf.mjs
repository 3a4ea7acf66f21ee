// The gateway's performance against its references (issue 15), warm and fair, in one run:
//
//   servers     each in a child process of its own (lib/server-proc.mjs), so that its CPU time
//               (process.cpuUsage of that process) is the gateway's alone; the clients run here:
//                 TLS 1.3 external PSK      node:tls, psk_dhe_ke (one ECDHE: half our asymmetric work)
//                 TLS 1.3 resumed           node:tls certificate server, resumed with a session ticket
//                 Tether full (KKpsk2)      the real startGateway on a SQLite registry with every PSK
//                                           sealed under a KEK (what `serve` uses), connection log off
//                 Tether resumed            the same, with session tickets (0 X25519)
//                 floor: TCP                accept, the round trips and frame sizes of a Tether
//                                           connection, close (lib/tcp-server.mjs)
//                 floor: stubbed X25519     Tether full on the same SQLite registry with X25519
//                                           memoized by a bench-only loader hook
//                                           (lib/x25519-hook.mjs, lib/x25519-stub.mjs): the plumbing
//                                           and the symmetric crypto, without the scalar
//                                           multiplications
//               Every server is warmed with WARM connections (V8 compiles the gateway's JavaScript
//               for thousands of connections before its cost settles), then RUNS interleaved
//               runs of COUNT connections each (the server order rotates per run): medians and
//               min..max spreads, gateway CPU per handshake. A connection is the handshake, a
//               round trip of application data (the probe: "!" answered by "!"; on Tether the
//               first record confirms the session and brings the TICKET), close.
//   crypto limit  1/(3 DH + 1 key generation) in raw node:crypto (KeyObjects made once, in this
//               process's CPU time), interleaved with the runs: a full handshake's asymmetric work
//               on the gateway (es, ee, se; ss cached per pairing; its ephemeral)
//   records     gateway CPU per MB of 1 KiB application writes over one warm connection (a
//               Tether 1 KiB write is two DATA records, 1006 + 18 B: MAX_FRAME_LEN is 1024), next
//               to raw aes-256-ccm over 1 KiB messages in this process, CPU per MB
//   telemetry   64 devices (the Node twin of the device: TetherClient and DeviceApp), each with
//               WINDOW 64-byte PUBLISH messages in flight, one per DATA record, into a gateway
//               node on its SQLite store with the application layer (startNode on openStore, the
//               way `serve` runs: receiving state stored before each ACK); next to 64 MQTT 3.1.1
//               clients publishing the same at QoS 1 over TLS 1.3 into aedes (in-memory
//               persistence), WINDOW in flight each: messages per second of broker CPU
//   targets     one BENCH line per target of issue 15 with its ratio and PASS or FAIL
//
// `--quick` (or TETHER_BENCH_QUICK=1): a few connections and one run, for the smoke test
// (test/devs/bench.test.mjs): the rows are printed, their values mean nothing.
import { createCipheriv, createDecipheriv, diffieHellman, generateKeyPairSync, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { measureHandshakeRate, measureThroughput, startServerProcess } from "./lib/measure.mjs"
import { makeCertificates, tlsPeers } from "./lib/tls-peers.mjs"
import { tetherPeers } from "./lib/tether-peers.mjs"
import { fleetRate, pairFleet, startServe } from "./lib/serve-fleet.mjs"

const TARGETS = {
    fullVsTlsPsk: 1.0,
    fullVsCryptoLimit: 0.35,
    resumedVsTlsResumed: 2.5,
    recordsVsRawCcm: 1.7,
    telemetryPerCore: 100000,
    telemetryVsMqtt: 2.0,
    workers2Vs1: 1.7,
}

function params(quick) {
    return quick
        ? {
              warm: 40,
              runs: 1,
              count: 40,
              parallel: 8,
              recordBytes: 256 << 10,
              cryptoOps: 200,
              telemetry: 256,
              devices: 8,
              window: 4,
              fleet: 8,
              fleetWarm: 16,
              fleetCount: 16,
              fleetParallel: 4,
          }
        : {
              warm: 3000,
              runs: 7,
              count: 400,
              parallel: 8,
              recordBytes: 4 << 20,
              cryptoOps: 2000,
              telemetry: 12800,
              devices: 64,
              window: 8,
              fleet: 96,
              fleetWarm: 1000,
              fleetCount: 400,
              fleetParallel: 16,
          }
}

const cpuNow = () => {
    const u = process.cpuUsage()
    return u.user + u.system
}

/** A TCP connection with a Tether connection's round trips and sizes: 60 B out, 51 B back, then the probe. */
function tcpPeer() {
    const first = Buffer.alloc(60, 0x21)
    return {
        name: "floor: TCP accept + 2 round trips + close",
        server: { kind: "tcp", config: { reply: 51 } },
        connect(port) {
            const raw = net.connect(port, "127.0.0.1")
            raw.setNoDelay(true)
            raw.on("error", () => {})
            let listener
            const ready = new Promise((resolve, reject) => {
                raw.once("connect", () => raw.write(first))
                raw.once("data", () => {
                    raw.on("data", d => listener?.(d))
                    resolve(performance.now())
                })
                raw.once("close", () => reject(new Error("perf: the TCP floor server closed the connection")))
            })
            ready.catch(() => {})
            return {
                raw,
                ready,
                write: b => raw.write(b.length === 1 ? Buffer.alloc(20, 0x21) : b),
                onData: f => (listener = f),
                close: () => raw.destroy(),
            }
        },
    }
}

/** CPU µs of this process per (3 DH + 1 key generation) in raw node:crypto. */
function cryptoUnitUs(ops) {
    const priv = generateKeyPairSync("x25519").privateKey
    const pubs = Array.from({ length: 3 }, () => generateKeyPairSync("x25519").publicKey)
    const t0 = cpuNow()
    for (let i = 0; i < ops; i++) {
        for (const p of pubs) diffieHellman({ privateKey: priv, publicKey: p })
        generateKeyPairSync("x25519") // KeyObjects only: no export (issue 15: jwk export deadlocked Node 20)
    }
    return (cpuNow() - t0) / ops
}

/** CPU µs of this process per MB of raw aes-256-ccm (13-byte nonce, 16-byte tag) over 1 KiB messages. */
function rawCcmUsPerMB(totalBytes) {
    const key = randomBytes(32)
    const nonce = Buffer.alloc(13)
    const msg = Buffer.alloc(1024)
    const t0 = cpuNow()
    for (let i = 0; i < totalBytes / 1024; i++) {
        nonce.writeUInt32BE(i, 9)
        const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
        c.setAAD(Buffer.alloc(0), { plaintextLength: msg.length })
        c.update(msg)
        c.final()
        c.getAuthTag()
    }
    return (cpuNow() - t0) / (totalBytes / 1e6)
}

/**
 * The records' crypto floor: CPU µs of this process per MB of what a Tether 1 KiB write costs
 * the receiver in raw node:crypto: two aes-256-ccm decryptions (a DATA record of 1006 + 1 bytes
 * and one of 18 + 1, MAX_FRAME_LEN being 1024), a decipher object each, nothing else.
 */
function twoRecordCcmUsPerMB(totalBytes) {
    const key = randomBytes(32)
    const nonce = Buffer.alloc(13)
    const seal = len => {
        const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
        c.setAAD(Buffer.alloc(0), { plaintextLength: len })
        const ct = c.update(Buffer.alloc(len, 1))
        c.final()
        return [ct, c.getAuthTag()]
    }
    const recs = [seal(1007), seal(19)]
    const t0 = cpuNow()
    for (let i = 0; i < totalBytes / 1024; i++)
        for (const [ct, tag] of recs) {
            const d = createDecipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
            d.setAuthTag(tag)
            d.setAAD(Buffer.alloc(0), { plaintextLength: ct.length })
            d.update(ct)
            d.final()
        }
    return (cpuNow() - t0) / (totalBytes / 1e6)
}

/** Gateway CPU µs per MB of 1 KiB writes over one connection. */
async function recordUsPerMB(peer, srv, bytes) {
    const before = await srv.cpu()
    await measureThroughput(peer, srv.port, bytes)
    return ((await srv.cpu()) - before) / (bytes / 1e6)
}

// ---- telemetry -------------------------------------------------------------------------------

const TOPIC = "t"
const PAYLOAD = randomBytes(64)

/** A gateway node on a fresh SQLite store with `n` paired devices, and their clients. */
async function tetherTelemetry(n, dir) {
    const spec = { stateDir: join(dir, "telemetry") }
    const devices = await pairFleet(spec.stateDir, n, { prefix: "telemetry", ticket: false })
    const srv = await startServerProcess({
        kind: "node",
        config: { spec, node: "perf", policy: { perSourceAttempts: 1e9, perSourceConnections: 1e9 } },
    })
    for (const d of devices) {
        d.port = srv.port
        const [first, ...rest] = d.app.sessionStart()
        d.conn = await d.client.connect(first)
        for (const c of rest) d.conn.send(c)
    }
    /** Every device publishes `each` messages, `window` unacknowledged at most; resolves when all are acknowledged. */
    const burst = (each, window) =>
        Promise.all(
            devices.map(async d => {
                let sent = 0
                while (sent < each || d.app.send.unacked > 0) {
                    while (sent < each && d.app.send.unacked < window) {
                        d.app.publish(TOPIC, PAYLOAD)
                        for (const c of d.app.flush()) d.conn.send(c)
                        sent++
                    }
                    const c = await d.conn.recv(30000)
                    if (c === null || c === undefined) throw new Error(`perf: telemetry connection ended (close code ${d.conn.closeCode})`)
                    for (const out of d.app.data(c)) d.conn.send(out)
                }
            })
        )
    return {
        srv,
        burst,
        async stop() {
            for (const d of devices) d.conn.close()
            await srv.stop()
        },
    }
}

/** aedes behind TLS 1.3 in a child process, and `n` MQTT clients. */
async function mqttTelemetry(n, certs) {
    const mqtt = (await import("mqtt")).default
    const srv = await startServerProcess({ kind: "mqtt", config: { keyPem: certs.keyPem, chainPem: certs.chainPem } })
    const clients = []
    for (let i = 0; i < n; i++)
        clients.push(
            await mqtt.connectAsync(`mqtts://127.0.0.1:${srv.port}`, {
                ca: certs.caPem,
                servername: "gateway.local",
                minVersion: "TLSv1.3",
                clientId: `perf-${i}`,
                clean: true,
                reconnectPeriod: 0,
            })
        )
    const burst = (each, window) =>
        Promise.all(
            clients.map(async (c, i) => {
                let left = each
                const lane = async () => {
                    while (left > 0) {
                        left--
                        await c.publishAsync(`tether/dev-${i}/${TOPIC}`, PAYLOAD, { qos: 1 })
                    }
                }
                await Promise.all(Array.from({ length: window }, lane))
            })
        )
    return {
        srv,
        burst,
        async stop() {
            await Promise.all(clients.map(c => c.endAsync()))
            await srv.stop()
        },
    }
}

/** Messages per second of the server's CPU for `total` messages over the fleet. */
async function telemetryRate(t, total, devices, window) {
    const each = Math.ceil(total / devices)
    const before = await t.srv.cpu()
    await t.burst(each, window)
    return (each * devices) / (((await t.srv.cpu()) - before) / 1e6)
}

// ---- the run ---------------------------------------------------------------------------------

export async function run(ctx) {
    const { median, spread } = ctx
    const quick = ctx.quick || process.env.TETHER_BENCH_QUICK === "1"
    const P = params(quick)
    const dir = mkdtempSync(join(tmpdir(), "tether-perf-"))
    const started = []
    try {
        const [tlsCert, tlsPsk, tlsResumed] = await tlsPeers()
        void tlsCert
        // pools large enough for every resumption of the run within a chain (6.4: 63 per device)
        const pool = Math.max(64, Math.ceil((P.warm + P.runs * P.count) / 45))
        const [full, resumed] = await tetherPeers(pool, { registry: "sqlite" })
        const [stub] = await tetherPeers(64, { registry: "sqlite", stubX25519: true, ephemerals: 4 })
        // the same gateway on the in-memory registry: what the durable store costs a connection
        const [memFull, memResumed] = await tetherPeers(pool, { registry: "memory" })
        full.name = "Tether full (KKpsk2), SQLite registry"
        resumed.name = "Tether resumed (ticket), SQLite registry"
        stub.name = "floor: Tether full with X25519 stubbed (memoized), SQLite registry"
        memFull.name = "floor: Tether full (KKpsk2), in-memory registry (nothing durable)"
        memResumed.name = "floor: Tether resumed (ticket), in-memory registry (nothing durable)"
        const tcp = tcpPeer()
        const peers = [tlsPsk, tlsResumed, full, resumed, tcp, stub, memFull, memResumed]
        const servers = new Map()
        for (const p of peers) {
            const srv = await startServerProcess(p.server)
            started.push(srv)
            servers.set(p, srv)
            if (p.prepare) await p.prepare(srv.port)
            await measureHandshakeRate(p, srv, P.warm, P.parallel) // the warm-up, not measured
        }
        // warm the record paths too
        await measureThroughput(full, servers.get(full).port, P.recordBytes)
        await measureThroughput(tlsPsk, servers.get(tlsPsk).port, P.recordBytes)
        rawCcmUsPerMB(P.recordBytes)
        twoRecordCcmUsPerMB(P.recordBytes)
        cryptoUnitUs(P.cryptoOps)

        const rates = new Map(peers.map(p => [p, []]))
        const crypto = []
        const rec = { tether: [], tls: [], raw: [], two: [] }
        for (let r = 0; r < P.runs; r++) {
            const order = peers.map((_, i) => peers[(i + r) % peers.length])
            for (const p of order) rates.get(p).push(await measureHandshakeRate(p, servers.get(p), P.count, P.parallel))
            crypto.push(1e6 / cryptoUnitUs(P.cryptoOps))
            rec.tether.push(await recordUsPerMB(full, servers.get(full), P.recordBytes))
            rec.tls.push(await recordUsPerMB(tlsPsk, servers.get(tlsPsk), P.recordBytes))
            rec.raw.push(rawCcmUsPerMB(P.recordBytes))
            rec.two.push(twoRecordCcmUsPerMB(P.recordBytes))
        }
        for (const p of peers) if (p.finish) await p.finish()
        for (const srv of started.splice(0)) await srv.stop()

        // telemetry: Tether's app layer on SQLite, then MQTT into aedes, interleaved
        const certs = await makeCertificates()
        const tt = await tetherTelemetry(P.devices, dir)
        started.push(tt.srv)
        const mq = await mqttTelemetry(P.devices, certs)
        started.push(mq.srv)
        const warmMsgs = quick ? P.telemetry : Math.max(P.telemetry, 3000 * 4)
        await telemetryRate(tt, warmMsgs, P.devices, P.window)
        await telemetryRate(mq, warmMsgs, P.devices, P.window)
        const tel = { tether: [], mqtt: [] }
        // the node's store calls over the measured runs: receiving-state writes per message (one
        // per batch of a device's records, issue 15; one per record before)
        const calls = async () => (await tt.srv.stats())?.by?.receiving?.calls ?? 0
        const calls0 = await calls()
        for (let r = 0; r < P.runs; r++) {
            tel.tether.push(await telemetryRate(tt, P.telemetry, P.devices, P.window))
            tel.mqtt.push(await telemetryRate(mq, P.telemetry, P.devices, P.window))
        }
        const storeCallsPerMsg = ((await calls()) - calls0) / (P.runs * Math.ceil(P.telemetry / P.devices) * P.devices)
        started.splice(0)
        await tt.stop()
        await mq.stop()

        // every core: serve --workers 2 against --workers 1 (the real CLI, SQLite), each on a
        // fleet of its own, interleaved; connections per wall-second and the process tree's CPU
        const fleets = []
        for (const n of [1, 2]) {
            const devices = await pairFleet(join(dir, `fleet-${n}`), P.fleet)
            const srv = await startServe(join(dir, `fleet-${n}`), n)
            started.push(srv)
            await fleetRate(devices, srv, P.fleetWarm, P.fleetParallel)
            fleets.push({ n, devices, srv, rate: [], cpu: [] })
        }
        for (let r = 0; r < P.runs; r++)
            for (const f of r % 2 === 0 ? fleets : [...fleets].reverse()) {
                const x = await fleetRate(f.devices, f.srv, P.fleetCount, P.fleetParallel)
                f.rate.push(x.perWallSecond)
                f.cpu.push(x.cpuUsPerConnection)
            }
        for (const f of fleets) await f.srv.stop()
        started.splice(0)

        // ---- figures ----
        const runsNote = `median of ${P.runs} interleaved runs of ${P.count} connections, ${P.parallel} in flight, after ${P.warm} warm-up connections per server`
        const perRun = (a, b) => a.map((x, i) => x / b[i])
        const figures = []
        for (const p of peers) {
            const xs = rates.get(p)
            figures.push({
                name: `perf: ${p.name}: handshakes per gateway CPU-second`,
                value: median(xs),
                unit: "hs/s",
                note: `${runsNote}; ${spread(xs)}; ${Math.round(1e6 / median(xs))} µs of gateway CPU per connection`,
            })
        }
        figures.push({
            name: "perf: crypto-bound limit 1/(3 DH + 1 keygen), raw node:crypto",
            value: median(crypto),
            unit: "hs/s",
            note: `${P.runs} runs of ${P.cryptoOps} in this process's CPU time, interleaved, ${spread(crypto)}`,
        })
        const usMB = [
            ["Tether 1 KiB writes (2 DATA records each)", rec.tether],
            ["TLS 1.3 PSK 1 KiB writes", rec.tls],
            ["raw aes-256-ccm 1 KiB messages (this process)", rec.raw],
            ["floor: a 1 KiB write's two record decryptions (1006 + 18 B) in raw aes-256-ccm (this process)", rec.two],
        ]
        for (const [n, xs] of usMB)
            figures.push({
                name: `perf: ${n}: CPU per MB`,
                value: median(xs),
                unit: "µs/MB",
                note: `${P.runs} runs of ${P.recordBytes >> 10} KiB after a warm-up transfer, ${spread(xs)}; gateway (receiver) CPU`,
            })
        figures.push(
            {
                name: "perf: telemetry Tether, 64-byte PUBLISH into a serve node on SQLite",
                value: median(tel.tether),
                unit: "msg/CPU-s",
                note: `${P.runs} runs of ${P.telemetry} messages, ${P.devices} devices, ${P.window} in flight each, one per DATA record; ${spread(tel.tether)}; ${storeCallsPerMsg.toFixed(2)} receiving-state writes per message (the records of a turn are one batch)`,
            },
            {
                name: "perf: telemetry MQTT 3.1.1 QoS 1 over TLS 1.3 into aedes",
                value: median(tel.mqtt),
                unit: "msg/CPU-s",
                note: `${P.runs} runs of ${P.telemetry} messages, ${P.devices} clients, ${P.window} in flight each; ${spread(tel.mqtt)}`,
            }
        )
        for (const f of fleets)
            figures.push({
                name: `perf: serve --workers ${f.n} (SQLite): resumptions with a PUBLISH as early data, per wall-second`,
                value: median(f.rate),
                unit: "conn/s",
                note: `${P.runs} interleaved runs of ${P.fleetCount} connections, ${P.fleetParallel} in flight, after ${P.fleetWarm} warm-up; ${spread(f.rate)}; ${Math.round(median(f.cpu))} µs of gateway CPU (primary and workers) per connection; the bench's own clients share this machine's ${cpus().length} cores`,
            })
        // The floors added up, per run, in gateway CPU µs per connection: what a full handshake
        // and a resumption cost before any Noise hashing, AEAD or JavaScript of ours, against
        // TLS's whole connection in the same run (the targets ask for 1.0x and 2.5x of TLS)
        const us = p => rates.get(p).map(x => 1e6 / x)
        const minus = (a, b) => a.map((x, i) => x - b[i])
        const storeFull = minus(us(full), us(memFull))
        const storeResumed = minus(us(resumed), us(memResumed))
        const x25519Us = minus(us(full), us(stub))
        const fullFloor = us(tcp).map((t, i) => t + x25519Us[i] + storeFull[i])
        const resumedFloor = us(tcp).map((t, i) => t + storeResumed[i])
        const µs = xs => `${Math.round(median(xs))} µs`
        figures.push(
            {
                name: "perf: the SQLite registry's gateway CPU per full handshake (SQLite run minus in-memory run)",
                value: median(storeFull),
                unit: "µs",
                note: `median of the ${P.runs} per-run differences, ${spread(storeFull)}; the lookup by pseudonym and the confirmation's one statement, committed at synchronous = FULL (an fsync of the WAL)`,
            },
            {
                name: "perf: the SQLite registry's gateway CPU per resumption (SQLite run minus in-memory run)",
                value: median(storeResumed),
                unit: "µs",
                note: `median of the ${P.runs} per-run differences, ${spread(storeResumed)}; the ticket's compare-and-set and confirmation in one statement, committed at synchronous = FULL`,
            },
            {
                name: "perf: floors of a full handshake (TCP + X25519 + SQLite registry) / TLS 1.3 PSK's whole connection",
                value: median(perRun(fullFloor, us(tlsPsk))),
                unit: "x",
                note: `per run, then the median; ${spread(perRun(fullFloor, us(tlsPsk)))}: TCP ${µs(us(tcp))} + X25519 ${µs(x25519Us)} (full minus stubbed) + SQLite ${µs(storeFull)} = ${µs(fullFloor)} against TLS's ${µs(us(tlsPsk))}; the 1.0x target needs this below 1 with room for the rest`,
            },
            {
                name: "perf: floors of a resumption (TCP + SQLite registry) / TLS 1.3 resumed's whole connection",
                value: median(perRun(resumedFloor, us(tlsResumed))),
                unit: "x",
                note: `per run, then the median; ${spread(perRun(resumedFloor, us(tlsResumed)))}: TCP ${µs(us(tcp))} + SQLite ${µs(storeResumed)} = ${µs(resumedFloor)} against TLS's ${µs(us(tlsResumed))}; the 2.5x target needs this below 0.4`,
            }
        )
        const target = (name, ratios, goal, atMost = false) => {
            const v = median(ratios)
            const pass = atMost ? v <= goal : v >= goal
            figures.push({
                name: `perf target: ${name} ${atMost ? "<=" : ">="} ${goal}: ${pass ? "PASS" : "FAIL"}`,
                value: v,
                unit: "x",
                note: `median of the ${ratios.length} per-run ratios (${spread(ratios)})${quick ? "; --quick: not a measurement" : ""}`,
            })
        }
        target("full handshakes / TLS 1.3 PSK", perRun(rates.get(full), rates.get(tlsPsk)), TARGETS.fullVsTlsPsk)
        target("full handshakes / crypto-bound limit", perRun(rates.get(full), crypto), TARGETS.fullVsCryptoLimit)
        target("resumptions / TLS 1.3 resumed", perRun(rates.get(resumed), rates.get(tlsResumed)), TARGETS.resumedVsTlsResumed)
        target("1 KiB records CPU per MB / raw aes-256-ccm", perRun(rec.tether, rec.raw), TARGETS.recordsVsRawCcm, true)
        target(
            "telemetry msg per gateway CPU-second / 100k",
            tel.tether.map(x => x / TARGETS.telemetryPerCore),
            1
        )
        target("telemetry Tether / MQTT-over-TLS into aedes, per CPU-second", perRun(tel.tether, tel.mqtt), TARGETS.telemetryVsMqtt)
        target("serve --workers 2 / --workers 1, connections per wall-second", perRun(fleets[1].rate, fleets[0].rate), TARGETS.workers2Vs1)
        return figures
    } finally {
        for (const srv of started) await srv.stop().catch(() => {})
        rmSync(dir, { recursive: true, force: true })
    }
}
