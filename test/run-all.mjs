#!/usr/bin/env node
// Runs every test of the project and ends with one line "N passed, N failed".
//
//   gateway unit tests   node:test over gateway-peer/dist/test/**      (TAP, counted per test)
//   device tests         each test/device/**/*.test.ts in the DeviceScript simulator
//                        (`devs run --test -k`), counted from its "tests: N, pass: P" line
//   end-to-end tests     node:test over test/e2e/dist/*.test.js, one file at a time: each
//                        starts a gateway in Node and a device program in the simulator
//   devs checks          node:test over test/devs/*.test.mjs: the generators reproduce the
//                        committed vectors, the formatter finds nothing to change
//
// `--slow` runs the exhaustive suites instead (test/slow/*.test.ts on the device, and the
// node:test files named *.slow.test.js): all Wycheproof vectors through the simulator, the
// 1000-iteration RFC 7748 ladder, ...
// `--only devs|gateway|device|e2e` restricts to one group; further arguments filter file names.
//
// Two lanes run side by side (2 cores): the simulator lane runs, one file at a time, everything
// that compiles or runs DeviceScript (the simulator, `devs build`, the shared
// test/e2e/device/env.generated.ts and .devicescript/ all allow one at a time); the node lane
// runs the gateway unit tests and every file marked `// @lane node` (it starts no simulator and
// compiles nothing; in such a file the harness refuses to start one, so a wrong mark fails
// loudly instead of racing). `--serial` runs the lanes one after the other.
import { spawn } from "node:child_process"
import { readdirSync, readFileSync, existsSync, statSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(fileURLToPath(import.meta.url), "..", "..")
const args = process.argv.slice(2)
const slow = args.includes("--slow")
const serial = args.includes("--serial")
const onlyIdx = args.indexOf("--only")
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined
const filters = args.filter((a, i) => !a.startsWith("--") && (onlyIdx < 0 || i !== onlyIdx + 1))

const env = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }
const devs = join(root, "node_modules", ".bin", "devs")

let passed = 0
let failed = 0
const failures = []

function listFiles(dir, pred) {
    if (!existsSync(dir)) return []
    const out = []
    for (const name of readdirSync(dir).sort()) {
        const p = join(dir, name)
        if (statSync(p).isDirectory()) out.push(...listFiles(p, pred))
        else if (pred(name)) out.push(p)
    }
    return out.filter(p => filters.length === 0 || filters.some(f => p.includes(f)))
}

function run(cmd, argv, timeoutMs, lane = "sim") {
    return new Promise(resolve => {
        const child = spawn(cmd, argv, { cwd: root, env: { ...env, TETHER_TEST_LANE: lane }, stdio: ["ignore", "pipe", "pipe"] })
        let out = ""
        child.stdout.on("data", d => {
            out += d
            if (process.env.TETHER_TEST_VERBOSE) process.stdout.write(d)
        })
        child.stderr.on("data", d => {
            out += d
            if (process.env.TETHER_TEST_VERBOSE) process.stderr.write(d)
        })
        const timer = setTimeout(() => {
            out += `\n[run-all] killed after ${timeoutMs} ms\n`
            child.kill("SIGKILL")
        }, timeoutMs)
        child.on("close", code => {
            clearTimeout(timer)
            resolve({ code, out })
        })
    })
}

// A file marked `// @lane node` runs in the node lane (see the top of this file).
function nodeLane(file) {
    return /^\/\/\s*@lane\s+node\b/m.test(readFileSync(file, "utf8"))
}

// A device test file may say how long it needs: a line `// @timeout 60000`.
function fileTimeout(file, dflt) {
    const m = /\/\/\s*@timeout\s+(\d+)/.exec(readFileSync(file, "utf8"))
    return m ? +m[1] : dflt
}

async function deviceFile(file) {
    const t0 = Date.now()
    const timeout = fileTimeout(file, 30000)
    const rel = relative(root, file)
    const { code, out } = await run(devs, ["run", "--test", "-k", "-T", String(timeout), "--no-colors", rel], timeout + 30000)
    const m = /tests: (\d+), pass: (\d+), error: (\d+)/.exec(out)
    let p = 0
    let f = 0
    if (m) {
        p = +m[2]
        f = +m[3]
        if (+m[1] !== p + f) f += +m[1] - p - f
    }
    if (code !== 0 && f === 0) f = 1 // crashed, panicked or timed out without a summary
    if (!m && code === 0) f = 1 // a file that ran no test is a failure, not a pass
    report(rel, p, f, out, Date.now() - t0)
}

function parseTap(out) {
    const p = /^# pass (\d+)$/m.exec(out)
    const f = /^# fail (\d+)$/m.exec(out)
    const c = /^# cancelled (\d+)$/m.exec(out)
    return { p: p ? +p[1] : 0, f: (f ? +f[1] : 0) + (c ? +c[1] : 0), ok: !!p }
}

async function nodeFiles(label, files, timeout, lane = "sim") {
    if (!files.length) return
    const t0 = Date.now()
    const { code, out } = await run(
        process.execPath,
        ["--test", "--test-concurrency=1", "--test-reporter=tap", ...files.map(f => relative(root, f))],
        timeout,
        lane
    )
    let { p, f, ok } = parseTap(out)
    if (!ok || (code !== 0 && f === 0)) f += 1
    report(label, p, f, out, Date.now() - t0)
}

function report(label, p, f, out, ms) {
    passed += p
    failed += f
    const status = f ? "FAIL" : "ok  "
    console.log(`${status} ${label}: ${p} passed, ${f} failed (${(ms / 1000).toFixed(1)} s)`)
    if (f) failures.push({ label, out })
}

const want = g => !only || only === g
const isSlowNode = n => n.endsWith(".slow.test.js")

const devsFiles = want("devs") && !slow ? listFiles(join(root, "test", "devs"), n => n.endsWith(".test.mjs")) : []
const gatewayFiles = want("gateway")
    ? listFiles(join(root, "gateway-peer", "dist", "test"), n => (slow ? isSlowNode(n) : n.endsWith(".test.js") && !isSlowNode(n)))
    : []
const deviceFiles = want("device") ? listFiles(join(root, "test", slow ? "slow" : "device"), n => n.endsWith(".test.ts")) : []
const e2eFiles = want("e2e")
    ? listFiles(join(root, "test", "e2e", "dist"), n => (slow ? isSlowNode(n) : n.endsWith(".test.js") && !isSlowNode(n)))
    : []

async function theNodeLane() {
    await nodeFiles("gateway-peer (node:test)", gatewayFiles, 600000, "node")
    await nodeFiles("devs checks, node lane (node:test)", devsFiles.filter(nodeLane), 300000, "node")
    for (const f of e2eFiles.filter(nodeLane)) await nodeFiles(relative(root, f), [f], 600000, "node")
}

async function theSimulatorLane() {
    await nodeFiles(
        "devs checks, simulator lane (node:test)",
        devsFiles.filter(f => !nodeLane(f)),
        300000
    )
    for (const f of deviceFiles) await deviceFile(f)
    for (const f of e2eFiles.filter(f => !nodeLane(f))) await nodeFiles(relative(root, f), [f], 600000)
}

if (serial) {
    await theNodeLane()
    await theSimulatorLane()
} else await Promise.all([theNodeLane(), theSimulatorLane()])

for (const { label, out } of failures) {
    console.log(`\n===== ${label} =====`)
    const lines = out.split("\n")
    console.log(lines.slice(Math.max(0, lines.length - 120)).join("\n"))
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed || passed === 0 ? 1 : 0)
