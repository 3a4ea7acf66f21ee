// `npm run sim` (devs/sim.mjs) says what is missing before it starts anything: no such entry, no
// settings file (and which command writes one), a file that is no pairing, a compile error with
// the compiler's own message. None of these needs the simulator's port; the compile error runs
// the compiler only.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")
const SIM = join(ROOT, "devs", "sim.mjs")

function sim(args, cwd = ROOT, extra = {}) {
    return spawnSync(process.execPath, [SIM, ...args], {
        cwd,
        env: { ...process.env, INIT_CWD: cwd, NO_UPDATE_NOTIFIER: "1", ...extra },
        encoding: "utf8",
        timeout: 120000,
    })
}

test("a missing entry: its path, exit 2", () => {
    const r = sim(["src/no-such-firmware.ts"])
    assert.equal(r.status, 2)
    assert.match(r.stderr, /no such file: .*src\/no-such-firmware\.ts/)
})

test("no settings file: names it and the command that writes one", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-sim-fast-"))
    try {
        // run from a directory without .env.local, the entry given by its full path
        const r = sim(["--env", join(dir, "missing.env"), join(ROOT, "src", "examples", "hello.ts")], dir)
        assert.equal(r.status, 2)
        assert.match(
            r.stderr,
            /no settings file .*missing\.env: pair a device first with `npx tether-gateway pair NAME --out .*missing\.env`/
        )
        assert.match(r.stderr, /npx tether-gateway serve/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("a settings file that is no pairing: says so", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-sim-fast-"))
    try {
        writeFileSync(join(dir, "other.env"), 'WIFI_SSID="home"\n')
        const r = sim(["--env", join(dir, "other.env"), join(ROOT, "src", "examples", "hello.ts")], dir)
        assert.equal(r.status, 2)
        assert.match(r.stderr, /is not a Tether pairing \(no TT_ID or TT_GW_HOST\)/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("a compile error: the compiler's message, exit 1, and the simulator never started", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-sim-fast-"))
    // the entry must sit in the project to resolve @devicescript/core; a git-ignored name
    const entry = join(ROOT, ".tether", `sim-test-broken-${process.pid}.ts`)
    try {
        writeFileSync(join(dir, "p.env"), 'TT_ID="0011223344556677"\nTT_GW_HOST="127.0.0.1"\nTT_GW_PORT=1\n')
        spawnSync("mkdir", ["-p", join(ROOT, ".tether")])
        writeFileSync(entry, 'const x: number = "not a number"\nconsole.log(x)\n')
        const r = sim(["--env", join(dir, "p.env"), entry], ROOT, { TETHER_SIM_DIR: join(dir, "device") })
        assert.equal(r.status, 1, r.stdout + r.stderr)
        assert.match(r.stdout, /BUILD\s+compiling .*sim-test-broken/)
        assert.match(r.stderr, /devs build .*sim-test-broken-\d+\.ts failed:\n[\s\S]*not assignable to type 'number'/)
        assert.doesNotMatch(r.stdout, /WAIT|DEVICE|running/, "nothing ran after the failed build")
    } finally {
        rmSync(entry, { force: true })
        rmSync(dir, { recursive: true, force: true })
    }
})
