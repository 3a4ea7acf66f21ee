// What the step-by-step scenarios (devs/demo.mjs: `npm start`; devs/cluster.mjs: `npm run
// cluster`) share: the output, the operator CLI, the real firmware in the DeviceScript simulator
// outside test mode with its flash provisioned as a deploy would, waiting for the device's lines,
// the steps, and the bookkeeping of what the scenario did not cause: a step that succeeds after a
// hidden failure is not a success.
import { spawn, spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import net from "node:net"
import { join, relative, sep } from "node:path"
import { fileURLToPath } from "node:url"

export const root = join(fileURLToPath(import.meta.url), "..", "..", "..")
export const scripted = process.argv.includes("--scripted")
export const CLI = join(root, "gateway-peer", "bin", "tether-gateway.js")
export const DEVS = join(root, "node_modules", ".bin", "devs")
/**
 * The environment of every child: the operator's own TETHER_STORE, TETHER_KEK and TETHER_NODE
 * are not passed on (TETHER_KEK would win over a scenario's --kek-file): a scenario runs the
 * gateway it made, with the arguments it prints.
 */
export const ENV = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }
for (const v of ["TETHER_STORE", "TETHER_KEK", "TETHER_NODE"]) delete ENV[v]

export const bold = s => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
/** One line of output: its tag, then the text (a text of several lines: each under the first). */
export const say = (tag, text) =>
    console.log(
        `${bold(tag.padEnd(8))} ${String(text)
            .split("\n")
            .join("\n" + " ".repeat(9))}`
    )
export const sleep = ms => new Promise(r => setTimeout(r, ms))

/** Every child process started (killed on exit, whatever the outcome). */
export const children = []
let failed = false

/** Runs the operator CLI to completion; its stdout. @throws on a non-zero exit, with its stderr */
export function cli(args) {
    const r = spawnSync(process.execPath, [CLI, ...args], { env: ENV, encoding: "utf8" })
    if (r.status !== 0) throw new Error(`tether-gateway ${args[0]} failed: ${r.stderr.trim()}`)
    return r.stdout.trim()
}

/** Reads the `.env` file pairing wrote (values are JSON-quoted strings or numbers). */
export function readEnv(path) {
    const out = {}
    for (const line of readFileSync(path, "utf8").split("\n")) {
        const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim())
        if (m) out[m[1]] = JSON.parse(m[2])
    }
    return out
}

/** @throws when the gateway is not built (a clone without npm install) */
export function assertBuilt(more = true) {
    if (!more || !existsSync(join(root, "gateway-peer", "dist", "src", "cli.js")))
        throw new Error("the gateway is not built: run npm install (or npm run build) first")
}

// ---- what the scenario did not cause ----------------------------------------------------------

/** A gateway log line that names PROTOCOL_ERROR anywhere (a REJECT, a CLOSE, the app's close). */
export function protocolError(line) {
    return Object.values(line).some(v => v === "PROTOCOL_ERROR") || line.outcome === "protocol-error"
}

/**
 * The failures seen in the logs, checked after every step: gateway lines that name a protocol
 * error (or an error of the node itself, with `errors: true`), and every "LINK down" of the device
 * that the scenario did not announce with expectDowns(n) before causing it. The firmware boots
 * "connecting" (src/link.ts): any "LINK down", the first one too, is an attempt or a session that
 * ended.
 */
export class Watch {
    /** the "LINK down" lines announced and not seen yet */
    expectedDowns = 0
    /** every failure seen so far, a line of text each */
    unexpected = []

    expectDowns(n) {
        this.expectedDowns += n
    }

    device(line) {
        if (!line.startsWith("LINK down")) return
        if (this.expectedDowns > 0) this.expectedDowns--
        else this.unexpected.push(`the device's link went down and the scenario did not cause it: ${line}`)
    }

    /** A gateway's JSON log line; `who` names the node in the report. */
    gateway(line, who = "gateway", errors = false) {
        if (protocolError(line)) this.unexpected.push(`PROTOCOL_ERROR in a ${who} log line: ${JSON.stringify(line)}`)
        else if (errors && (line.outcome === "error" || line.outcome === "internal-error" || line.level === "error"))
            this.unexpected.push(`an error in a ${who} log line: ${JSON.stringify(line)}`)
    }

    /** @throws if anything unexpected was seen so far */
    check() {
        if (this.unexpected.length > 0) throw new Error(`${this.unexpected.length} unexpected event(s):\n  ${this.unexpected.join("\n  ")}`)
    }

    /** @throws if the scenario caused more "LINK down" than the device reported */
    checkAccounted() {
        if (this.expectedDowns > 0) throw new Error(`the scenario caused ${this.expectedDowns} more LINK down than the device reported`)
    }
}

// ---- the device in the simulator, outside test mode ---------------------------------------

/**
 * The simulator outside test mode wants a devtools peer on 127.0.0.1:8082; a listener will do.
 * The port is the lock between runs that need it (another demo, the restart tests): wait for it.
 */
const PORT_8082 =
    "The DeviceScript simulator needs it outside test mode, and one program holds it at a time: another " +
    "`npm start`/`npm run demo`/`npm run cluster`/`npm run sim`, DeviceScript's devtools (`devs devtools`, " +
    "`devs run --tcp`) or the DeviceScript extension of VS Code. Find it with `ss -ltnp 'sport = :8082'` or `lsof -i :8082`."

export async function startDevtoolsStandIn(waitMs = 300000) {
    const deadline = Date.now() + waitMs
    let said = false
    for (;;) {
        try {
            return await listenDevtools()
        } catch (e) {
            if (e.code !== "EADDRINUSE" || Date.now() > deadline)
                throw new Error(`cannot listen on 127.0.0.1:8082 (${e.code}): ${PORT_8082}`)
            if (!said) say("WAIT", `port 8082 is in use; waiting for it to be free. ${PORT_8082}`)
            said = true
            await sleep(500)
        }
    }
}

function listenDevtools() {
    return new Promise((resolve, reject) => {
        const sockets = []
        const server = net.createServer(s => {
            sockets.push(s)
            s.on("error", () => {})
        })
        server.once("error", reject)
        server.listen(8082, "127.0.0.1", () => resolve({ close: () => (sockets.forEach(s => s.destroy()), server.close()) }))
    })
}

/**
 * Throws in test/run-all.mjs's node lane (a test file marked `// @lane node`, run beside the
 * simulator lane): one DeviceScript build or simulator at a time.
 */
function refuseInNodeLane(what) {
    if (process.env.TETHER_TEST_LANE === "node")
        throw new Error(`${what}: a test marked "// @lane node" runs DeviceScript; remove the mark (test/run-all.mjs)`)
}

/**
 * Compiles `entry` with DeviceScript's compiler into `dir`/.devicescript/bin; says so before (it
 * takes seconds) and after (its size and time), unless `quiet`.
 * @returns the image's path
 * @throws with the compiler's own message when it fails
 */
export function buildIn(dir, entry, quiet = false) {
    refuseInNodeLane(entry)
    const shown = entry.startsWith(root + sep) ? relative(root, entry) : entry
    if (!quiet) say("BUILD", `compiling ${shown} with DeviceScript (a few seconds)…`)
    const t0 = Date.now()
    const r = spawnSync(DEVS, ["build", entry, "--ignore-missing-config", "--no-colors"], { cwd: dir, env: ENV, encoding: "utf8" })
    if (r.status !== 0) throw new Error(`devs build ${shown} failed:\n${(r.stdout + r.stderr).trim()}`)
    const image = join(dir, ".devicescript", "bin", "bytecode.devs")
    if (!quiet) say("BUILD", `${shown}: ${statSync(image).size} bytes of bytecode in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return image
}

/**
 * Runs a program in the simulator with `dir` as its working directory (its flash:
 * `dir`/.devicescript/flash); the program built in `dir` unless `image` names another; calls
 * onLine for every line it prints.
 */
export function runProgram(dir, onLine, image = join(".devicescript", "bin", "bytecode.devs")) {
    refuseInNodeLane(image)
    const child = spawn(DEVS, ["run", "--tcp", "--no-colors", image], {
        cwd: dir,
        env: ENV,
        stdio: ["ignore", "pipe", "pipe"],
    })
    children.push(child)
    let rest = ""
    const feed = d => {
        rest += d
        const lines = rest.split("\n")
        rest = lines.pop()
        for (const l of lines) onLine(l.replace(/^WASM> /, "").trim())
    }
    child.stdout.on("data", feed)
    child.stderr.on("data", feed)
    return child
}

/**
 * Writes the pairing settings into the flash of the simulated device in `dir`, as a deploy
 * would: a generated program (deleted after its build, its image too) writes them.
 */
export async function provision(dir, settings) {
    const lines = Object.entries(settings).map(([k, v]) => `    await writeSetting(${JSON.stringify(k)}, ${JSON.stringify(v)})`)
    const src = join(dir, "provision.ts")
    writeFileSync(
        src,
        `// GENERATED by devs/lib/demo-common.mjs: writes the pairing settings to flash. Holds secrets; deleted after the build.\n` +
            `import { writeSetting } from "@devicescript/settings"\n${lines.join("\n")}\nconsole.log("PROVISIONED")\n`,
        { mode: 0o600 }
    )
    try {
        buildIn(dir, "provision.ts", true)
    } finally {
        rmSync(src, { force: true })
    }
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("provisioning did not finish")), 30000)
        const child = runProgram(dir, line => {
            if (line.includes("PROVISIONED")) {
                clearTimeout(timer)
                setTimeout(() => {
                    child.kill("SIGKILL")
                    resolve()
                }, 300)
            }
        })
    })
    // the program image that carried the secrets is not kept
    rmSync(join(dir, ".devicescript", "bin"), { recursive: true, force: true })
}

// ---- the scenario ---------------------------------------------------------------------------

/** The firmware's "link up" line: resumed, handshake ms, fell back, X25519 operations, endpoint. */
export const UP = /LINK up resumed=(\d) ms=(\d+) fallback=(\d) .*x25519=(\d+) endpoint=(\d+)/

/** Waits until a device line matches; returns the match. */
export function waiter() {
    const pending = []
    return {
        line(l) {
            for (const p of [...pending])
                if (p.re.test(l)) {
                    pending.splice(pending.indexOf(p), 1)
                    p.resolve(p.re.exec(l))
                }
        },
        wait(re, ms, what) {
            return new Promise((resolve, reject) => {
                const p = { re, resolve }
                pending.push(p)
                setTimeout(() => {
                    if (pending.includes(p)) {
                        pending.splice(pending.indexOf(p), 1)
                        reject(new Error(`timed out waiting for ${what}`))
                    }
                }, ms)
            })
        },
    }
}

/** Runs one step of the scenario: its title, then OK, or FAILED and the reason. */
export async function step(watch, title, fn) {
    console.log("")
    say("STEP", title)
    try {
        await fn()
        watch.check()
        say("OK", title)
    } catch (e) {
        failed = true
        say("FAILED", `${title}: ${e.message}`)
        // what went wrong underneath, when the step failed on its own check first
        if (watch.unexpected.length > 0 && !e.message.includes("unexpected event"))
            say("FAILED", `and ${watch.unexpected.length} unexpected event(s):\n  ${watch.unexpected.join("\n  ")}`)
        throw e
    }
}

/** What to stop and remove on exit, also after a failure or a Ctrl-C in the middle; last first. */
const cleanups = []
export const onCleanup = fn => cleanups.push(fn)
let waitingForCtrlC
const ctrlC = new Promise(r => (waitingForCtrlC = r))
let waiting = false

/** The end of a scenario in a terminal: it keeps running until Ctrl-C. */
export function untilInterrupted() {
    waiting = true
    return ctrlC
}

async function cleanupAll() {
    while (cleanups.length > 0) await Promise.resolve(cleanups.pop()()).catch(e => console.error(`cleanup: ${e.message}`))
    for (const c of children) c.kill("SIGKILL")
}

/**
 * Runs a scenario's main(), then stops what it started (onCleanup, every child) and exits: 0 when
 * every step succeeded, 1 otherwise. A Ctrl-C (or SIGTERM) before the scenario's end stops it the
 * same way, with 130. `what` names it in the failure message.
 */
export function run(what, main) {
    let stopping = false
    const interrupt = () => {
        if (waiting) return waitingForCtrlC()
        if (stopping) return
        stopping = true
        console.error(`\n${what} interrupted: stopping everything it started`)
        cleanupAll().finally(() => process.exit(130))
    }
    process.on("SIGINT", interrupt)
    process.on("SIGTERM", interrupt)
    main()
        .catch(e => {
            failed = true
            console.error(`\n${what} failed: ${e.message}`)
        })
        .finally(async () => {
            stopping = true
            await cleanupAll()
            process.exit(failed ? 1 : 0)
        })
}
