// The README's library example is real: devs/examples/library.mjs is quoted in README.md
// word for word (checked here), and runs: a state made with the CLI (`init`, `pair`), the example
// as its own process on it, the Node twin of the device connecting, publishing telemetry and
// getting the example's MESSAGE back; SIGINT closes the gateway and the process exits 0.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { AppClient, TetherClient } from "tether-gateway/peer"
import { cli, deviceFrom, ROOT, sleep } from "./harness.js"

const EXAMPLE = join(ROOT, "devs", "examples", "library.mjs")

test("README quotes devs/examples/library.mjs as it is", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8")
    const body = readFileSync(EXAMPLE, "utf8").split("\n").slice(1).join("\n").trim() // without its first comment line
    assert.ok(readme.includes("```js\n" + body + "\n```"), "README.md's library example differs from devs/examples/library.mjs")
})

test("the library example runs: telemetry in, a MESSAGE back, SIGINT closes it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-example-"))
    try {
        const state = join(dir, "state")
        cli(["init", "--state", state])
        cli(["pair", "my-counter", "--state", state, "--out", join(dir, "dev.env")])
        const twin = deviceFrom(join(dir, "dev.env"))
        const child = spawn(process.execPath, [EXAMPLE], {
            env: { ...process.env, TETHER_STATE: state, PORT: "0" },
            stdio: ["ignore", "pipe", "pipe"],
        })
        let out = ""
        child.stdout.on("data", d => (out += d))
        child.stderr.on("data", d => (out += d))
        const exit = new Promise<number | null>(r => child.once("exit", code => r(code)))
        for (let i = 0; i < 400 && !/listening on port \d+/.test(out); i++) await sleep(25)
        const port = Number(/listening on port (\d+)/.exec(out)?.[1])
        assert.ok(port > 0, out)
        const device = new AppClient(
            new TetherClient({
                ...twin,
                host: "127.0.0.1",
                port,
                timeoutMs: 5000,
            })
        )
        const got: string[] = []
        device.app.events.on("message", m => got.push(`${m.topic}=${m.payload.toString()}`))
        await device.connect()
        device.publish("telemetry", Buffer.from('{"temp":21.5}'))
        for (let i = 0; i < 200 && got.length === 0; i++) await sleep(25)
        assert.deepEqual(got, ["led=on"])
        for (let i = 0; i < 200 && !/has every message up to 1/.test(out); i++) await sleep(25)
        await device.close()
        child.kill("SIGINT")
        assert.equal(await exit, 0, out)
        assert.match(out, /my-counter up \(resumed\)/)
        assert.match(out, /my-counter telemetry #1: \{"temp":21\.5\}/)
        assert.match(out, /queued led=on for my-counter as message 1/)
        assert.match(out, /my-counter has every message up to 1/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
