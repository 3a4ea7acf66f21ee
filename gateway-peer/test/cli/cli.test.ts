// The operator CLI end to end: `node bin/tether-gateway.js ...` (the installed command) in a temporary state directory, as
// an operator runs it. The device side is the package's own initiator with the application
// twin, configured from the settings file `pair` wrote.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { createInterface } from "node:readline"
import { AppClient } from "../../peer/device-app.js"
import { keyPairFromPrivate } from "../../src/crypto/x25519.js"
import { MemoryTicketStore, RejectedError, TetherClient } from "../../peer/initiator.js"
import { openTicket, TicketKeySet } from "../../src/tickets.js"
import { Code } from "../../src/wire.js"

const CLI = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "bin", "tether-gateway.js")
const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..")
const CACOPHONY = join(ROOT, "test", "vectors", "published", "noise-cacophony-25519-aesgcm-sha256.json")

const work = mkdtempSync(join(tmpdir(), "tether-cli-"))
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

function cli(args: string[], cwd = work): Promise<Run> {
    return new Promise(resolve => {
        const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })
        let out = ""
        let err = ""
        child.stdout.on("data", d => (out += d))
        child.stderr.on("data", d => (err += d))
        child.on("close", code => resolve({ code: code ?? -1, out, err }))
    })
}

/** Reads a DeviceScript .env the way the device build does: KEY=value, JSON values when they parse. */
function readEnv(path: string): Record<string, string | number> {
    const env: Record<string, string | number> = {}
    for (const line of readFileSync(path, "utf8").split("\n")) {
        if (/^\s*#/.test(line) || !line.includes("=")) continue
        const i = line.indexOf("=")
        const v = line.slice(i + 1)
        let value: string | number
        try {
            value = JSON.parse(v) as string | number
        } catch {
            value = v
        }
        env[line.slice(0, i)] = value
    }
    return env
}

/** A device configured from its settings file only. */
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

const COMMANDS = [
    "init",
    "pair",
    "list",
    "revoke",
    "remove",
    "expire-tickets",
    "rotate-ticket-key",
    "retire-ticket-key",
    "send",
    "serve",
    "status",
    "migrate-store",
    "vectors",
]

test("--help at the top and on every command", async () => {
    const top = await cli(["--help"])
    assert.equal(top.code, 0)
    for (const c of COMMANDS) assert.match(top.out, new RegExp(`\\b${c}\\b`))
    for (const c of COMMANDS) {
        const r = await cli([c, "--help"])
        assert.equal(r.code, 0, c)
        assert.match(r.out, new RegExp(`^usage: tether-gateway ${c}`), c)
    }
    assert.equal((await cli(["frobnicate"])).code, 2)
    assert.equal((await cli(["list", "--bogus"])).code, 2)
})

test("expire-tickets --help: a leaked flash is answered by revoke and re-pair, not by expiring tickets", async () => {
    const r = await cli(["expire-tickets", "--help"])
    assert.equal(r.code, 0)
    const text = r.out.replace(/\s+/g, " ")
    // the flash holds TT_SK and TT_PSK: new tickets do not lock out whoever read them
    assert.match(text, /flash may have leaked.*TT_SK.*TT_PSK/)
    assert.match(text, /revoke the device.*pair it again/)
    assert.doesNotMatch(text, /Use it when a device's flash may have leaked/)
})

test("modes: init into an existing 0755 directory, and every later command, keep the state 0700 and its files 0600", async () => {
    const { chmodSync, mkdirSync } = await import("node:fs")
    const mode = (p: string) => statSync(p).mode & 0o777
    const state = join(work, "s-modes")
    mkdirSync(state)
    chmodSync(state, 0o755)
    const ini = await cli(["init", "--state", state])
    assert.equal(ini.code, 0, ini.err)
    assert.match(ini.err, new RegExp(`warning: ${state} was mode 755`))
    assert.equal(mode(state), 0o700)
    const db = join(state, "registry.db")
    for (const f of ["registry.db", "identity.json", "ticket-keys.json"]) assert.equal(mode(join(state, f)), 0o600, f)
    const envPath = join(work, "modes.env")
    assert.equal((await cli(["pair", "m1", "--state", state, "--out", envPath])).code, 0)
    // an older install: the registry 0644 in a 0755 directory
    chmodSync(state, 0o755)
    chmodSync(db, 0o644)
    const ls = await cli(["list", "--state", state])
    assert.equal(ls.code, 0, ls.err)
    assert.equal(mode(state), 0o700)
    assert.equal(mode(db), 0o600)
    const warnings = ls.err.trim().split("\n")
    assert.equal(warnings.length, 2, ls.err)
    assert.ok(warnings.some(w => w.includes(`${db} was mode 644`)) && warnings.some(w => w.includes(`${state} was mode 755`)))
    const env = readEnv(envPath)
    for (const k of ["TT_SK", "TT_PSK", "TT_TICKET", "TT_RSECRET"]) assert.ok(!ls.err.includes(String(env[k])), `${k} in a warning`)
    // serve says it in its JSON log
    chmodSync(db, 0o644)
    const s = await serve(state)
    assert.ok(s.lines.some(l => l.event === "state" && l.outcome === "mode-fixed" && l.path === db && l.from === "644" && l.to === "600"))
    assert.equal(mode(db), 0o600)
    // a SIGTERM within moments of the "serve" line can arrive before serve's handler is
    // listening (as on main): give it a moment
    await new Promise(r => setTimeout(r, 300))
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
    assert.equal((await cli(["list", "--state", state])).err, "", "nothing left to fix")
})

test("init creates the identity; a second init is refused", async () => {
    const state = join(work, "s-init")
    const r = await cli(["init", "--state", state])
    assert.equal(r.code, 0, r.err)
    for (const f of ["identity.json", "ticket-keys.json", "registry.db"]) assert.ok(existsSync(join(state, f)), f)
    assert.equal(statSync(join(state, "identity.json")).mode & 0o777, 0o600)
    const before = readFileSync(join(state, "identity.json"))
    const again = await cli(["init", "--state", state])
    assert.equal(again.code, 1)
    assert.match(again.err, /refusing to overwrite/)
    assert.deepEqual(readFileSync(join(state, "identity.json")), before, "the identity is untouched")
    // the default is ./.tether under the working directory
    const cwd = mkdtempSync(join(work, "cwd-"))
    assert.equal((await cli(["init"], cwd)).code, 0)
    assert.ok(existsSync(join(cwd, ".tether", "identity.json")))
})

test("pair writes the settings file (0600, every key), prints no secret, refuses to overwrite", async () => {
    const state = join(work, "s-pair")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const out = join(work, "pair.env")
    const r = await cli(["pair", "thermo-1", "--state", state, "--out", out, "--host", "10.0.0.2", "--port", "5555"])
    assert.equal(r.code, 0, r.err)
    assert.equal(statSync(out).mode & 0o777, 0o600)
    const env = readEnv(out)
    assert.deepEqual(Object.keys(env).sort(), [
        "TT_GW_HOST",
        "TT_GW_PK",
        "TT_GW_PORT",
        "TT_ID",
        "TT_PSK",
        "TT_RSECRET",
        "TT_SK",
        "TT_TICKET",
    ])
    for (const k of Object.keys(env)) assert.ok(k.length <= 13, k)
    const hexLen: Record<string, number> = { TT_ID: 16, TT_SK: 64, TT_GW_PK: 64, TT_PSK: 64, TT_TICKET: 66, TT_RSECRET: 64 }
    for (const [k, n] of Object.entries(hexLen)) assert.match(String(env[k]), new RegExp(`^[0-9a-f]{${n}}$`), k)
    assert.equal(typeof env.TT_ID, "string", "an all-digit id would still be a string")
    assert.equal(env.TT_GW_HOST, "10.0.0.2")
    assert.equal(env.TT_GW_PORT, 5555)
    // stdout: name, id and path; nothing secret anywhere
    assert.match(r.out, /thermo-1/)
    assert.ok(r.out.includes(String(env.TT_ID)) && r.out.includes(out))
    for (const k of ["TT_SK", "TT_PSK", "TT_TICKET", "TT_RSECRET"]) assert.ok(!(r.out + r.err).includes(String(env[k])), `${k} printed`)
    // the out-of-band ticket: generation 1, chain origin 1, under the current out-of-band key,
    // opens with this secret, for 365 days
    const keys = TicketKeySet.fromJSON(JSON.parse(readFileSync(join(state, "ticket-keys.json"), "utf8")))
    const now = Math.floor(Date.now() / 1000)
    const oob = Buffer.from(String(env.TT_TICKET), "hex")
    const t = openTicket(oob, keys, now, 1)
    assert.ok(!("error" in t))
    assert.equal(t.generation, 1)
    assert.equal(t.kind, "oob")
    assert.equal(t.keyId, keys.currentOf("oob").id)
    assert.ok(Math.abs(t.issuedAt - now) <= 5)
    assert.ok(!("error" in openTicket(oob, keys, t.issuedAt + 364 * 86400, 1)), "365 days by default")
    assert.deepEqual(openTicket(oob, keys, t.issuedAt + 365 * 86400, 1), { error: "expired" })
    assert.deepEqual(t.resumptionSecret, Buffer.from(String(env.TT_RSECRET), "hex"))
    assert.ok(!oob.includes(Buffer.from(String(env.TT_ID), "hex")), "the device id is sealed")
    // refusals
    const again = await cli(["pair", "thermo-2", "--state", state, "--out", out])
    assert.equal(again.code, 1)
    assert.match(again.err, /exists.*--force/)
    const dup = await cli(["pair", "thermo-1", "--state", state, "--out", join(work, "other.env")])
    assert.equal(dup.code, 1)
    assert.match(dup.err, /already paired/)
    assert.equal((await cli(["pair", "bad name", "--state", state, "--out", join(work, "x.env")])).code, 2)
    const forced = await cli(["pair", "thermo-2", "--state", state, "--out", out, "--force"])
    assert.equal(forced.code, 0, forced.err)
    assert.notEqual(readEnv(out).TT_ID, env.TT_ID)
    // default output: .env.local in the working directory
    const cwd = mkdtempSync(join(work, "cwd-"))
    assert.equal((await cli(["pair", "thermo-3", "--state", state], cwd)).code, 0)
    assert.equal(statSync(join(cwd, ".env.local")).mode & 0o777, 0o600)
})

test("pair --endpoint HOST:PORT (1..4): the nodes of a cluster as TT_GW_HOST, TT_GW_HOST2.. in order; one is the --host form", async () => {
    const state = join(work, "s-endpoints")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const keysOf = (path: string) =>
        readFileSync(path, "utf8")
            .split("\n")
            .filter(l => /^[A-Z]/.test(l))
            .map(l => l.slice(0, l.indexOf("=")))
    // three nodes, an IPv6 one among them: written in order, after TT_GW_PORT, without brackets
    const three = join(work, "three.env")
    const r = await cli([
        "pair",
        "cl-1",
        "--state",
        state,
        "--out",
        three,
        "--endpoint",
        "gw-a.local:4433",
        "--endpoint",
        "[::1]:8443",
        "--endpoint",
        "10.0.0.3:4434",
    ])
    assert.equal(r.code, 0, r.err)
    const env = readEnv(three)
    assert.deepEqual(keysOf(three), [
        "TT_ID",
        "TT_SK",
        "TT_GW_PK",
        "TT_PSK",
        "TT_GW_HOST",
        "TT_GW_PORT",
        "TT_GW_HOST2",
        "TT_GW_PORT2",
        "TT_GW_HOST3",
        "TT_GW_PORT3",
        "TT_TICKET",
        "TT_RSECRET",
    ])
    assert.deepEqual(
        [env.TT_GW_HOST, env.TT_GW_PORT, env.TT_GW_HOST2, env.TT_GW_PORT2, env.TT_GW_HOST3, env.TT_GW_PORT3],
        ["gw-a.local", 4433, "::1", 8443, "10.0.0.3", 4434]
    )
    for (const k of keysOf(three)) assert.ok(k.length <= 13, k)
    // four is the most
    const four = join(work, "four.env")
    const r4 = await cli(["pair", "cl-4", "--state", state, "--out", four, ...["a:1", "b:2", "c:3", "d:4"].flatMap(e => ["--endpoint", e])])
    assert.equal(r4.code, 0, r4.err)
    assert.equal(readEnv(four).TT_GW_HOST4, "d")
    assert.equal(readEnv(four).TT_GW_PORT4, 4)
    // one --endpoint writes exactly what --host/--port writes
    const one = join(work, "one.env")
    const legacy = join(work, "legacy.env")
    assert.equal((await cli(["pair", "cl-2", "--state", state, "--out", one, "--endpoint", "10.0.0.2:5555"])).code, 0)
    assert.equal((await cli(["pair", "cl-3", "--state", state, "--out", legacy, "--host", "10.0.0.2", "--port", "5555"])).code, 0)
    assert.deepEqual(keysOf(one), keysOf(legacy))
    assert.equal(keysOf(one).length, 8)
    assert.deepEqual([readEnv(one).TT_GW_HOST, readEnv(one).TT_GW_PORT], ["10.0.0.2", 5555])
    // usage errors: exit 2, nothing written, nobody paired
    const bad: [string[], RegExp][] = [
        [["--endpoint", "a:1", "--host", "b"], /--endpoint replaces --host and --port/],
        [["--endpoint", "a:1", "--port", "2"], /--endpoint replaces --host and --port/],
        [["a:1", "b:2", "c:3", "d:4", "e:5"].flatMap(e => ["--endpoint", e]), /at most 4 --endpoint/],
        [["--endpoint", "gw"], /--endpoint gw: HOST:PORT/],
        [["--endpoint", "gw:0"], /--endpoint gw:0: the port must be an integer in 1..65535/],
        [["--endpoint", "gw:65536"], /the port must be an integer in 1..65535/],
        [["--endpoint", "gw:44x"], /the port must be an integer in 1..65535/],
        [["--endpoint", "gw:"], /the port must be an integer in 1..65535/],
        [["--endpoint", "::1:4433"], /an IPv6 address goes in brackets, e.g. \[::1\]:4433/],
        [["--endpoint", "[::1]4433"], /an IPv6 address is written \[ADDRESS\]:PORT/],
        [["--endpoint", "[gw]:4433"], /only an IPv6 address goes in brackets/],
        [["--endpoint", ":4433"], /--endpoint :4433 must be a host name or address/],
        [["--endpoint", "bad host:1"], /must be a host name or address/],
        [["--endpoint", 'a"b:1'], /must be a host name or address/],
        [["--endpoint", "a:1", "--endpoint", "A:1"], /--endpoint A:1 is given twice/],
        [["--endpoint", `${"h".repeat(201)}:1`], /a host of at most 200 characters/],
        [["--host", "h".repeat(201)], /--host: a host of at most 200 characters/],
    ]
    for (const [args, msg] of bad) {
        const out = join(work, "bad-endpoint.env")
        const b = await cli(["pair", "cl-bad", "--state", state, "--out", out, ...args])
        assert.equal(b.code, 2, `${args.join(" ")}: ${b.err}`)
        assert.match(b.err, msg, args.join(" "))
        assert.ok(!existsSync(out), args.join(" "))
    }
    assert.doesNotMatch((await cli(["list", "--state", state])).out, /cl-bad/)
    // 200 characters is a host
    assert.equal(
        (
            await cli([
                "pair",
                "cl-5",
                "--state",
                state,
                "--out",
                join(work, "long.env"),
                "--endpoint",
                `${"h".repeat(60)}.${"h".repeat(60)}.${"h".repeat(60)}.${"h".repeat(17)}:1`,
            ])
        ).code,
        0
    )
    // the help says how
    assert.match((await cli(["pair", "--help"])).out, /--endpoint HOST:PORT[\s\S]*1\.\.4[\s\S]*\[::1\]:4433/)
})

test("pairing is all or nothing; pair --force re-keys; remove frees the name and closes the session", async () => {
    const state = join(work, "s-atomic")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const names = async () => (JSON.parse((await cli(["list", "--state", state, "--json"])).out) as { name: string }[]).map(d => d.name)
    // a settings file that cannot be written: nothing registered, the name stays free
    const bad = await cli(["pair", "pd", "--state", state, "--out", join(work, "no-such-dir", "x.env")])
    assert.equal(bad.code, 1)
    assert.match(bad.err, /cannot write the settings file .*ENOENT/)
    assert.deepEqual(await names(), [])
    const out = join(work, "atomic.env")
    assert.equal((await cli(["pair", "pd", "--state", state, "--out", out])).code, 0)
    assert.deepEqual(await names(), ["pd"])
    assert.deepEqual(
        readdirSync(work).filter(f => f.includes(".tmp")),
        [],
        "no temporary file left"
    )
    const first = readEnv(out)
    const s = await serve(state)
    const old = deviceFromEnv(first, s.port)
    const oldConn = await old.connect()
    // re-keying needs --force (and --force then also replaces the file)
    const refused = await cli(["pair", "pd", "--state", state, "--out", join(work, "atomic2.env")])
    assert.equal(refused.code, 1)
    assert.match(refused.err, /already paired \(re-key it with --force, or remove it\)/)
    assert.ok(!existsSync(join(work, "atomic2.env")))
    const rekey = await cli(["pair", "pd", "--state", state, "--out", out, "--force"])
    assert.equal(rekey.code, 0, rekey.err)
    assert.match(rekey.err, /re-keying pd/)
    const second = readEnv(out)
    assert.notEqual(second.TT_ID, first.TT_ID)
    assert.notEqual(second.TT_PSK, first.TT_PSK)
    await old.ended()
    assert.equal(oldConn.closeCode, Code.REVOKED, "the old keys' session is closed")
    await assert.rejects(
        deviceFromEnv(first, s.port).connect(),
        (e: unknown) => e instanceof RejectedError && e.code === Code.UNKNOWN_DEVICE
    )
    const fresh = deviceFromEnv(second, s.port)
    const freshConn = await fresh.connect()
    assert.ok(freshConn.resumed, "the new settings' out-of-band ticket")
    // remove: the session closes, the name is free again
    const rm = await cli(["remove", "pd", "--state", state])
    assert.equal(rm.code, 0, rm.err)
    assert.equal(rm.out.trim(), "removed pd")
    await fresh.ended()
    assert.equal(freshConn.closeCode, Code.REVOKED)
    assert.deepEqual(await names(), [])
    const unknown = await cli(["remove", "pd", "--state", state])
    assert.equal(unknown.code, 1)
    assert.match(unknown.err, /no device named pd/)
    assert.equal((await cli(["pair", "pd", "--state", state, "--out", join(work, "atomic3.env")])).code, 0)
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
})

test("list, revoke, expire-tickets, rotate-ticket-key [--oob]", async () => {
    const state = join(work, "s-list")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    assert.match((await cli(["list", "--state", state])).out, /no devices/)
    for (const n of ["a1", "b2"]) assert.equal((await cli(["pair", n, "--state", state, "--out", join(work, `${n}.env`)])).code, 0)
    const table = await cli(["list", "--state", state])
    assert.equal(table.code, 0)
    assert.match(table.out, /^NAME\s+ID\s+STATUS/)
    assert.match(table.out, /a1\s+[0-9a-f]{16}\s+active/)
    const psk = String(readEnv(join(work, "a1.env")).TT_PSK)
    assert.ok(!table.out.includes(psk))

    const ex = await cli(["expire-tickets", "b2", "--state", state])
    assert.equal(ex.code, 0, ex.err)
    assert.match(ex.out, /tickets of b2 expired/)
    assert.equal((await cli(["expire-tickets", "zz", "--state", state])).code, 1)
    const afterExpire = JSON.parse((await cli(["list", "--json", "--state", state])).out) as Record<string, unknown>[]
    assert.deepEqual(
        afterExpire.map(d => [d.name, d.status, d.min_generation]),
        [
            ["a1", "active", 0],
            ["b2", "active", 2],
        ]
    )

    const rv = await cli(["revoke", "a1", "--state", state])
    assert.equal(rv.code, 0, rv.err)
    const unknown = await cli(["revoke", "zz", "--state", state])
    assert.equal(unknown.code, 1)
    assert.match(unknown.err, /no device named zz/)
    const json = JSON.parse((await cli(["list", "--json", "--state", state])).out) as Record<string, unknown>[]
    assert.deepEqual(
        json.map(d => [d.name, d.status]),
        [
            ["a1", "revoked"],
            ["b2", "active"],
        ]
    )
    assert.ok(!JSON.stringify(json).includes(psk), "no PSK in --json")
    assert.equal(json[0]?.min_generation, 2, "revocation raised min_generation above every issued ticket")

    const oldTicket = Buffer.from(String(readEnv(join(work, "b2.env")).TT_TICKET), "hex")
    const readKeys = () => TicketKeySet.fromJSON(JSON.parse(readFileSync(join(state, "ticket-keys.json"), "utf8")))
    const now = Math.floor(Date.now() / 1000)
    // the session key: its old one retires 7 days after the rotation, not 365
    const rot = await cli(["rotate-ticket-key", "--state", state])
    assert.equal(rot.code, 0, rot.err)
    assert.match(rot.out, /^session ticket key 2 is current; 3 keys held, 0 expired keys deleted$/m)
    let keys = readKeys()
    assert.equal(keys.current.id, 2)
    const old0 = keys.keys.find(k => k.id === 0)
    assert.equal(old0?.kind, "session")
    assert.ok(old0?.retireAt !== undefined && Math.abs(old0.retireAt - (now + 7 * 86400)) <= 5, "retires in 7 days")
    assert.equal(keys.currentOf("oob").id, 1, "the out-of-band key is not rotated with it")
    assert.ok(!("error" in openTicket(oldTicket, keys, now, 1)), "pairing tickets are untouched")
    // the out-of-band key: its old one keeps opening the pairing tickets for their 365 days
    const oob = await cli(["rotate-ticket-key", "--oob", "--state", state])
    assert.equal(oob.code, 0, oob.err)
    assert.match(oob.out, /^oob ticket key 3 is current; 4 keys held/m)
    keys = readKeys()
    assert.equal(keys.currentOf("oob").id, 3)
    assert.equal(keys.current.id, 2)
    const old1 = keys.keys.find(k => k.id === 1)
    assert.ok(old1?.retireAt !== undefined && Math.abs(old1.retireAt - (now + 365 * 86400)) <= 5, "retires in 365 days")
    assert.ok(!("error" in openTicket(oldTicket, keys, now + 364 * 86400, 1)), "the old key still opens its tickets")
    assert.ok("error" in openTicket(oldTicket, keys, now + 366 * 86400, 1), "until they expire")
    assert.equal(statSync(join(state, "ticket-keys.json")).mode & 0o777, 0o600)
    // a new pairing's ticket is signed by the new out-of-band key
    assert.equal((await cli(["pair", "c3", "--state", state, "--out", join(work, "c3.env")])).code, 0)
    assert.equal(String(readEnv(join(work, "c3.env")).TT_TICKET).slice(0, 2), "03")
    assert.equal((await cli(["rotate-ticket-key", "--bogus", "--state", state])).code, 2)
})

test("retire-ticket-key: needs --now; --id retires one key; refuses a current key; its tickets are refused at once", async () => {
    const state = join(work, "s-retire")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    assert.equal((await cli(["pair", "r1", "--state", state, "--out", join(work, "r1.env")])).code, 0)
    const ticket = Buffer.from(String(readEnv(join(work, "r1.env")).TT_TICKET), "hex") // oob key 1
    const readKeys = () => TicketKeySet.fromJSON(JSON.parse(readFileSync(join(state, "ticket-keys.json"), "utf8")))
    const file = () => readFileSync(join(state, "ticket-keys.json"), "utf8")
    const now = Math.floor(Date.now() / 1000)

    // without --now: a usage error, nothing changed
    const before = file()
    const no = await cli(["retire-ticket-key", "--state", state])
    assert.equal(no.code, 2)
    assert.match(no.err, /--now is required/)
    assert.equal(file(), before)
    // nothing but current keys: nothing to retire
    const none = await cli(["retire-ticket-key", "--now", "--state", state])
    assert.equal(none.code, 0, none.err)
    assert.match(none.out, /no key to retire/)
    // a current key cannot be retired
    for (const id of ["0", "1"]) {
        const cur = await cli(["retire-ticket-key", "--now", "--id", id, "--state", state])
        assert.equal(cur.code, 1, id)
        assert.match(cur.err, /is the current (session|oob) key: rotate it first/)
    }
    assert.equal(file(), before)
    const unknown = await cli(["retire-ticket-key", "--now", "--id", "9", "--state", state])
    assert.equal(unknown.code, 1)
    assert.match(unknown.err, /no ticket key 9/)
    for (const bad of ["x", "256", "-1"])
        assert.equal((await cli(["retire-ticket-key", "--now", "--id", bad, "--state", state])).code, 2, bad)

    // rotate both kinds, then retire the old out-of-band key by id: its ticket is refused
    assert.equal((await cli(["rotate-ticket-key", "--state", state])).code, 0)
    assert.equal((await cli(["rotate-ticket-key", "--oob", "--state", state])).code, 0)
    assert.ok(!("error" in openTicket(ticket, readKeys(), now, 1)), "within the overlap")
    const one = await cli(["retire-ticket-key", "--now", "--id", "1", "--state", state])
    assert.equal(one.code, 0, one.err)
    assert.match(one.out, /retired ticket keys oob 1; their tickets are refused/)
    assert.deepEqual(openTicket(ticket, readKeys(), now, 1), { error: "unknown-key" })
    assert.deepEqual(
        readKeys().keys.map(k => k.id),
        [0, 2, 3]
    )
    // --now alone: every key that is not current
    const all = await cli(["retire-ticket-key", "--now", "--state", state])
    assert.equal(all.code, 0, all.err)
    assert.match(all.out, /retired ticket keys session 0;/)
    const keys = readKeys()
    assert.deepEqual(
        keys.keys.map(k => [k.id, k.kind, k.retireAt]),
        [
            [2, "session", undefined],
            [3, "oob", undefined],
        ]
    )
    assert.equal(statSync(join(state, "ticket-keys.json")).mode & 0o777, 0o600)
})

test("vectors --cacophony: every supported vector passes; a corrupted one fails with exit 1", async () => {
    const r = await cli(["vectors", "--cacophony", CACOPHONY])
    assert.equal(r.code, 0, r.err)
    const m = /^(\d+) passed, 0 failed$/m.exec(r.out)
    assert.ok(m !== null && Number(m[1]) > 0, r.out)
    const total = (JSON.parse(readFileSync(CACOPHONY, "utf8")) as { vectors: unknown[] }).vectors.length
    assert.equal(r.out.split("\n").filter(l => /^(pass|skip|FAIL) /.test(l)).length, total, "one line per vector")
    assert.match(r.out, /^skipped: /m)

    const json = JSON.parse(readFileSync(CACOPHONY, "utf8")) as { vectors: { protocol_name: string; messages: { ciphertext: string }[] }[] }
    const v = json.vectors.find(x => x.protocol_name === "Noise_KK_25519_AESGCM_SHA256")
    assert.ok(v?.messages[0] !== undefined)
    const c = v.messages[0].ciphertext
    v.messages[0].ciphertext = (c[0] === "0" ? "1" : "0") + c.slice(1)
    const bad = join(work, "bad-cacophony.json")
    writeFileSync(bad, JSON.stringify(json))
    const rb = await cli(["vectors", "--cacophony", bad])
    assert.equal(rb.code, 1)
    assert.match(rb.out, /^FAIL +Noise_KK_25519_AESGCM_SHA256/m)
    assert.match(rb.out, /^\d+ passed, 1 failed$/m)
    assert.equal((await cli(["vectors"])).code, 2)
})

test("a missing or corrupt state directory is a clear error, never a re-initialisation", async () => {
    const missing = await cli(["list", "--state", join(work, "nope")])
    assert.equal(missing.code, 1)
    assert.match(missing.err, /no state directory .*run `tether-gateway init`/)
    assert.ok(!existsSync(join(work, "nope")))

    const state = join(work, "s-corrupt")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    writeFileSync(join(state, "identity.json"), "{ not json", { mode: 0o600 })
    const corrupt = await cli(["pair", "x", "--state", state, "--out", join(work, "c.env")])
    assert.equal(corrupt.code, 1)
    assert.match(corrupt.err, /identity is corrupt/)
    assert.ok(!existsSync(join(work, "c.env")))
    assert.equal((await cli(["serve", "--state", state, "--port", "0"])).code, 1)

    const state2 = join(work, "s-corrupt-db")
    assert.equal((await cli(["init", "--state", state2])).code, 0)
    writeFileSync(join(state2, "registry.db"), Buffer.alloc(4096, 0x5a))
    const db = await cli(["list", "--state", state2])
    assert.equal(db.code, 1)
    assert.match(db.err, /registry: .*(corrupt|not a database)/)

    const state3 = join(work, "s-no-db")
    assert.equal((await cli(["init", "--state", state3])).code, 0)
    rmSync(join(state3, "registry.db"))
    const nodb = await cli(["list", "--state", state3])
    assert.equal(nodb.code, 1)
    assert.match(nodb.err, /registry/)
    assert.ok(!existsSync(join(state3, "registry.db")), "not re-created")
})

test("serve: the paired device connects from its settings file; state persists across restarts; SIGTERM closes with SHUTDOWN", async () => {
    const state = join(work, "s-serve")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const envPath = join(work, "serve.env")
    assert.equal((await cli(["pair", "field-7", "--state", state, "--out", envPath])).code, 0)
    const env = readEnv(envPath)

    const s1 = await serve(state)
    const d = deviceFromEnv(env, s1.port)
    const c1 = await d.connect()
    assert.equal(c1.resumed, true, "the out-of-band ticket resumes: no X25519 before the first message")
    d.publish("hello", Buffer.from("one"))
    await d.settled()
    assert.ok(await until(() => s1.lines.some(l => l.event === "app" && l.outcome === "publish" && l.device === "field-7")))
    s1.child.kill("SIGTERM")
    assert.equal(await s1.exited, 0)
    await d.ended()
    assert.equal(c1.closeCode, Code.SHUTDOWN)
    assert.ok(s1.lines.some(l => l.event === "shutdown" && l.outcome === "done"))
    assert.ok(
        s1.lines.some(l => l.outcome === "resumed" && l.deviceName === "field-7"),
        "connection log line"
    )
    const text = JSON.stringify(s1.lines)
    for (const k of ["TT_SK", "TT_PSK", "TT_TICKET", "TT_RSECRET"]) assert.ok(!text.includes(String(env[k])), `${k} logged`)
    assert.ok(!text.includes(Buffer.from("one").toString("hex")) && !text.includes('"one"'), "no payload logged")

    // restart: the device resumes with the ticket the first run issued (generation 2), which
    // needs the registry's generations to have survived
    const s2 = await serve(state)
    ;(d.client.opts as { port: number }).port = s2.port
    const c2 = await d.connect()
    assert.equal(c2.resumed, true)
    assert.equal(c2.earlyAccepted, true, "a newer generation than the one accepted before the restart")
    d.publish("hello", Buffer.from("two"))
    await d.settled()
    const pubs = () => s2.lines.filter(l => l.event === "app" && l.outcome === "publish")
    assert.ok(await until(() => pubs().length === 1))
    assert.equal(pubs()[0]?.id, 2, "the stream continues: message 1 was not redelivered")
    await d.close()
    s2.child.kill("SIGINT")
    assert.equal(await s2.exited, 0)
    const list = JSON.parse((await cli(["list", "--json", "--state", state])).out) as Record<string, unknown>[]
    assert.deepEqual([list[0]?.accepted_generation, list[0]?.issued_generation], [2, 3], "out-of-band 1, then 2 accepted; 3 issued")
})

test("revoke closes a live session with CLOSE(REVOKED); the device cannot come back", async () => {
    const state = join(work, "s-revoke")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const envPath = join(work, "revoke.env")
    assert.equal((await cli(["pair", "lost-1", "--state", state, "--out", envPath])).code, 0)
    const s = await serve(state)
    const d = deviceFromEnv(readEnv(envPath), s.port)
    const conn = await d.connect()
    assert.equal((await cli(["revoke", "lost-1", "--state", state])).code, 0)
    const t0 = Date.now()
    await d.ended()
    assert.equal(conn.closeCode, Code.REVOKED)
    assert.ok(Date.now() - t0 < 3000)
    // resumption refused, then the full handshake: UNKNOWN_DEVICE
    await assert.rejects(d.connect(), (err: unknown) => err instanceof RejectedError && err.code === Code.UNKNOWN_DEVICE)
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
})

test("send: a connected device gets the message at once; an offline one when it connects; bad input is a clear error", async () => {
    const state = join(work, "s-send")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const envPath = join(work, "send.env")
    assert.equal((await cli(["pair", "inbox-1", "--state", state, "--out", envPath])).code, 0)
    // offline: stored now, delivered on the next connection
    const offline = await cli(["send", "inbox-1", "cmd/led", "on", "--state", state])
    assert.equal(offline.code, 0, offline.err)
    assert.equal(offline.out.trim(), "queued message 1 to inbox-1")
    const s = await serve(state)
    const d = deviceFromEnv(readEnv(envPath), s.port)
    const got: string[] = []
    d.app.events.on("message", m => got.push(`${m.id}:${m.topic}:${m.payload.toString("hex")}`))
    await d.connect()
    assert.ok(await until(() => got.length === 1), "the message queued while offline")
    // connected: the node is told through the store's event log
    const t0 = Date.now()
    assert.equal((await cli(["send", "inbox-1", "cmd/raw", "--hex", "00ff", "--state", state])).code, 0)
    assert.ok(await until(() => got.length === 2), "the message sent while connected")
    assert.ok(Date.now() - t0 < 3000)
    writeFileSync(join(work, "send-payload.bin"), Buffer.from([1, 2, 3]))
    assert.equal((await cli(["send", "inbox-1", "cmd/file", "--file", join(work, "send-payload.bin"), "--state", state])).code, 0)
    assert.ok(await until(() => got.length === 3), "the file's bytes")
    assert.deepEqual(got, [`1:cmd/led:${Buffer.from("on").toString("hex")}`, "2:cmd/raw:00ff", "3:cmd/file:010203"])
    for (const [args, code, re] of [
        [["send", "nobody", "t", "x"], 1, /no device named nobody/],
        [["send", "inbox-1", "", "x"], 2, /a topic is 1\.\.\d+ bytes/],
        [["send", "inbox-1", "t", "x", "--hex", "00"], 2, /one of TEXT, --hex and --file/],
        [["send", "inbox-1", "t", "--file", join(work, "no-such-file")], 2, /cannot read .*ENOENT/],
        [["send", "inbox-1", "t", "--hex", "abc"], 2, /even number of hex digits/],
        [["send", "inbox-1", "t", "x".repeat(2000)], 2, /do not fit one record/],
        [["send", "inbox-1"], 2, /missing argument TOPIC/],
    ] as const) {
        const r = await cli([...args, "--state", state])
        assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`)
        assert.match(r.err, re)
    }
    await d.close()
    // the queue's bound
    assert.equal((await cli(["send", "inbox-1", "t", "x", "--max-queue", "1000", "--state", state])).code, 0)
    const full = await cli(["send", "inbox-1", "t", "x", "--max-queue", "1", "--state", state])
    assert.equal(full.code, 1)
    assert.match(full.err, /inbox-1's queue is full \(1 unacknowledged messages\)/)
    assert.equal((await cli(["revoke", "inbox-1", "--state", state])).code, 0)
    const revoked = await cli(["send", "inbox-1", "t", "x", "--state", state])
    assert.equal(revoked.code, 1)
    assert.match(revoked.err, /inbox-1 is revoked/)
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
})

test("serve --metrics: a Prometheus scrape while a device reconnects counts handshakes and sessions, names no device", async () => {
    const state = join(work, "s-metrics")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const envPath = join(work, "metrics.env")
    assert.equal((await cli(["pair", "meter-7", "--state", state, "--out", envPath])).code, 0)
    const s = await serve(state, ["--metrics", "127.0.0.1:0"])
    const at = s.lines.find(l => l.event === "metrics")
    assert.ok(at !== undefined && typeof at.port === "number", "the metrics port is logged")
    const scrape = async () => {
        const r = await fetch(`http://127.0.0.1:${at.port as number}/metrics`)
        assert.equal(r.status, 200)
        assert.match(r.headers.get("content-type") ?? "", /text\/plain/)
        return r.text()
    }
    const value = (text: string, series: string) => {
        const line = text.split("\n").find(l => l.startsWith(series + " "))
        return line === undefined ? undefined : Number(line.slice(series.length + 1))
    }
    const d = deviceFromEnv(readEnv(envPath), s.port)
    await d.connect()
    d.publish("m", Buffer.from("1"))
    await d.settled()
    assert.ok(await until(() => s.lines.some(l => l.outcome === "publish")))
    let text = await scrape()
    assert.equal(value(text, "tether_live_sessions"), 1)
    assert.equal(value(text, 'tether_handshakes_total{kind="resumption"}'), 1)
    assert.equal(value(text, 'tether_app_messages_total{kind="publish"}'), 1)
    assert.equal(value(text, "tether_store_available"), 1)
    assert.equal(value(text, "tether_outbox_messages"), 0)
    // the radio drops; the device resumes with its new ticket, its early data accepted
    await d.drop()
    await d.connect()
    d.publish("m", Buffer.from("2"))
    await d.settled()
    assert.ok(await until(() => s.lines.filter(l => l.outcome === "publish").length === 2))
    text = await scrape()
    assert.equal(value(text, 'tether_handshakes_total{kind="resumption"}'), 2)
    assert.equal(value(text, 'tether_early_data_total{result="accepted"}'), 1)
    assert.ok((value(text, 'tether_handshake_seconds_count{kind="resumption"}') ?? 0) >= 2)
    assert.equal(value(text, "tether_live_sessions"), 1)
    assert.ok(!text.includes("meter-7") && !text.includes(String(readEnv(envPath).TT_ID)), "no device name or id in a label")
    assert.equal((await fetch(`http://127.0.0.1:${at.port as number}/other`)).status, 404)
    await d.close()
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
    const bad = await cli(["serve", "--state", state, "--metrics", "nope"])
    assert.equal(bad.code, 2)
    assert.match(bad.err, /--metrics is \[HOST:\]PORT/)
})

test("serve --config: the device's REQUEST goes to the configured upstream; a bad config is a clear error", async () => {
    const { createServer } = await import("node:http")
    const http = createServer((req, res) => res.end(`hi ${req.headers["x-tether-device"]}`))
    await new Promise<void>(r => http.listen(0, "127.0.0.1", r))
    const addr = http.address()
    const upPort = typeof addr === "object" && addr !== null ? addr.port : 0
    try {
        const state = join(work, "s-config")
        assert.equal((await cli(["init", "--state", state])).code, 0)
        const envPath = join(work, "config.env")
        assert.equal((await cli(["pair", "asker", "--state", state, "--out", envPath])).code, 0)
        const bad = join(work, "bad-config.json")
        writeFileSync(bad, JSON.stringify({ routes: { hi: { url: "ftp://x/", devices: ["*"] } } }))
        const rb = await cli(["serve", "--state", state, "--port", "0", "--config", bad])
        assert.equal(rb.code, 1)
        assert.match(rb.err, /\/routes\/hi\/url: must be an http:\/\/ or https:\/\/ URL/)
        const good = join(work, "config.json")
        writeFileSync(good, JSON.stringify({ routes: { hi: { url: `http://127.0.0.1:${upPort}/`, devices: ["asker"] } } }))
        const s = await serve(state, ["--config", good])
        const d = deviceFromEnv(readEnv(envPath), s.port)
        await d.connect()
        const r = await d.request("hi", Buffer.from("?"))
        assert.equal(r.status, 200)
        assert.equal(r.payload.toString(), "hi asker")
        const refused = await d.request("elsewhere", Buffer.alloc(0))
        assert.deepEqual([refused.status, refused.payload[0]], [0, 0x01])
        assert.ok(await until(() => s.lines.some(l => l.outcome === "route-refused" && l.route === "elsewhere")))
        await d.close()
        s.child.kill("SIGTERM")
        assert.equal(await s.exited, 0)
    } finally {
        http.closeAllConnections()
        http.close()
    }
})

test("serve: an upstream answering status 600 or 999 does not take the gateway down", async () => {
    const { createServer } = await import("node:http")
    const http = createServer((req, res) => {
        res.writeHead(req.url === "/999" ? 999 : req.url === "/600" ? 600 : 200)
        res.end("x")
    })
    await new Promise<void>(r => http.listen(0, "127.0.0.1", r))
    const addr = http.address()
    const upPort = typeof addr === "object" && addr !== null ? addr.port : 0
    try {
        const state = join(work, "s-600")
        assert.equal((await cli(["init", "--state", state])).code, 0)
        const envPath = join(work, "600.env")
        assert.equal((await cli(["pair", "asker-600", "--state", state, "--out", envPath])).code, 0)
        const config = join(work, "config-600.json")
        const route = (path: string) => ({ url: `http://127.0.0.1:${upPort}${path}`, devices: ["*"] })
        writeFileSync(config, JSON.stringify({ routes: { six: route("/600"), nine: route("/999"), ok: route("/ok") } }))
        const s = await serve(state, ["--config", config])
        const d = deviceFromEnv(readEnv(envPath), s.port)
        await d.connect()
        // before the fix serve died here with exit 1: the race makes that a failure, not a hang
        const died = s.exited.then(code => Promise.reject(new Error(`serve exited ${code}`)))
        for (const r of ["six", "nine", "six"]) {
            const a = await Promise.race([d.request(r, Buffer.alloc(0)), died])
            assert.deepEqual([a.status, a.payload[0]], [0, 0x04], `${r}: UPSTREAM_FAILED`)
        }
        const ok = await d.request("ok", Buffer.alloc(0))
        assert.equal(ok.status, 200)
        assert.equal(s.child.exitCode, null, "serve is still running")
        assert.ok(!s.lines.some(l => l.event === "unhandled"), "nothing reached the last resort")
        await d.close()
        s.child.kill("SIGTERM")
        assert.equal(await s.exited, 0)
    } finally {
        http.closeAllConnections()
        http.close()
    }
})

test("serve takes up rotations and retirements written by the CLI", async () => {
    const state = join(work, "s-rotate")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const early = join(work, "early.env")
    assert.equal((await cli(["pair", "early-1", "--state", state, "--out", early])).code, 0) // oob key 1
    const s = await serve(state)
    const keyLines = (outcome: string) => s.lines.filter(l => l.event === "ticket-key" && l.outcome === outcome)
    // a session key rotation: the running gateway signs the next TICKET with key 2
    assert.equal((await cli(["rotate-ticket-key", "--state", state])).code, 0)
    assert.ok(await until(() => keyLines("rotated").some(l => l.keyId === 2 && l.kind === "session")))
    const d0 = deviceFromEnv(readEnv(early), s.port)
    assert.equal((await d0.connect()).resumed, true)
    const store0 = d0.client.opts.store as MemoryTicketStore
    assert.equal(store0.ticket?.ticket[0], 2, "the TICKET is signed by the new session key")
    await d0.close()
    // an out-of-band rotation: a device paired after it (ticket under key 3) resumes against the running gateway
    assert.equal((await cli(["rotate-ticket-key", "--oob", "--state", state])).code, 0)
    assert.ok(await until(() => keyLines("rotated").some(l => l.keyId === 3 && l.kind === "oob")))
    const envPath = join(work, "rotate.env")
    assert.equal((await cli(["pair", "late-1", "--state", state, "--out", envPath])).code, 0)
    const env = readEnv(envPath)
    assert.equal(String(env.TT_TICKET).slice(0, 2), "03")
    const d = deviceFromEnv(env, s.port)
    const conn = await d.connect()
    assert.equal(conn.resumed, true)
    assert.equal(conn.fellBack, false)
    await d.close()
    // retire-ticket-key --now: the running gateway refuses the old keys' tickets at once
    const stale = deviceFromEnv(readEnv(early), s.port) // its out-of-band ticket, under key 1
    assert.equal((await cli(["retire-ticket-key", "--now", "--state", state])).code, 0)
    assert.ok(await until(() => keyLines("retired").length === 2))
    assert.deepEqual(
        keyLines("retired")
            .map(l => l.keyId)
            .sort(),
        [0, 1]
    )
    const refused = await stale.connect()
    assert.equal(refused.fellBack, true, "TICKET_REJECTED, then the full handshake on the same connection")
    assert.equal(refused.resumed, false)
    await stale.close()
    assert.ok(s.lines.some(l => l.detail === "ticket: unknown-key"))
    assert.ok(!s.lines.some(l => l.outcome === "out-of-sync"))
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
})

test("serve: policy from the config file and the options (options win); SIGTERM with a silent peer exits after the grace period", async () => {
    const { connect } = await import("node:net")
    const state = join(work, "s-policy")
    assert.equal((await cli(["init", "--state", state])).code, 0)
    const conf = join(work, "policy.json")
    writeFileSync(conf, JSON.stringify({ routes: {}, policy: { shutdownGraceMs: 60_000, perSourceConnections: 7 } }))
    const bad = join(work, "policy-bad.json")
    writeFileSync(bad, JSON.stringify({ policy: { noSuchField: 1 } }))
    const rb = await cli(["serve", "--state", state, "--port", "0", "--config", bad])
    assert.equal(rb.code, 1, "a config file's errors are the file's, not the command line's")
    assert.match(rb.err, /\/policy: unknown key noSuchField/)
    assert.equal((await cli(["serve", "--state", state, "--port", "0", "--linger-ms", "x"])).code, 2)
    const s = await serve(state, ["--config", conf, "--shutdown-grace-ms", "300", "--linger-ms", "60000"])
    const line = s.lines.find(l => l.event === "serve")
    assert.equal(line?.shutdownGraceMs, 300, "the option wins over the file")
    assert.equal(line?.perSourceConnections, 7, "the file's value")
    assert.equal(line?.idleTimeoutMs, 300_000, "the default")
    // a peer that connects and then neither sends nor closes
    const silent = await new Promise<import("node:net").Socket>(r => {
        const c = connect({ host: "127.0.0.1", port: s.port, allowHalfOpen: true }, () => r(c))
    })
    await new Promise(r => setTimeout(r, 100))
    const t0 = Date.now()
    s.child.kill("SIGTERM")
    assert.equal(await s.exited, 0)
    assert.ok(Date.now() - t0 < 3000, `exited after ${Date.now() - t0} ms`)
    assert.ok(s.lines.some(l => l.event === "shutdown" && l.outcome === "destroyed"))
    silent.destroy()
})
