#!/usr/bin/env node
// `npm run bench`: every figure Tether claims, measured in one run on this machine.
//
// Each module in devs/bench/*.mjs exports `async function run(ctx)` returning figures
// `{ name, value, unit, note? }`. A figure is a median of several runs; a module puts the run
// count and spread in `note`. This driver prints one `BENCH {...}` JSON line per figure, then a
// markdown table; with `--write-docs` it replaces the table in docs/bench.md (between its
// bench:begin and bench:end markers) with this run's.
//
// Device programs run in the DeviceScript simulator (`devs run --test -k`) and print their own
// figures as `BENCHDEV {...}` lines, which ctx.runDevice parses.
//
// Arguments: words select groups (modules whose file name contains one of them: `npm run bench
// -- compare gateway`); `--no-device` leaves out the tether group's device rows (the
// simulator; ctx.noDevice); `--write-docs` writes the table, and only for a whole run (no
// group selected, no --no-device, no --quick, no group failed): docs/bench.md holds one whole
// run. `--quick` (or TETHER_BENCH_QUICK=1) makes the groups that know it (perf) run in seconds.
import { spawn } from "node:child_process"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = join(fileURLToPath(import.meta.url), "..", "..")
const args = process.argv.slice(2)
const writeDocs = args.includes("--write-docs")
const noDevice = args.includes("--no-device")
// --quick (or TETHER_BENCH_QUICK=1): the groups that know it (perf) run a few connections once,
// for a smoke test; their values mean nothing, so the table is never written
const quick = args.includes("--quick") || process.env.TETHER_BENCH_QUICK === "1"
const filters = args.filter(a => !a.startsWith("--"))

/** Median of a list of numbers. */
function median(xs) {
    const s = [...xs].sort((a, b) => a - b)
    const m = s.length >> 1
    return s.length & 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Spread as "min..max" of a list of numbers, rounded for display. */
function spread(xs) {
    const r = v => (Math.abs(v) >= 100 ? Math.round(v) : +v.toPrecision(3))
    return `${r(Math.min(...xs))}..${r(Math.max(...xs))}`
}

/** Runs a DeviceScript entry in the simulator; returns its exit code, output and BENCHDEV figures. */
function runDevice(entry, timeoutMs = 600000) {
    return new Promise(resolve => {
        const devs = join(root, "node_modules", ".bin", "devs")
        const child = spawn(devs, ["run", "--test", "-k", "-T", String(timeoutMs), "--no-colors", entry], {
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
            for (const m of out.matchAll(/BENCHDEV (\{.*\})/g)) figures.push(JSON.parse(m[1]))
            resolve({ code, out, figures })
        })
    })
}

const ctx = { root, median, spread, runDevice, noDevice, quick }
// the machine's load when the run started (one-minute average): other work shares the cores
const loadAtStart = loadavg()[0]
const modules = readdirSync(join(root, "devs", "bench"))
    .filter(f => f.endsWith(".mjs"))
    .filter(f => filters.length === 0 || filters.some(x => f.includes(x)))
    .sort()

const rows = []
let failed = false
for (const file of modules) {
    const mod = await import(pathToFileURL(join(root, "devs", "bench", file)).href)
    try {
        const figures = await mod.run(ctx)
        for (const f of figures) {
            const line = { name: f.name, value: f.value, unit: f.unit }
            if (f.note) line.note = f.note
            console.log("BENCH " + JSON.stringify(line))
            rows.push({ group: file.replace(/\.mjs$/, ""), ...f })
        }
    } catch (e) {
        failed = true
        console.error(`bench ${file} failed: ${e && e.stack ? e.stack : e}`)
    }
}

const fmt = v => (typeof v !== "number" ? String(v) : Math.abs(v) >= 100 ? String(Math.round(v)) : String(+v.toPrecision(3)))
const table = [
    "| group | figure | value | unit | runs, spread / how |",
    "|---|---|---:|---|---|",
    ...rows.map(r => `| ${r.group} | ${r.name} | ${fmt(r.value)} | ${r.unit} | ${r.note || ""} |`),
].join("\n")
console.log("\n" + table)

if (writeDocs && (filters.length > 0 || noDevice || quick)) {
    console.error("--write-docs: not a whole run (groups selected, --no-device or --quick): docs/bench.md left as it was")
    failed = true
} else if (writeDocs && !failed) {
    const path = join(root, "docs", "bench.md")
    const doc = readFileSync(path, "utf8")
    const begin = "<!-- bench:begin -->"
    const end = "<!-- bench:end -->"
    const i = doc.indexOf(begin)
    const j = doc.indexOf(end)
    if (i < 0 || j < i) throw new Error("docs/bench.md has no bench markers")
    const load = `load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end`
    const stamp = `Measured by \`npm run bench -- --write-docs\` on ${new Date().toISOString().slice(0, 10)} (${process.platform}, Node ${process.version}, ${cpus().length} cores, ${load}).`
    writeFileSync(path, doc.slice(0, i + begin.length) + "\n" + stamp + "\n\n" + table + "\n" + doc.slice(j))
    console.log("docs/bench.md bench table written")
}
process.exit(failed ? 1 : 0)
