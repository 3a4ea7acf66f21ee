// The device's cost in bytecode instructions for `npm run bench` (group "device"), counted by the
// VM itself, and what that costs on the chips, estimated from the measured cycles per bytecode
// instruction (shared notes, devicescript.md "Speed and memory": the DeviceScript 2.16.4 VM
// built at -Og for RV32IMC and ARMv6-M under QEMU with a CoreMark-calibrated timing model).
//
//   counting   devs/bench/device/counting-vm.mjs patches the installed CLI's WASM VM: one
//              counter incremented per opcode dispatched (the unit of the VM's own InfiniteLoop
//              guard), readable by the device program. devs/bench/device/cost.ts runs under it
//              against the real gateway on loopback (one paired device): X25519, the idle work,
//              a full handshake and a resumption (all of connect(): state machine, hashing
//              glue, buffer copies, framing, the socket; and the part inside X25519), the first
//              record with its TICKET saved, the record path. Counts are deterministic for
//              X25519 and nearly so for the rest (chunking of the socket reads varies).
//   estimates  instructions x cycles per instruction / clock: ESP32-C3 207..231 cycles at
//              160 MHz, RP2040 about 320 at 125 MHz. Bytecode only: the native AES-CCM,
//              SHA-256/HMAC, the flash write itself and the radio are not in them.
//   firmware   `npm run build:esp32c3`'s image (src/boards/esp32c3.ts).
//   heap       the same counting VM also keeps the VM heap in use after every allocation, from the
//              GC's own lists (counting-vm.mjs), and its peak. The runs are in test mode, whose
//              GC stress collects before every allocation, so the peak is the peak of live data
//              (reachable or pinned), exact at allocation granularity. A handshake's figure is
//              that peak during connect() less the live heap right before it: what the handshake
//              needs on top of the program (the budget, 8 KB); the program's whole live heap at
//              the peak is in the note (the bench program with its test harness and two
//              clients, not the firmware's).
import { spawn, spawnSync } from "node:child_process"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { countingCli } from "./device/counting-vm.mjs"
import { startServerProcess } from "./lib/measure.mjs"
import { makePairings } from "./lib/tether-peers.mjs"

const ENTRY = "devs/bench/device/cost.ts"
const ENV_FILE = join("devs", "bench", "device", "env.generated.ts")
export const CHIPS = {
    esp32c3: { cpiLo: 207, cpiHi: 231, hz: 160e6 },
    rp2040: { cpi: 320, hz: 125e6 },
}

/** ms on the chips for n bytecode instructions: { c3lo, c3hi, rp } */
export function chipMs(n) {
    return {
        c3lo: ((n * CHIPS.esp32c3.cpiLo) / CHIPS.esp32c3.hz) * 1000,
        c3hi: ((n * CHIPS.esp32c3.cpiHi) / CHIPS.esp32c3.hz) * 1000,
        rp: ((n * CHIPS.rp2040.cpi) / CHIPS.rp2040.hz) * 1000,
    }
}

/** Runs a device entry under the counting VM; its exit code, output and BENCHDEV figures. */
export function runCounting(root, entry, timeoutMs = 600000) {
    const cli = countingCli(root)
    return new Promise(resolve => {
        const args = ["-e", "require(process.argv[1]).mainCli()", cli, "run", "--test", "-k", "-T", String(timeoutMs), "--no-colors", entry]
        const child = spawn(process.execPath, args, {
            cwd: root,
            env: { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" },
            stdio: ["ignore", "pipe", "pipe"],
        })
        let out = ""
        child.stdout.on("data", d => (out += d))
        child.stderr.on("data", d => (out += d))
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs + 30000)
        child.on("close", code => {
            clearTimeout(timer)
            const figures = []
            for (const m of out.matchAll(/BENCHDEV (\{.*\})/g)) {
                const f = JSON.parse(m[1])
                if (f.lo !== undefined) f.value += f.lo
                figures.push(f)
            }
            resolve({ code, out, figures })
        })
    })
}

/** `npm run build:esp32c3`'s image size in bytes. */
export function esp32c3Bytes(root) {
    const devs = join(root, "node_modules", ".bin", "devs")
    const env = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }
    const b = spawnSync(devs, ["build", "--quiet", "src/boards/esp32c3.ts"], { cwd: root, env, encoding: "utf8" })
    if (b.status !== 0) throw new Error("devs build src/boards/esp32c3.ts failed: " + b.stdout + b.stderr)
    return statSync(join(root, ".devicescript", "bin", "bytecode.devs")).size
}

const round = v => Math.round(v)
const range = (lo, hi) => (hi >= 100 ? `${round(lo)}..${round(hi)}` : `${+lo.toPrecision(3)}..${+hi.toPrecision(3)}`)

export async function run(ctx) {
    const { root } = ctx
    const figures = []
    const fw = esp32c3Bytes(root)
    figures.push({ name: "device firmware bytecode (npm run build:esp32c3)", value: fw, unit: "B", note: "limit 48 KB = 49152 B" })
    if (ctx.noDevice) return figures

    const { config, pool } = await makePairings(1)
    const d = pool.devices[0]
    const srv = await startServerProcess({ kind: "tether", config })
    let r
    try {
        const env = {
            PORT: srv.port,
            DEV_ID: d.deviceId.toString("hex"),
            DEV_PRIV: d.s.privateKey.toString("hex"),
            GW_PUB: d.gatewayPublic.toString("hex"),
            PSK: d.psk.toString("hex"),
            MODE: "cost",
            BALLAST: 0,
            ROUNDS: 2,
        }
        let text = "// GENERATED by devs/bench/device.mjs for one device run: do not edit, not committed.\n"
        for (const [k, v] of Object.entries(env)) text += `export const ${k}: ${typeof v} = ${JSON.stringify(v)}\n`
        writeFileSync(join(root, ENV_FILE), text)
        r = await runCounting(root, ENTRY, 300000)
    } finally {
        srv.stop()
    }
    if (r.code !== 0) throw new Error(`${ENTRY} failed (${r.code}):\n${r.out.slice(-3000)}`)
    // round 0 runs on the settings-backed ticket store (the device's), round 1 on memory
    const all = name => r.figures.filter(f => f.name === name).map(f => f.value)
    const one = name => {
        const v = all(name)
        if (v.length === 0) throw new Error(`${ENTRY}: no figure ${name}`)
        return v[0]
    }
    const x = one("x25519")
    const full = one("full")
    const fullDh = one("full_dh")
    const res = one("resume")
    const resDh = one("resume_dh")
    const fullFirst = one("full_first")
    const resFirst = one("resume_first")
    const memFirst = all("resume_first")[1]
    const memRes = all("resume")[1]
    const how = "counted by the VM (counting simulator, devs/bench/device/counting-vm.mjs)"
    const heapSize = one("heap_size")
    const heapRow = (label, key, extra = "") => {
        const before = one(`heap_${key}_before`)
        const peak = one(`heap_${key}_peak`)
        return {
            name: `device peak heap: ${label}`,
            value: peak - before,
            unit: "B",
            note: `measured by the VM (counting simulator, GC stress: peak live heap during the step less the live heap before it, ${before} B); the program's whole heap at the peak ${peak} of ${heapSize} B${extra}`,
        }
    }
    const est = (label, n) => {
        const m = chipMs(n)
        return [
            {
                name: `device ${label}: ESP32-C3 estimate`,
                value: (m.c3lo + m.c3hi) / 2,
                unit: "ms",
                note: `ESTIMATE from ${round(n)} instr x 207..231 cycles/instr at 160 MHz: ${range(m.c3lo, m.c3hi)} ms; bytecode only (native AES, SHA-256, flash, radio not included)`,
            },
            {
                name: `device ${label}: RP2040 estimate`,
                value: m.rp,
                unit: "ms",
                note: `ESTIMATE from ${round(n)} instr x ~320 cycles/instr at 125 MHz; bytecode only`,
            },
        ]
    }
    figures.push(
        {
            name: "device X25519 bytecode instructions",
            value: x,
            unit: "instr/op",
            note: `${how}; RFC 7748 vector 1, checked; limit 3.3 M`,
        },
        {
            name: "device X25519 longest slice between yields",
            value: one("x25519_slice"),
            unit: "instr",
            note: "the counting VM's longest run within one entry into its interpreter loop; limit 50 K (VM panics at 131072)",
        },
        ...est("X25519", x),
        {
            name: "device idle work before a full handshake (ss, ephemeral, es)",
            value: one("prepare"),
            unit: "instr",
            note: `${one("prepare_x25519")} X25519 ops, off the critical path (PROTOCOL.md 4.3)`,
        },
        {
            name: "device full handshake: X25519 on the critical path",
            value: one("full_x25519"),
            unit: "ops",
            note: "ee and se; es and ss prepared while idle",
        },
        { name: "device full handshake (connect)", value: full, unit: "instr", note: `${how}; from a prepared client, empty ticket store` },
        {
            name: "device full handshake without X25519",
            value: full - fullDh,
            unit: "instr",
            note: `connect() less the ${round(fullDh)} instr inside X25519 calls`,
        },
        ...est("full handshake", full),
        {
            name: "device full handshake: first record + TICKET saved",
            value: fullFirst,
            unit: "instr",
            note: "send of a 100-byte DATA, the gateway's answer and its TICKET (settings-backed store)",
        },
        { name: "device resumption: X25519", value: one("resume_x25519"), unit: "ops" },
        {
            name: "device resumption (connect)",
            value: res,
            unit: "instr",
            note: `${how}; settings-backed ticket store (${round(memRes)} with the memory store)`,
        },
        { name: "device resumption without X25519", value: res - resDh, unit: "instr" },
        ...est("resumption", res),
        {
            name: "device resumption: first record + TICKET saved",
            value: resFirst,
            unit: "instr",
            note: `settings-backed store (the device's); ${round(memFirst)} with the in-memory store of round 2`,
        },
        heapRow("full handshake (connect)", "full", "; budget 8 KB = 8192 B (issue 17)"),
        heapRow("full handshake: first record + TICKET saved", "full_first", "; budget 8 KB = 8192 B"),
        heapRow("resumption (connect)", "resume", "; budget 8 KB = 8192 B"),
        heapRow("resumption: first record + TICKET saved", "resume_first", "; budget 8 KB = 8192 B"),
        heapRow("idle work before a full handshake (prepare)", "prepare"),
        heapRow("one X25519", "x25519"),
        {
            name: "device record send, 100-byte DATA",
            value: one("send100"),
            unit: "instr",
            note: "Connection.send: encrypt (native), header, frame, socket write",
        },
        {
            name: "device record receive, 1-byte DATA",
            value: one("recv"),
            unit: "instr",
            note: "Connection.receive: socket fiber, unframe, decrypt (native)",
        }
    )
    return figures
}
