// The operator CLI on commander (issue 16): --version, help CMD, one-line usage errors, --json
// on every command that prints, validated hosts, the state directory's lock, $TETHER_STORE vs an
// explicit --state, and SIGHUP reloading the routes of a real `serve` process.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { createInterface } from "node:readline"
import { AppClient } from "../../peer/device-app.js"
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"

const CLI = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "bin", "tether-gateway.js")
const PKG = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "package.json")

const work = mkdtempSync(join(tmpdir(), "tether-op-"))
const children: ChildProcess[] = []
after(() => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL")
    rmSync(work, { recursive: true, force: true })
})

interface Run {
    code: number
    out: string
    err: string
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
    return new Promise(resolve => {
        const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] })
        let out = ""
        let err = ""
        child.stdout.on("data", d => (out += d))
        child.stderr.on("data", d => (err += d))
        child.on("close", code => resolve({ code: code ?? -1, out, err }))
    })
}

interface Serve {
    child: ChildProcess
    port: number
    lines: Record<string, unknown>[]
    exited: Promise<number>
}

async function serve(state: string, extra: string[] = []): Promise<Serve> {
    const child = spawn(process.execPath, [CLI, "serve", "--state", state, "--port", "0", ...extra], {
        cwd: work,
        stdio: ["ignore", "pipe", "pipe"],
    })
    children.push(child)
    const lines: Record<string, unknown>[] = []
    const exited = new Promise<number>(r => child.on("exit", code => r(code ?? -1)))
    let stderr = ""
    child.stderr?.on("data", d => (stderr += d))
    const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on("line", l => {
            const j = JSON.parse(l) as Record<string, unknown>
            lines.push(j)
            if (j.event === "serve") resolve(j.port as number)
        })
        void exited.then(code => reject(new Error(`serve exited ${code}: ${stderr}`)))
    })
    return { child, port, lines, exited }
}

async function until(pred: () => boolean, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms
    while (!pred()) {
        if (Date.now() > end) return false
        await new Promise(r => setTimeout(r, 10))
    }
    return true
}

function readEnv(path: string): Record<string, string | number> {
    const env: Record<string, string | number> = {}
    for (const line of readFileSync(path, "utf8").split("\n")) {
        if (/^\s*#/.test(line) || !line.includes("=")) continue
        const i = line.indexOf("=")
        env[line.slice(0, i)] = JSON.parse(line.slice(i + 1)) as string | number
    }
    return env
}

function deviceFromEnv(env: Record<string, string | number>, port: number): AppClient {
    const hex = (k: string) => Buffer.from(String(env[k]), "hex")
    const client = new TetherClient({
        pairing: { deviceId: hex("TT_ID"), s: keyPairFromPrivate(hex("TT_SK")), psk: hex("TT_PSK"), gatewayPublic: hex("TT_GW_PK") },
        store: new MemoryTicketStore({ ticket: hex("TT_TICKET"), secret: hex("TT_RSECRET") }),
        host: String(env.TT_GW_HOST),
        port,
        timeoutMs: 5000,
    })
    return new AppClient(client)
}

test("--version and -V print the package's version; help CMD is CMD --help; usage errors are one line, exit 2", async () => {
    const version = (JSON.parse(readFileSync(PKG, "utf8")) as { version: string }).version
    for (const flag of ["--version", "-V"]) {
        const r = await cli([flag])
        assert.deepEqual([r.code, r.out.trim()], [0, version], flag)
    }
    const help = await cli(["help", "pair"])
    assert.equal(help.code, 0)
    assert.equal(help.out, (await cli(["pair", "--help"])).out)
    assert.match(help.out, /^usage: tether-gateway pair NAME/)
    const cases: [string[], RegExp][] = [
        [["frobnicate"], /unknown command 'frobnicate'.*--help/],
        [["list", "--bogus"], /list: unknown option '--bogus'.*list --help/],
        [["--bogus"], /unknown option '--bogus'/],
        [["revoke"], /revoke: missing argument NAME/],
        [["send", "x"], /send: missing argument TOPIC/],
        [["revoke", "a", "b"], /unexpected argument b/],
        [["list", "--state"], /option '--state <value>' argument missing/],
        [["help", "nope"], /unknown command 'nope'/],
    ]
    for (const [args, msg] of cases) {
        const r = await cli(args)
        assert.equal(r.code, 2, args.join(" "))
        assert.match(r.err, msg, args.join(" "))
        assert.equal(r.err.trim().split("\n").length, 1, `one line: ${r.err}`)
    }
})

test("--json: one JSON document on stdout for every command that prints", async () => {
    const state = join(work, "json")
    const j = async (args: string[]) => {
        const r = await cli([...args, "--state", state, "--json"])
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`)
        return JSON.parse(r.out) as Record<string, unknown>
    }
    const init = await j(["init"])
    assert.equal(init.kind, "sqlite")
    assert.match(String(init.publicKey), /^[0-9a-f]{64}$/)
    const p = await j(["pair", "jd", "--out", join(work, "jd.env")])
    assert.deepEqual([p.device, p.out], ["jd", join(work, "jd.env")])
    assert.match(String(p.id), /^[0-9a-f]{16}$/)
    const list = (await j(["list"])) as unknown as Record<string, unknown>[]
    assert.deepEqual(
        list.map(d => [d.name, d.status]),
        [["jd", "active"]]
    )
    assert.deepEqual(await j(["send", "jd", "t", "hello"]), { device: "jd", topic: "t", id: 1 })
    assert.deepEqual(await j(["expire-tickets", "jd"]), { device: "jd", outcome: "tickets-expired" })
    const rot = await j(["rotate-ticket-key"])
    assert.equal(rot.kind, "session")
    assert.equal(typeof rot.id, "number")
    assert.ok(Array.isArray((await j(["retire-ticket-key", "--now"])).retired))
    assert.ok(Array.isArray(await j(["status"])))
    assert.deepEqual(await j(["revoke", "jd"]), { device: "jd", outcome: "revoked" })
    assert.deepEqual(await j(["remove", "jd"]), { device: "jd", outcome: "removed" })
    for (const c of [
        "init",
        "pair",
        "list",
        "revoke",
        "remove",
        "expire-tickets",
        "rotate-ticket-key",
        "retire-ticket-key",
        "send",
        "status",
        "migrate-store",
    ])
        assert.match((await cli([c, "--help"])).out, /--json/, c)
})

test("hosts and ports: pair takes only a host a device can dial; serve's --host, --port and --metrics are checked", async () => {
    const state = join(work, "hosts")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const out = join(work, "hosts.env")
    const bad: [string[], RegExp][] = [
        [["--host", "http://x"], /not a URL/],
        [["--host", "0.0.0.0"], /unspecified address/],
        [["--host", "::"], /unspecified address/],
        [["--host", "0:0::0"], /unspecified address/],
        [["--host", ""], /must be a host name or address/],
        [["--host", "999.1.1.1"], /not an IPv4 address/],
        [["--host", "a_b"], /must be a host name/],
        [["--endpoint", "[::]:4433"], /unspecified address/],
        [["--endpoint", "http://x:1"], /not a URL|IPv6 address goes in brackets/],
        [["--port", "0"], /1\.\.65535/],
        [["--port", "65536"], /1\.\.65535/],
        [["--endpoint", "gw:70000"], /1\.\.65535/],
    ]
    for (const [args, msg] of bad) {
        const r = await cli(["pair", "h1", "--state", state, "--out", out, ...args])
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`)
        assert.match(r.err, msg, args.join(" "))
        assert.ok(!existsSync(out))
    }
    for (const host of ["gw-1.example", "10.0.0.2", "::1", "fe80::1"]) {
        const r = await cli([
            "pair",
            `ok-${host.replace(/[^a-z0-9]/g, "")}`,
            "--state",
            state,
            "--out",
            join(work, `ok-${host}.env`),
            "--host",
            host,
        ])
        assert.equal(r.code, 0, `${host}: ${r.err}`)
    }
    const serveBad: [string[], RegExp][] = [
        [["--host", "http://x"], /--host http:\/\/x must be a host name or address, not a URL/],
        [["--host", ""], /--host {2}is empty|--host .*empty/],
        [["--port", "65536"], /--port must be an integer in 0\.\.65535/],
        [["--metrics", "70000"], /--metrics is \[HOST:\]PORT/],
        [["--metrics", "http://x:9464"], /--metrics host http:\/\/x must be a host name or address/],
        [["--log-level", "loud"], /--log-level is one of trace, debug, info, warn, error, silent/],
    ]
    for (const [args, msg] of serveBad) {
        const r = await cli(["serve", "--state", state, ...args])
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`)
        assert.match(r.err, msg, args.join(" "))
    }
})

test("serve locks its state directory: a second serve fails at once naming the pid; a stale lock is taken over; released on SIGTERM", async () => {
    const state = join(work, "lock")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const lock = join(state, "serve.lock")
    // a lock left by a dead process (a pid far above pid_max)
    writeFileSync(lock, "4194999\n")
    const s = await serve(state)
    assert.equal(readFileSync(lock, "utf8").trim(), String(s.child.pid))
    const t0 = Date.now()
    const second = await cli(["serve", "--state", state, "--port", "0"])
    assert.equal(second.code, 1)
    assert.match(second.err, new RegExp(`in use by serve pid ${s.child.pid}`))
    assert.ok(Date.now() - t0 < 5000)
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
    assert.ok(!existsSync(lock), "released on exit")
    const again = await serve(state)
    again.child.kill("SIGTERM")
    assert.equal(await again.exited, 0)
    assert.ok(!existsSync(lock))
})

test("an explicit --state wins over $TETHER_STORE (as --kek-file over $TETHER_KEK)", async () => {
    const state = join(work, "env-store")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const env = { ...process.env, TETHER_STORE: "postgres://nobody@127.0.0.1:1/none" }
    const r = await cli(["list", "--state", state], env)
    assert.equal(r.code, 0, r.err)
    assert.match(r.out, /no devices paired/)
    // without --state, the variable names the store
    const e = await cli(["list"], env)
    assert.equal(e.code, 1)
    assert.doesNotMatch(e.err, /nobody@/, "the URL's user is not printed")
})

test("SIGHUP reloads the routes of a running serve; a bad file keeps the running routes and logs its errors", async () => {
    const http = createServer((req, res) => res.end(`up ${req.url}`))
    await new Promise<void>(r => http.listen(0, "127.0.0.1", r))
    const addr = http.address()
    const upPort = typeof addr === "object" && addr !== null ? addr.port : 0
    const state = join(work, "hup")
    const envPath = join(work, "hup.env")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    assert.equal((await cli(["pair", "hupper", "--state", state, "--out", envPath])).code, 0)
    const conf = join(work, "hup.json")
    const route = (path: string, devices: string[]) => ({ url: `http://127.0.0.1:${upPort}/${path}`, devices })
    writeFileSync(conf, JSON.stringify({ $schema: "../schema/config.schema.json", routes: { a: route("a", ["hupper"]) } }))
    const s = await serve(state, ["--config", conf])
    const d = deviceFromEnv(readEnv(envPath), s.port)
    try {
        await d.connect()
        assert.equal((await d.request("a", Buffer.alloc(0))).payload.toString(), "up /a")
        assert.equal((await d.request("b", Buffer.alloc(0))).status, 0, "no route b yet")
        writeFileSync(conf, JSON.stringify({ routes: { b: route("b", ["hupper", "ghost"]) } }))
        s.child.kill("SIGHUP")
        assert.ok(await until(() => s.lines.some(l => l.event === "config" && l.outcome === "reloaded" && l.routes === 1)))
        const warned = s.lines.find(l => l.outcome === "config-warning")
        assert.match(String(warned?.detail), /route b names device ghost, which is not paired/)
        assert.equal(warned?.level, "warn")
        assert.equal((await d.request("b", Buffer.alloc(0))).payload.toString(), "up /b")
        assert.equal((await d.request("a", Buffer.alloc(0))).status, 0, "route a is gone")
        // a bad file: every error logged with its path, the running routes kept
        writeFileSync(conf, JSON.stringify({ routes: { b: { url: "ftp://x", devices: "all", timeoutMs: 1.5 } }, extra: 1 }))
        s.child.kill("SIGHUP")
        assert.ok(await until(() => s.lines.some(l => l.outcome === "reload-failed")))
        const failed = String(s.lines.find(l => l.outcome === "reload-failed")?.detail)
        for (const e of [
            "/: unknown key extra",
            "/routes/b/url: must be an http:// or https:// URL",
            "/routes/b/devices: must be array",
            "/routes/b/timeoutMs: must be integer",
        ])
            assert.ok(failed.includes(e), `${e} in ${failed}`)
        assert.equal((await d.request("b", Buffer.alloc(0))).payload.toString(), "up /b", "kept")
    } finally {
        await d.close()
        http.closeAllConnections()
        http.close()
    }
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
    assert.ok(
        s.lines.every(l => typeof l.level === "string"),
        "every line has a level label"
    )
})
