// `serve --workers 2` (issue 15, every core): the real CLI, a primary and two workers on
// node:cluster sharing one port, one SQLite state directory, Node twin devices over loopback.
// What must hold with several processes is what holds with one: connections land on both
// workers; a device's PUBLISHes are delivered exactly once and in order however its
// connections are spread; `send` from the CLI reaches the device wherever its session is;
// `revoke` closes it; SIGHUP reloads every worker; a worker killed with SIGKILL is forked again
// and the gateway keeps serving; the metrics are the sum of the workers'; SIGTERM stops them
// all, exit 0, lock released. And the failures are clear: a port in use, --workers out of range.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { AppClient, DeviceApp, TetherClient } from "tether-gateway/peer"
import { Code } from "tether-gateway/wire"
import { CLI, cli, deviceFrom, type Serve, serveProcess, sleep, until } from "./harness.js"

const work = mkdtempSync(join(tmpdir(), "tether-workers-"))
const state = join(work, "state")
const configPath = join(work, "config.json")
const sinkPath = join(work, "sink.jsonl")
let s: Serve

/** A paired device (through the CLI) and a way to make clients of it. */
function device(name: string): { app: DeviceApp; client(): AppClient } {
    const out = join(work, `${name}.env`)
    cli(["pair", name, "--state", state, "--out", out, "--port", String(s.port)])
    const { pairing, store } = deviceFrom(out)
    const app = new DeviceApp()
    return {
        app,
        client: () => new AppClient(new TetherClient({ pairing, store, host: "127.0.0.1", port: s.port, timeoutMs: 5000 }), app),
    }
}

/** The worker (0 or 1) of each established connection logged so far. */
const workersSeen = () =>
    new Set(s.lines.filter(l => l["event"] === "connection" && typeof l["worker"] === "number").map(l => l["worker"] as number))

/** The primary's children (its workers). */
function workerPids(): number[] {
    const r = spawnSync("pgrep", ["-P", String(s.child.pid)], { encoding: "utf8" })
    return r.stdout
        .split("\n")
        .filter(x => x.length > 0)
        .map(Number)
}

describe("serve --workers 2", { timeout: 120000 }, () => {
    before(async () => {
        cli(["init", "--state", state])
        writeFileSync(configPath, JSON.stringify({ routes: {} }))
        s = await serveProcess([
            "--state",
            state,
            "--port",
            "0",
            "--workers",
            "2",
            "--config",
            configPath,
            "--metrics",
            "0",
            "--sink-file",
            sinkPath,
        ])
        assert.ok(await until(() => s.lines.some(l => l["event"] === "serve" && l["workers"] === 2), 15000), "the primary's serve line")
    })
    after(async () => {
        if (s.child.exitCode === null) s.child.kill("SIGKILL")
        rmSync(work, { recursive: true, force: true })
    })

    test("two workers, two node names, one port; connections land on both", async () => {
        const names = new Set(s.lines.filter(l => l["event"] === "serve" && l["worker"] !== undefined).map(l => String(l["node"])))
        assert.equal(names.size, 2, `node names: ${[...names].join(", ")}`)
        assert.ok([...names].every(n => /\.[01]$/.test(n)))
        assert.equal(new Set(s.lines.filter(l => l["event"] === "serve").map(l => l["port"])).size, 1, "one port")
        const d = device("spread")
        for (let i = 0; i < 200 && workersSeen().size < 2; i++) {
            const c = d.client()
            await c.connect()
            c.publish("spread", Buffer.from(String(i)))
            await c.settled()
            await c.close()
        }
        assert.deepEqual([...workersSeen()].sort(), [0, 1], "the kernel spread the accepts over both workers")
    })

    test("a device's PUBLISHes across reconnections that land anywhere: each exactly once, in order", async () => {
        const d = device("steady")
        for (let round = 0; round < 10; round++) {
            const c = d.client()
            await c.connect()
            for (let i = 0; i < 10; i++) c.publish("n", Buffer.from(String(round * 10 + i)))
            // every other round drops the radio instead of closing: the next session resends
            if (round % 2 === 0) await c.drop()
            else {
                await c.settled()
                await c.close()
            }
        }
        const c = d.client()
        await c.connect()
        await c.settled()
        await c.close()
        const got = () => s.lines.filter(l => l["outcome"] === "publish" && l["device"] === "steady").map(l => l["id"] as number)
        assert.ok(await until(() => got().length >= 100, 5000), `delivered ${got().length}`)
        // once each: the receiving state's compare-and-set is in the store both workers share
        assert.deepEqual(
            [...got()].sort((a, b) => a - b),
            Array.from({ length: 100 }, (_, i) => i + 1),
            "ids 1..100, delivered once each"
        )
        // in order where order is kept: the sink takes a batch before the state that counts it
        // is stored, so the next worker's batch reaches it after (the log lines of two processes
        // interleave as they like); a batch in flight at a handover may reach it twice
        // (PROTOCOL.md 12.3: a consumer drops duplicates by stream and id)
        const sunk = readFileSync(sinkPath, "utf8")
            .split("\n")
            .filter(x => x.length > 0)
            .map(x => JSON.parse(x) as { device: string; id: number })
            .filter(x => x.device === "steady")
            .map(x => x.id)
        const first = sunk.filter((id, i) => sunk.indexOf(id) === i)
        assert.deepEqual(
            first,
            Array.from({ length: 100 }, (_, i) => i + 1),
            "the sink saw 1..100 in order"
        )
    })

    test("send from the CLI reaches the device on whichever worker holds it; revoke closes it", async () => {
        const d = device("target")
        const got: string[] = []
        d.app.events.on("message", m => got.push(`${m.topic}=${m.payload.toString()}`))
        const c = d.client()
        const conn = await c.connect()
        c.publish("hello", Buffer.alloc(0))
        await c.settled()
        cli(["send", "target", "led", "on", "--state", state])
        assert.ok(await until(() => got.length === 1, 5000), JSON.stringify(got))
        assert.deepEqual(got, ["led=on"])
        cli(["revoke", "target", "--state", state])
        await Promise.race([c.ended(), sleep(3000)])
        assert.equal(conn.closeCode, Code.REVOKED, "CLOSE(REVOKED) from the worker that holds the session")
    })

    test("SIGHUP reloads the routes in every worker", async () => {
        writeFileSync(configPath, JSON.stringify({ routes: { w: { url: "http://127.0.0.1:9/w", devices: ["*"] } } }))
        s.child.kill("SIGHUP")
        const reloaded = () => new Set(s.lines.filter(l => l["outcome"] === "reloaded").map(l => l["worker"]))
        assert.ok(await until(() => reloaded().size === 2, 5000), `reloaded in ${[...reloaded()].join(",")}`)
    })

    test("the metrics are the sum over the workers", async () => {
        const m = s.lines.find(l => l["event"] === "metrics" && l["outcome"] === "listening")
        assert.ok(m)
        const text = await (await fetch(`http://127.0.0.1:${m["port"] as number}/metrics`)).text()
        const handshakes = [...text.matchAll(/^tether_handshakes_total\{[^}]*\} ([0-9.e+]+)$/gm)].reduce((a, x) => a + Number(x[1]), 0)
        const logged = s.lines.filter(
            l => l["event"] === "connection" && (l["outcome"] === "full-handshake" || l["outcome"] === "resumed")
        ).length
        assert.ok(handshakes > 0, text.slice(0, 400))
        assert.equal(handshakes, logged, "one count per handshake either worker made")
    })

    test("a worker killed with SIGKILL is forked again and the gateway keeps serving", async () => {
        const before = workerPids()
        assert.equal(before.length, 2, `workers: ${before.join(",")}`)
        process.kill(before[0] as number, "SIGKILL")
        assert.ok(await until(() => s.lines.some(l => l["event"] === "worker" && l["outcome"] === "died"), 5000))
        assert.ok(await until(() => s.lines.some(l => l["event"] === "worker" && l["outcome"] === "restarted"), 10000))
        assert.equal(workerPids().length, 2)
        const d = device("after-kill")
        for (let i = 0; i < 6; i++) {
            const c = d.client()
            await c.connect()
            c.publish("alive", Buffer.from(String(i)))
            await c.settled()
            await c.close()
        }
    })

    test("SIGTERM: every worker stops, exit 0, the lock released", async () => {
        const pids = workerPids()
        s.child.kill("SIGTERM")
        const e = await s.exit
        assert.deepEqual(e, { code: 0, signal: null })
        assert.ok(!existsSync(join(state, "serve.lock")), "lock released")
        for (const p of pids) assert.throws(() => process.kill(p, 0), "worker gone")
        assert.equal(s.lines.filter(l => l["event"] === "shutdown" && l["outcome"] === "done").length, 3, "two workers and the primary")
    })
})

test("serve --workers: a port in use fails at once with the reason; a bad count is a usage error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-workers-bad-"))
    const taken = net.createServer()
    try {
        cli(["init", "--state", join(dir, "s")])
        await new Promise<void>(r => taken.listen(0, "127.0.0.1", () => r()))
        const port = (taken.address() as net.AddressInfo).port
        const env = { ...process.env, NO_UPDATE_NOTIFIER: "1" }
        const run = (args: string[]) =>
            spawnSync(process.execPath, [CLI, "serve", "--state", join(dir, "s"), ...args], { env, encoding: "utf8", timeout: 20000 })
        const inUse = run(["--port", String(port), "--workers", "2"])
        assert.equal(inUse.status, 1, inUse.stderr)
        assert.match(inUse.stderr, /cannot listen on 127\.0\.0\.1:[0-9]+/)
        assert.equal(inUse.stderr.trim().split("\n").length, 1, `one line: ${inUse.stderr}`)
        assert.ok(!existsSync(join(dir, "s", "serve.lock")), "lock released")
        for (const bad of ["0", "65", "x"]) {
            const r = run(["--port", "0", "--workers", bad])
            assert.equal(r.status, 2, r.stderr)
            assert.match(r.stderr, /--workers must be an integer in 1\.\.64/)
        }
        // a worker is NODE.i: with workers the name leaves 3 characters for ".i"; alone it has 64
        const named = run(["--port", "0", "--workers", "2", "--node", "n".repeat(62)])
        assert.equal(named.status, 2, named.stderr)
        assert.match(named.stderr, /--node is 1\.\.61 characters/)
        const alone = run(["--port", String(port), "--node", "n".repeat(64)])
        assert.equal(alone.status, 1, `a 64-character name is taken without workers (it got to the port in use): ${alone.stderr}`)
        assert.match(alone.stderr, /cannot listen on 127\.0\.0\.1:[0-9]+/)
    } finally {
        taken.close()
        rmSync(dir, { recursive: true, force: true })
    }
})
