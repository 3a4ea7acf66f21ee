// Tether's own figures for `npm run bench`, each next to what bounds it.
// (Bytes on the wire, round trips and record throughput of both Tether handshakes sit in the
// compare group, measured exactly like TLS 1.3: devs/bench/lib/tether-peers.mjs.)
//
//   x25519      the gateway's X25519 module (gateway-peer/src/crypto/x25519.ts), ms per
//               operation as the gateway calls it (DH with its static key, fresh key pairs),
//               against node:crypto's own X25519 on KeyObjects made once: the cost of the
//               module's raw-bytes API over the primitive
//   one core    gateway full handshakes and resumptions per second of the gateway process's
//               own CPU time (measure.mjs), interleaved with node:crypto X25519 operations per
//               second in this process: a full handshake costs the gateway 3 DH (es, ee, se;
//               ss is cached per pairing) + 1 key generation, so ops/s / 4 is its crypto-bound
//               limit (the device's idle-time es of PROTOCOL.md 4.3 saves the device a DH, not
//               the gateway); a resumption costs no X25519 at all. Each connection's first
//               record (the probe) confirms the session, and the gateway's TICKET follows it
//   records     throughput with full-size DATA records (1006 B), next to 1 KiB writes
//   first answer  time from TCP connected to the answer of the first application message,
//               sent as early as each protocol allows, through a proxy delaying each direction
//               by 40 ms, in round trips: where 0-RTT shows. The resumed peer is prepared first
//               (every device holds a session ticket of known age), and its early data must be
//               accepted (EARLY_ACCEPTED) or the run fails
//   device      the real device client (src/tether/client.ts) in the simulator against the
//               real gateway: full and resumed handshake time in the same run, their ratio,
//               X25519 operations per path (version 2: ee and se on the full handshake's
//               critical path, es and ss prepared while idle; none on a resumption), the
//               firmware's bytecode size, and the peak heap of a handshake (a ballast search:
//               the simulator exposes no heap statistics). Skipped with --no-device (then the
//               table is not written to docs/bench.md)
//
// Every figure is a median over several runs; the note gives the run count and the spread.
import { spawnSync } from "node:child_process"
import { diffieHellman, generateKeyPairSync } from "node:crypto"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { startDelayProxy } from "./lib/delay-proxy.mjs"
import { guarded, measureHandshakeRate, measureThroughput, startServerProcess } from "./lib/measure.mjs"
import { makePairings, tetherPeers } from "./lib/tether-peers.mjs"
import { tlsPeers } from "./lib/tls-peers.mjs"

const RUNS = 5

/** ms per call of f, over `batch` calls (f gets the index). */
function msPerOp(f, batch) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) f(i)
    return Number(process.hrtime.bigint() - t0) / 1e6 / batch
}

/**
 * X25519 micro-bench: the gateway module's x25519(static scalar, peer u) and generateKeyPair(),
 * then node:crypto diffieHellman on KeyObjects built once and generateKeyPairSync: the floor.
 */
export async function x25519Figures(ctx, runs = RUNS, batch = 2000) {
    const { median, spread } = ctx
    const x = await import("tether-gateway")
    const identity = x.generateKeyPair() // one Buffer object, reused like the gateway's identity
    const peers = Array.from({ length: 64 }, () => x.generateKeyPair().publicKey)
    const a = generateKeyPairSync("x25519")
    const b = generateKeyPairSync("x25519")
    const r = { dh: [], keygen: [], nodeDh: [], nodeKeygen: [] }
    for (let i = 0; i < runs; i++) {
        r.dh.push(msPerOp(j => x.x25519(identity.privateKey, peers[j & 63]), batch))
        r.keygen.push(msPerOp(() => x.generateKeyPair(), batch))
        r.nodeDh.push(msPerOp(() => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), batch))
        r.nodeKeygen.push(msPerOp(() => generateKeyPairSync("x25519"), batch))
    }
    const note = xs => `${runs} batches of ${batch}, ${spread(xs)}`
    return {
        raw: r,
        figures: [
            {
                name: "gateway x25519(): DH with its static key, raw bytes in and out",
                value: median(r.dh),
                unit: "ms/op",
                note: `${note(r.dh)}; 64 peer keys in turn`,
            },
            {
                name: "gateway generateKeyPair(): fresh ephemeral, raw bytes out",
                value: median(r.keygen),
                unit: "ms/op",
                note: note(r.keygen),
            },
            { name: "node:crypto X25519 DH, KeyObjects made once (floor)", value: median(r.nodeDh), unit: "ms/op", note: note(r.nodeDh) },
            {
                name: "node:crypto X25519 generateKeyPairSync (floor)",
                value: median(r.nodeKeygen),
                unit: "ms/op",
                note: note(r.nodeKeygen),
            },
        ],
    }
}

/** node:crypto X25519 DH and key generation per second, KeyObjects made once. */
function nodeX25519OpsPerSecond(batch = 2000) {
    const a = generateKeyPairSync("x25519")
    const b = generateKeyPairSync("x25519")
    const dh = msPerOp(() => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), batch)
    const keygen = msPerOp(() => generateKeyPairSync("x25519"), batch)
    return { dh: 1000 / dh, keygen: 1000 / keygen, fullLimit: 1000 / (3 * dh + keygen) }
}

/** Gateway handshakes per second on one core, interleaved with node:crypto X25519 ops/s. */
async function oneCoreFigures(ctx, xMs, runs = RUNS, count = 300) {
    const { median, spread } = ctx
    const [full, resumed] = await tetherPeers()
    const srvFull = await startServerProcess(full.server)
    const srvRes = await startServerProcess(resumed.server)
    const r = { full: [], resumed: [], dh: [], keygen: [], limit: [] }
    try {
        await resumed.prepare(srvRes.port) // every device holds a session ticket, as after its first connections
        await measureHandshakeRate(full, srvFull, 50) // warm-up: JIT, ss cache
        await measureHandshakeRate(resumed, srvRes, 50)
        for (let i = 0; i < runs; i++) {
            const x = nodeX25519OpsPerSecond()
            r.dh.push(x.dh)
            r.keygen.push(x.keygen)
            r.limit.push(x.fullLimit)
            r.full.push(await measureHandshakeRate(full, srvFull, count))
            r.resumed.push(await measureHandshakeRate(resumed, srvRes, count))
        }
        await full.finish()
        await resumed.finish()
    } finally {
        await srvFull.stop()
        await srvRes.stop()
    }
    const how = `${runs} runs of ${count} by the gateway process's CPU time (8 clients in parallel, each connection: handshake, one DATA "!" (the first record: the TICKET follows it), the answer, close), interleaved with the X25519 figures`
    const fullMs = 1000 / median(r.full)
    const xPerFull = 3 * xMs.dh + xMs.keygen
    return [
        { name: "gateway full handshakes/s (one core)", value: median(r.full), unit: "hs/s", note: `${how}; ${spread(r.full)}` },
        {
            name: "node:crypto X25519 DH/s (same run)",
            value: median(r.dh),
            unit: "ops/s",
            note: `${runs} batches of 2000 between the handshake runs, ${spread(r.dh)}; key generation ${Math.round(median(r.keygen))}/s`,
        },
        {
            name: "crypto-bound limit of a full handshake: 1 / (3 DH + 1 keygen)",
            value: median(r.limit),
            unit: "hs/s",
            note: `from the node:crypto figures of the same run, ${spread(r.limit)}; the gateway reaches ${Math.round((100 * median(r.full)) / median(r.limit))}% of it`,
        },
        {
            name: "gateway CPU per full handshake, of which X25519",
            value: fullMs,
            unit: "ms",
            note: `X25519 ${xPerFull.toFixed(3)} ms of it (3 DH + 1 keygen through the gateway module, micro-bench above): the rest is Noise hashing (HMAC/HKDF), the ticket, TCP and JavaScript`,
        },
        {
            name: "gateway resumptions/s (one core)",
            value: median(r.resumed),
            unit: "hs/s",
            note: `${how}; ${spread(r.resumed)}; no X25519`,
        },
        {
            name: "gateway resumptions per full handshake (CPU)",
            value: median(r.resumed) / median(r.full),
            unit: "x",
            note: "ratio of the two medians above",
        },
    ]
}

/**
 * Record throughput with full-size records: 1006-byte writes, one DATA record each (the 1 KiB
 * writes of the compare group are two records each), next to 1 KiB writes in the same run.
 */
async function recordFigures(ctx, runs = 3) {
    const { median, spread } = ctx
    const [full] = await tetherPeers()
    const srv = await startServerProcess(full.server)
    const r = { max: [], kib: [] }
    try {
        for (let i = 0; i < runs; i++) {
            r.max.push(await measureThroughput(full, srv.port, 8 << 20, 1006))
            r.kib.push(await measureThroughput(full, srv.port, 8 << 20, 1024))
        }
        await full.finish()
    } finally {
        await srv.stop()
    }
    return [
        {
            name: "Tether records of 1006 B (one full DATA record per write)",
            value: median(r.max),
            unit: "MB/s",
            note: `${runs} runs of 8 MiB, ${spread(r.max)}; same connection kind as the compare rows`,
        },
        {
            name: "Tether 1 KiB writes (two records each), same run",
            value: median(r.kib),
            unit: "MB/s",
            note: `${runs} runs of 8 MiB, interleaved with the row above, ${spread(r.kib)}`,
        },
    ]
}

/** Round trips from TCP connected to the answer of the first message, sent as early as allowed. */
async function firstAnswer(peer, srv, delayMs) {
    const proxy = await startDelayProxy(srv.port, delayMs)
    try {
        const bang = Buffer.from("!")
        const early = peer.name.includes("0-RTT")
        const c = peer.connect(proxy.port, early ? { early: bang } : undefined)
        const answered = new Promise(resolve => c.onData(d => d.length && d[d.length - 1] === 0x21 && resolve(performance.now())))
        const t0 = await c.connected
        await c.ready // Tether: rejects if the early data was refused
        if (!early) c.write(bang)
        const t1 = await guarded(c, answered)
        c.close()
        return (t1 - t0) / (2 * delayMs)
    } finally {
        await proxy.close()
    }
}

async function firstAnswerFigures(ctx, runs = 3, delayMs = 40) {
    const { median, spread } = ctx
    const figures = []
    for (const peer of [...(await tlsPeers()), ...(await tetherPeers())]) {
        const srv = await startServerProcess(peer.server)
        try {
            if (peer.prepare) await peer.prepare(srv.port)
            const rtts = []
            for (let i = 0; i < runs; i++) rtts.push(await firstAnswer(peer, srv, delayMs))
            if (peer.finish) await peer.finish()
            figures.push({
                name: `${peer.name}: first message answered after`,
                value: median(rtts),
                unit: "RTT",
                note: `${runs} runs through a ${delayMs} ms/direction proxy, ${spread(rtts)}; from TCP connected to the answer, the message sent ${peer.name.includes("0-RTT") ? "as early data in RESUME_INIT (accepted: EARLY_ACCEPTED; a ticket of known age)" : "once the handshake allows"}`,
            })
        } finally {
            await srv.stop()
        }
    }
    return figures
}

const DEVICE_ENTRY = "devs/bench/device/handshake.ts"
const ENV_FILE = join("devs", "bench", "device", "env.generated.ts")

function writeEnv(root, env) {
    let text = "// GENERATED by devs/bench/tether.mjs for one device run: do not edit, not committed.\n"
    // typed, so the compiler does not narrow MODE to one literal
    for (const [k, v] of Object.entries(env)) text += `export const ${k}: ${typeof v} = ${JSON.stringify(v)}\n`
    writeFileSync(join(root, ENV_FILE), text)
}

/** Bytecode size of the firmware: `devs build src/main.ts`, then its bytecode-sizes.md. */
function firmwareSize(root) {
    const env = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }
    const devs = join(root, "node_modules", ".bin", "devs")
    const b = spawnSync(devs, ["build", "-s", "--no-colors", "src/main.ts"], { cwd: root, env, encoding: "utf8" })
    if (b.status !== 0) throw new Error("devs build src/main.ts failed: " + b.stdout + b.stderr)
    const bin = join(root, ".devicescript", "bin")
    const md = readFileSync(join(bin, "bytecode-sizes.md"), "utf8")
    const num = re => {
        const m = re.exec(md)
        if (!m) throw new Error(`bytecode-sizes.md: no ${re}`)
        return +m[1]
    }
    const image = statSync(join(bin, "bytecode.devs")).size
    // the -s line ("bytecode: 68.3kb") guards against another build overwriting the files
    const kb = /bytecode: ([\d.]+)kb/.exec(b.stdout + b.stderr)
    if (kb && Math.abs(+kb[1] * 1000 - image) > 100)
        throw new Error(`bytecode.devs (${image} B) does not match the build's ${kb[1]}kb: another build ran`)
    return { image, total: num(/^(\d+) \| TOTAL/m), functions: num(/^(\d+) \| Function TOTAL/m), data: num(/^(\d+) \| Data TOTAL/m) }
}

async function deviceFigures(ctx, rounds = 5) {
    const { median, spread, root } = ctx
    const figures = []
    const size = firmwareSize(root)
    figures.push({
        name: "firmware bytecode (src/main.ts)",
        value: size.image,
        unit: "B",
        note: `bytecode.devs of \`devs build src/main.ts\`; bytecode-sizes.md: functions ${size.functions} B + data ${size.data} B = ${size.total} B`,
    })

    const { config, pool } = await makePairings(1)
    const d = pool.devices[0]
    const srv = await startServerProcess({ kind: "tether", config })
    const base = {
        PORT: srv.port,
        DEV_ID: d.deviceId.toString("hex"),
        DEV_PRIV: d.s.privateKey.toString("hex"),
        GW_PUB: d.gatewayPublic.toString("hex"),
        PSK: d.psk.toString("hex"),
    }
    const run = async (mode, ballast = 0) => {
        writeEnv(root, { ...base, MODE: mode, BALLAST: ballast, ROUNDS: rounds })
        return await ctx.runDevice(DEVICE_ENTRY, 120000)
    }
    try {
        const t = await run("time")
        if (t.code !== 0) throw new Error(`${DEVICE_ENTRY} failed (${t.code}):\n${t.out.slice(-3000)}`)
        const all = name => t.figures.filter(f => f.name === name).map(f => f.value)
        const full = all("full_ms")
        const res = all("resume_ms")
        const ratios = full.map((f, i) => f / res[i])
        const fx = all("full_x25519")
        const rx = all("resume_x25519")
        const kg = all("full_keygen_in_connect")
        const how = `${full.length} rounds interleaved in one simulator run (test mode, GC stress), each from the first handshake frame sent to the session (client handshakeMs), gateway on loopback`
        figures.push(
            { name: "device full handshake (simulator)", value: median(full), unit: "ms", note: `${how}; ${spread(full)}` },
            { name: "device resumed handshake (simulator)", value: median(res), unit: "ms", note: `same rounds; ${spread(res)}` },
            {
                name: "device full / resumed handshake time",
                value: median(full) / median(res),
                unit: "x",
                note: `ratio of the medians; per round ${spread(ratios)}`,
            },
            {
                name: "device X25519 on the full handshake's critical path",
                value: median(fx),
                unit: "ops",
                note: `counted by an injected DH inside connect(), every round (${spread(fx)}): ${median(fx) === 2 ? "ee, se" : "PROTOCOL.md 4.3 expects 2, ee and se"}; key generations inside connect(): ${median(kg)} (the next ephemeral and its es are computed by prepare() while idle, off the critical path, PROTOCOL.md 4.3); ss is cached per pairing`,
            },
            {
                name: "device X25519 on a resumption",
                value: median(rx),
                unit: "ops",
                note: `counted the same way, every round (${spread(rx)})`,
            }
        )

        // Peak heap: the largest ballast (in 128-byte buffers) that survives, per mode.
        const STEP = 512
        const survives = async (mode, ballast) => {
            const r = await run(mode, ballast)
            if (r.code === 0 && r.out.includes("HEAP-OK")) return true
            if (/OutOfMemory|PANIC 60004/.test(r.out)) return false
            throw new Error(
                `${DEVICE_ENTRY} ${mode} with ${ballast} B ballast failed (${r.code}) without running out of memory:\n${r.out.slice(-3000)}`
            )
        }
        // bisection between a ballast that survives (lo) and one that does not (hi); the ends
        // are checked only when the answer lands on them
        const search = async (mode, lo, hi) => {
            const [lo0, hi0] = [lo, hi]
            let runs = 0
            while (hi - lo > STEP) {
                const mid = lo + Math.floor((hi - lo) / 2 / 128) * 128
                if (await survives(mode, mid)) lo = mid
                else hi = mid
                runs++
            }
            if (lo === lo0 && (runs++, !(await survives(mode, lo))))
                throw new Error(`heap probe: ${mode} fails even with ${lo} B of ballast`)
            if (hi === hi0 && (runs++, await survives(mode, hi))) throw new Error(`heap probe: ${mode} survives ${hi} B of ballast`)
            return { lo, runs }
        }
        const idle = await search("idle", 40960, 57344)
        const fullHeap = await search("full", idle.lo - 8192, idle.lo + STEP)
        const resHeap = await search("resume", idle.lo - 8192, idle.lo + STEP)
        const heapNote = (m, runs) =>
            `ballast bisection, ${runs} simulator runs (plus ${idle.runs} for the idle state), each search to ${STEP} B: the idle program holds ${idle.lo} B of ballast, with a ${m} ${m === "full handshake" ? fullHeap.lo : resHeap.lo} B; the difference (about ±${STEP} B) is what the ${m} needs at its peak over the idle state, socket buffers included (the simulator has no heap statistics API and OutOfMemory is an uncatchable panic, so each probe is a run)`
        figures.push(
            {
                name: "device peak heap of a full handshake (simulator)",
                value: idle.lo - fullHeap.lo,
                unit: "B",
                note: heapNote("full handshake", fullHeap.runs),
            },
            {
                name: "device peak heap of a resumption (simulator)",
                value: idle.lo - resHeap.lo,
                unit: "B",
                note: heapNote("resumption", resHeap.runs),
            }
        )
    } finally {
        await srv.stop()
    }
    return figures
}

export async function run(ctx) {
    const figures = []
    const x = await x25519Figures(ctx)
    figures.push(...x.figures)
    const xMs = { dh: ctx.median(x.raw.dh), keygen: ctx.median(x.raw.keygen) }
    figures.push(...(await oneCoreFigures(ctx, xMs)))
    figures.push(...(await recordFigures(ctx)))
    figures.push(...(await firstAnswerFigures(ctx)))
    if (!ctx.noDevice) figures.push(...(await deviceFigures(ctx)))
    return figures
}
