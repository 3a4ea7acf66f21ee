// X25519 figures for `npm run bench`: the alternatives of devs/bench/device/x25519.ts side by side
// (src/crypto/x25519.ts on 12 limbs in doubles; the same generator at 13 limbs; the int32 engine
// of 20 limbs of 13 bits it replaced in issue 17; the straight 16x16-bit reference port):
//   - ms per scalar multiplication in the simulator (stock VM, test mode, interleaved in one run,
//     yields included), median over RUNS runs;
//   - bytecode instructions per scalar multiplication and the longest slice between yields,
//     counted by the VM itself (one run under the counting VM, devs/bench/device/counting-vm.mjs:
//     one count per opcode dispatched, the unit of the VM's InfiniteLoop guard);
//   - node:crypto X25519 on this machine in the same run, and the device/node ratio.
// Ms are noisy on a shared machine; the instruction counts are deterministic. The int32 row is
// the same-run baseline for the ms limit (issue 17: 38 ms where the int32 engine took 54).
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto"
import { loadavg } from "node:os"
import { runCounting } from "./device.mjs"

const ENTRY = "devs/bench/device/x25519.ts"
const RUNS = 3
const VARIANTS = [
    ["device", "x25519 device: 12 limbs in doubles (src/crypto)"],
    ["limbs13", "x25519 alternative: 13 limbs in doubles (before the move to 12)"],
    ["int32", "x25519 alternative: int32, 20 limbs of 13 bits (before issue 17)"],
    ["reference", "x25519 reference 16x16-bit port"],
]

function nodeX25519MsPerOp(ctx) {
    const PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex")
    const SPKI = Buffer.from("302a300506032b656e032100", "hex")
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8, randomBytes(32)]), format: "der", type: "pkcs8" })
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI, randomBytes(32)]), format: "der", type: "spki" })
    const batch = 2000
    const times = []
    for (let r = 0; r < 7; r++) {
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < batch; i++) diffieHellman({ privateKey, publicKey })
        times.push(Number(process.hrtime.bigint() - t0) / 1e6 / batch)
    }
    return times
}

export async function run(ctx) {
    const ms = Object.fromEntries(VARIANTS.map(([k]) => [k, []]))
    const value = f => f.value + (f.lo || 0)
    const ratios = []
    const load = [loadavg()[0]]
    for (let r = 0; r < RUNS; r++) {
        const { code, out, figures } = await ctx.runDevice(ENTRY, 600000)
        if (code !== 0) throw new Error(`${ENTRY} failed (${code}):\n${out.slice(-3000)}`)
        for (const [k] of VARIANTS) ms[k].push(value(figures.find(f => f.name === k + "_ms")))
        for (const f of figures.filter(f => f.name === "ratio_int32")) ratios.push(value(f))
    }
    load.push(loadavg()[0])
    const c = await runCounting(ctx.root, ENTRY, 600000)
    if (c.code !== 0) throw new Error(`${ENTRY} (counting VM) failed (${c.code}):\n${c.out.slice(-3000)}`)
    const count = name => c.figures.find(f => f.name === name).value
    const node = nodeX25519MsPerOp(ctx)
    const nd = ctx.median(node)
    const runs = `median of ${RUNS} simulator runs (${5} interleaved rounds each, test mode)`
    const figures = []
    for (const [k, label] of VARIANTS) {
        const m = ctx.median(ms[k])
        figures.push(
            { name: `${label} (simulator)`, value: m, unit: "ms/op", note: `${runs}; spread ${ctx.spread(ms[k])}` },
            {
                name: `${label}: bytecode instructions`,
                value: count(k + "_instr"),
                unit: "instr/op",
                note: `counted by the VM; longest slice between yields ${count(k + "_slice")}; ${count(k + "_allocs")} heap allocations (each a full collection under test mode's GC stress)`,
            }
        )
    }
    const dev = ctx.median(ms.device)
    const int32 = ctx.median(ms.int32)
    figures.push(
        {
            name: "x25519 device / int32 engine time, same runs",
            value: dev / int32,
            unit: "x",
            note: `ratio of the medians above; the issue-17 limit, 38 ms where int32 took 54 ms, is a ratio of ${(38 / 54).toFixed(3)}`,
        },
        {
            name: "x25519 device / int32 engine time, per round",
            value: ctx.median(ratios),
            unit: "x",
            note: `median over ${ratios.length} rounds (each the device's X25519 next to the int32 engine's in one simulator run), spread ${ctx.spread(ratios)}; limit ${(38 / 54).toFixed(3)}; load average ${load.map(l => l.toFixed(1)).join(" -> ")} (2 cores, shared)`,
        },
        {
            name: "x25519 device longest slice between yields",
            value: count("device_slice"),
            unit: "instr",
            note: "limit 50 K; the VM panics at 131072",
        },
        { name: "x25519 node:crypto", value: nd, unit: "ms/op", note: `median of 7 batches of 2000; spread ${ctx.spread(node)}` },
        { name: "x25519 device (simulator) / node:crypto", value: dev / nd, unit: "x" }
    )
    return figures
}
