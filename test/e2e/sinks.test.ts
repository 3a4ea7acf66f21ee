// End to end, the sinks for operators without a broker (PROTOCOL.md 12.4) as an operator runs
// them: `tether-gateway serve --webhook URL --sink-file FILE` with the webhook's settings and its
// Authorization in the config file, a real node:http webhook that answers 503 for a while, and the
// Node twin of the device. The device's messages are acknowledged only once the webhook answered
// 2xx (before that: CLOSE(BUSY), the device keeps them and comes back), so the webhook ends up
// with every message in order, the file with every one too (a duplicate only under the same
// stream and id), and no log line holds the token or a payload.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import http from "node:http"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { AppClient, DeviceApp, TetherClient } from "tether-gateway/peer"
import { Code } from "tether-gateway/wire"
import { cli, deviceFrom, serveProcess, sleep } from "./harness.js"

const TOKEN = "Bearer e2e-sink-token-4711"
const N = 20

test("serve --webhook --sink-file: a webhook down for a while loses nothing; every message once in order after it is back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-e2e-sinks-"))
    let refusals = 3
    const taken: { stream: number; id: number; text: string }[] = []
    const auth = new Set<string | undefined>()
    const server = http.createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on("data", c => chunks.push(c))
        req.on("end", () => {
            auth.add(req.headers["authorization"])
            if (refusals > 0) {
                refusals--
                return void res.writeHead(503).end("come back later")
            }
            const body = JSON.parse(Buffer.concat(chunks).toString()) as { messages: { stream: number; id: number; text: string }[] }
            taken.push(...body.messages)
            res.writeHead(200).end()
        })
    })
    await new Promise<void>(r => server.listen(0, "127.0.0.1", r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tether`
    try {
        const state = join(dir, "state")
        cli(["init", "--state", state])
        cli(["pair", "sink-dev", "--state", state, "--out", join(dir, "dev.env")])
        const { pairing, store: tickets } = deviceFrom(join(dir, "dev.env"))
        writeFileSync(join(dir, "token"), TOKEN + "\n", { mode: 0o600 })
        writeFileSync(
            join(dir, "config.json"),
            JSON.stringify({
                sinks: {
                    webhook: {
                        url: "http://placeholder.invalid/",
                        attempts: 2,
                        backoffMs: 50,
                        timeoutMs: 1000,
                        authorizationFile: join(dir, "token"),
                    },
                },
            })
        )
        const file = join(dir, "publishes.jsonl")
        // --webhook replaces the section's URL and keeps its other settings
        const serve = await serveProcess([
            "--state",
            state,
            "--port",
            "0",
            "--config",
            join(dir, "config.json"),
            "--webhook",
            url,
            "--sink-file",
            file,
        ])
        const app = new DeviceApp()
        let busy = 0
        let running = true
        const loop = (async () => {
            while (running) {
                const c = new AppClient(
                    new TetherClient({
                        pairing,
                        store: tickets,
                        host: "127.0.0.1",
                        port: serve.port,
                        timeoutMs: 3000,
                    }),
                    app
                )
                try {
                    const conn = await c.connect()
                    await c.ended()
                    if (conn.closeCode === Code.BUSY) busy++
                } catch {
                    // refused while the gateway is busy
                }
                await sleep(50)
            }
        })()
        for (let i = 1; i <= N; i++) app.publish("temp", Buffer.from(`t-${i}`))
        for (let i = 0; i < 400 && (app.send.unacked > 0 || taken.length < N); i++) await sleep(25)
        running = false
        assert.equal(app.send.unacked, 0, "the gateway acknowledged everything once the webhook took it")
        assert.ok(busy >= 1, "the refusals closed a session (CLOSE(BUSY))")
        assert.equal(refusals, 0)
        assert.deepEqual(
            taken.map(m => m.text),
            Array.from({ length: N }, (_, i) => `t-${i + 1}`),
            "the webhook took every message once, in order"
        )
        assert.deepEqual([...auth], [TOKEN])
        const lines = readFileSync(file, "utf8")
            .trim()
            .split("\n")
            .map(l => JSON.parse(l) as { stream: number; id: number; text: string })
        const first = new Map<string, string>()
        for (const l of lines) {
            const k = `${l.stream}:${l.id}`
            if (first.has(k)) assert.equal(first.get(k), l.text, "a duplicate in the file is the same message")
            first.set(k, l.text)
        }
        assert.deepEqual(
            [...first.values()],
            taken.map(m => m.text)
        )
        serve.child.kill("SIGTERM")
        assert.equal((await serve.exit).code, 0)
        await loop
        const log = JSON.stringify(serve.lines)
        assert.ok(!log.includes("e2e-sink-token"), "the token is in no log line")
        assert.ok(!log.includes("t-1"), "no payload in the log")
        assert.ok(serve.lines.some(l => l["event"] === "sink" && l["outcome"] === "unavailable"))
        assert.ok(serve.lines.some(l => l["event"] === "app" && l["outcome"] === "sink-unavailable"))
    } finally {
        await new Promise(r => server.close(r))
        rmSync(dir, { recursive: true, force: true })
    }
})
