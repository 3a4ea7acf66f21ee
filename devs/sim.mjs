#!/usr/bin/env node
// `npm run sim -- src/my-firmware.ts`: runs any firmware entry in the DeviceScript simulator as a
// paired device, against a gateway you serve yourself (`npx tether-gateway serve` in another
// terminal), until Ctrl-C.
//
// `devs run` alone cannot do this: it deploys the program without the settings, so the link finds
// no TT_* pairing (and without DeviceScript's devtools it has nothing to run in). This does what a
// deploy to a board does: it writes the settings `tether-gateway pair` wrote (.env.local, over
// .env.defaults) into the simulated device's flash, then runs the program there. The flash is
// kept per entry in .tether/sim/<entry>/ (git-ignored), so the tickets the gateway hands out
// survive runs as on a board; `--fresh` starts from an empty flash. A new pairing (another TT_ID)
// also starts from an empty flash.
//
//   node devs/sim.mjs [--env FILE] [--fresh] ENTRY.ts
//
// TETHER_SIM_DIR moves the flash directory elsewhere (the end-to-end test runs it in a temp dir).
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { basename, join, relative, resolve, sep } from "node:path"
import { parseArgs } from "node:util"
import {
    buildIn,
    onCleanup,
    provision,
    readEnv,
    root,
    run,
    runProgram,
    say,
    startDevtoolsStandIn,
    untilInterrupted,
} from "./lib/demo-common.mjs"

const USAGE = `usage: npm run sim -- [--env FILE] [--fresh] ENTRY.ts

Runs a firmware entry (a DeviceScript program using src/link.ts) in the DeviceScript simulator
with the pairing settings in its flash, against the gateway you serve:

  1. npx tether-gateway pair NAME      writes the device's settings to .env.local
  2. npx tether-gateway serve          in another terminal
  3. npm run sim -- src/examples/hello.ts

  --env FILE   the settings file (default .env.local; .env.defaults fills what it lacks)
  --fresh      start from an empty flash (no stored tickets)

Ctrl-C stops it.`

/** What `devs run` prints before the program's first line. */
const RUNTIME_LINE = /^(using devs: |connected to 127\.0\.0\.1:8082|self-deployed |DeviceScript Simulator \(WASM\)|start: )/

/** A usage error, or a missing input: the message and exit 2, before anything started. */
function fail(message) {
    console.error(`npm run sim: ${message}`)
    process.exit(2)
}

let args
try {
    args = parseArgs({
        args: process.argv.slice(2),
        allowPositionals: true,
        options: { env: { type: "string" }, fresh: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    })
} catch (e) {
    fail(`${e.message}\n\n${USAGE}`)
}
if (args.values.help) {
    console.log(USAGE)
    process.exit(0)
}
if (args.positionals.length !== 1) fail(`name one firmware entry (a .ts file)\n\n${USAGE}`)

// npm runs scripts at the package's root: paths are the user's, from where they typed the command
const cwd = process.env.INIT_CWD || process.cwd()
const entry = resolve(cwd, args.positionals[0])
if (!existsSync(entry)) fail(`no such file: ${entry}`)
if (!entry.endsWith(".ts")) fail(`${entry} is not a DeviceScript entry (a .ts file)`)

const envFile =
    args.values.env !== undefined ? resolve(cwd, args.values.env) : [join(cwd, ".env.local"), join(root, ".env.local")].find(existsSync)
if (envFile === undefined || !existsSync(envFile))
    fail(
        `no settings file ${envFile ?? ".env.local"}: pair a device first with ` +
            (args.values.env !== undefined
                ? `\`npx tether-gateway pair NAME --out ${args.values.env}\``
                : "`npx tether-gateway pair NAME` (it writes .env.local)") +
            ", and serve the gateway in another terminal: `npx tether-gateway serve`"
    )
let settings
try {
    const defaults = existsSync(join(root, ".env.defaults")) ? readEnv(join(root, ".env.defaults")) : {}
    settings = { ...defaults, ...readEnv(envFile) }
} catch (e) {
    fail(`cannot read the settings file ${envFile}: ${e.message}`)
}
if (typeof settings.TT_ID !== "string" || settings.TT_GW_HOST === undefined)
    fail(`${envFile} is not a Tether pairing (no TT_ID or TT_GW_HOST): write one with \`npx tether-gateway pair NAME\``)
const deviceName = /^# Tether pairing of device "([^"]*)"/m.exec(readFileSync(envFile, "utf8"))?.[1] ?? "(unnamed)"
const gateway = `${settings.TT_GW_HOST}:${settings.TT_GW_PORT ?? 4433}`

/** The entry's own flash directory: its path in the project, else its name and where it is. */
function deviceDir() {
    if (process.env.TETHER_SIM_DIR) return resolve(process.env.TETHER_SIM_DIR)
    const rel = entry.startsWith(root + sep) ? relative(root, entry) : basename(entry)
    return join(root, ".tether", "sim", rel.replace(/\.ts$/, "").replace(/[^A-Za-z0-9._-]+/g, "_"))
}

/**
 * Waits until the simulator has left its flash file alone for 500 ms (at most 3 s): it rewrites
 * the whole file on every settings write, and a kill in the middle of one (a TICKET being
 * stored) would leave a truncated file, read as a blank flash on the next run.
 */
async function flashQuiet(dir) {
    const file = join(dir, ".devicescript", "flash", "sim.bin")
    const end = Date.now() + 3000
    while (Date.now() < end) {
        if (!existsSync(file) || Date.now() - statSync(file).mtimeMs >= 500) return
        await sleep(100)
    }
}

async function main() {
    const dir = deviceDir()
    const idFile = join(dir, "paired-id")
    if (args.values.fresh) {
        rmSync(dir, { recursive: true, force: true })
        say("SIM", "--fresh: the simulated device starts from an empty flash")
    } else if (existsSync(idFile) && readFileSync(idFile, "utf8").trim() !== settings.TT_ID) {
        // another pairing: the stored tickets belong to the old one
        rmSync(dir, { recursive: true, force: true })
        say("SIM", "a new pairing in the settings file: the simulated device starts from an empty flash")
    }
    mkdirSync(join(dir, "build"), { recursive: true, mode: 0o700 })
    writeFileSync(idFile, settings.TT_ID + "\n")
    const shown = entry.startsWith(root + sep) ? relative(root, entry) : entry
    say("SIM", `${shown} as device "${deviceName}" (settings from ${envFile}), gateway ${gateway}; flash in ${dir}`)

    // the program first: a compile error is reported before anything else runs
    const image = buildIn(join(dir, "build"), entry)
    const devtools = await startDevtoolsStandIn()
    onCleanup(() => devtools.close())
    await provision(dir, settings)
    say("SIM", "settings written to the simulated flash (ids and keys, never printed); starting the program")

    let hinted = false
    const hint = (tag, text) => {
        if (hinted) return
        hinted = true
        say(tag, text)
    }
    const device = runProgram(
        dir,
        line => {
            // the simulator's own start-up lines (version, devtools, deploy) are not the firmware's
            if (line === "" || RUNTIME_LINE.test(line)) return
            say("DEVICE", line)
            if (/UNKNOWN_DEVICE|REVOKED/.test(line))
                hint(
                    "HINT",
                    `the gateway does not accept this pairing any more (removed, revoked or re-keyed): pair again ` +
                        `(npx tether-gateway pair ${deviceName} --force), then npm run sim again`
                )
            else if (/refused|ECONNREFUSED|unreachable|EHOSTUNREACH|timed? ?out/i.test(line))
                hint(
                    "HINT",
                    `the device cannot reach a gateway at ${gateway}: is one running? In another terminal: npx tether-gateway serve` +
                        (String(settings.TT_GW_PORT ?? 4433) !== "4433" ? ` --port ${settings.TT_GW_PORT}` : "") +
                        " (the device keeps retrying)"
                )
        },
        image
    )
    onCleanup(async () => {
        await flashQuiet(dir)
        device.kill("SIGKILL")
    })
    const exited = new Promise(r => device.once("exit", (code, signal) => r({ code, signal })))
    say("SIM", "running; Ctrl-C to stop")
    const end = await Promise.race([untilInterrupted().then(() => undefined), exited])
    if (end !== undefined) throw new Error(`the simulator exited (${end.signal ?? `code ${end.code}`})`)
    say("SIM", "stopped")
}

run("npm run sim", main)
