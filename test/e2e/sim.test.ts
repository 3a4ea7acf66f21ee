// Your own firmware in one command, as the README's "Your own firmware" says: a device paired
// with the CLI, the gateway served by the CLI (as the user runs it in another terminal), and
// `npm run sim -- src/examples/hello.ts` (devs/sim.mjs) running the example in the simulator
// outside test mode with those settings in its flash. The example's session comes up, its
// publishes reach the gateway, a message sent with `tether-gateway send` reaches it; Ctrl-C stops it cleanly. Run twice on one flash directory, the
// out-of-band ticket's key retired in between: the second run resumes with the ticket the first
// stored in the flash, as a board keeps its flash (with a blank flash it would be refused). The simulator outside test mode needs 127.0.0.1:8082:
// devs/sim.mjs waits for it as the demos do.
import { test } from "node:test"
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "tether-gateway/peer"
import { cli, ROOT, serveProcess, type Serve } from "./harness.js"

/** Runs `node devs/sim.mjs` until `until(stdout)` holds, then Ctrl-C; its output and exit code. */
async function sim(args: string[], env: Record<string, string>, until: (out: string) => boolean, ms: number) {
    const child = spawn(process.execPath, [join(ROOT, "devs", "sim.mjs"), ...args], {
        cwd: ROOT,
        env: { ...process.env, ...env, NO_UPDATE_NOTIFIER: "1" },
        stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    child.stdout.on("data", d => (out += d))
    child.stderr.on("data", d => (out += d))
    const exit = new Promise<number | null>(r => child.once("exit", code => r(code)))
    const deadline = Date.now() + ms
    while (!until(out) && Date.now() < deadline && child.exitCode === null) await new Promise(r => setTimeout(r, 200))
    const reached = until(out)
    child.kill("SIGINT")
    const timer = setTimeout(() => child.kill("SIGKILL"), 15000)
    const code = await exit
    clearTimeout(timer)
    return { out, code, reached }
}

/** The gateway's log lines about device `name` with this outcome. */
const about = (g: Serve, name: string, outcome: string) =>
    g.lines.filter(l => (l["deviceName"] === name || l["device"] === name) && l["outcome"] === outcome)

test("npm run sim -- src/examples/hello.ts: the example's session comes up against a served gateway, its publishes arrive, its tickets survive runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-sim-"))
    const state = join(dir, "gateway")
    const envFile = join(dir, "hello.env")
    const env = { TETHER_SIM_DIR: join(dir, "device") }
    let g: Serve | undefined
    try {
        const port = await freePort()
        cli(["init", "--state", state])
        cli(["pair", "hello", "--state", state, "--out", envFile, "--host", "127.0.0.1", "--port", String(port)])
        g = await serveProcess(["--state", state, "--host", "127.0.0.1", "--port", String(port)])
        const gw = g
        const published = () => about(gw, "hello", "publish").filter(l => l["topic"] === "hello").length

        // two publishes, five seconds apart: the session's TICKET reached the flash long before
        // and a message from the operator, once the session is up, which the example prints
        let sent = false
        const first = await sim(
            ["--env", envFile, "src/examples/hello.ts"],
            env,
            out => {
                if (!sent && published() >= 1) {
                    cli(["send", "hello", "greeting", "hi there", "--state", state])
                    sent = true
                }
                return published() >= 2 && /GOT greeting hi there/.test(out)
            },
            240000
        )
        assert.ok(first.reached, `the example's publishes did not reach the gateway, or the operator's message the example:\n${first.out}`)
        assert.match(first.out, /BUILD\s+compiling src\/examples\/hello\.ts with DeviceScript/)
        assert.match(first.out, /DEVICE\s+LINK connecting/)
        assert.match(first.out, /DEVICE\s+LINK up/)
        assert.match(first.out, /DEVICE\s+SENT hello #1 id=1/)
        assert.doesNotMatch(first.out, /DEVICE\s+LINK down/, "the link never went down")
        assert.equal(first.code, 0, `Ctrl-C stops it cleanly:\n${first.out}`)
        assert.match(first.out, /SIM\s+stopped/)

        // the out-of-band ticket's key retired: a device that lost its flash would now be refused
        // (TICKET_REJECTED, then the full handshake); one that kept it resumes with its stored ticket
        cli(["rotate-ticket-key", "--oob", "--state", state])
        cli(["retire-ticket-key", "--now", "--state", state])
        await new Promise(r => setTimeout(r, 2500)) // serve picks the change up within about a second
        const n = published()
        const from = gw.lines.length
        const second = await sim(["--env", envFile, "src/examples/hello.ts"], env, () => published() > n, 240000)
        assert.ok(second.reached, `the second run published nothing:\n${second.out}`)
        assert.equal(second.code, 0, second.out)
        const outcomes = gw.lines
            .slice(from)
            .filter(l => l["event"] === "connection" && (l["deviceName"] === "hello" || l["outcome"] === "reject"))
            .map(l => l["outcome"])
        assert.equal(outcomes[0], "resumed", `the second run resumed with the ticket in its flash: ${outcomes.join()}\n${second.out}`)
        assert.ok(
            !outcomes.includes("full-handshake") && !outcomes.includes("reject"),
            `no refused ticket, no full handshake: ${outcomes.join()}`
        )
        assert.doesNotMatch(g.lines.map(l => JSON.stringify(l)).join("\n"), /PROTOCOL_ERROR|protocol-error/)
    } finally {
        g?.child.kill("SIGTERM")
        await g?.exit
        rmSync(dir, { recursive: true, force: true })
    }
})
