// The perf group of `npm run bench` runs and prints its rows (issue 15), in quick mode: a few
// connections per server and one run. No timing is asserted (performance claims live in the
// bench as ratios): only that every server, floor, reference and target row is there, with a
// finite value, and that each target row says PASS or FAIL.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")

test("npm run bench -- perf --quick prints every perf row", { timeout: 180000 }, () => {
    const r = spawnSync(process.execPath, [join(ROOT, "devs", "bench.mjs"), "perf", "--quick"], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 170000,
    })
    assert.equal(r.status, 0, `the bench failed:\n${r.stdout}\n${r.stderr}`)
    const rows = [...r.stdout.matchAll(/^BENCH (\{.*\})$/gm)].map(m => JSON.parse(m[1]))
    const names = rows.map(x => x.name)
    for (const want of [
        "TLS 1.3, external PSK: handshakes",
        "TLS 1.3, resumed (ticket): handshakes",
        "Tether full (KKpsk2), SQLite registry: handshakes",
        "Tether resumed (ticket), SQLite registry: handshakes",
        "floor: TCP accept",
        "floor: Tether full with X25519 stubbed",
        "crypto-bound limit",
        "Tether 1 KiB writes",
        "raw aes-256-ccm",
        "telemetry Tether",
        "telemetry MQTT",
        "floor: a 1 KiB write's two record decryptions",
        "serve --workers 1",
        "serve --workers 2",
        "Tether full (KKpsk2), in-memory registry",
        "Tether resumed (ticket), in-memory registry",
        "SQLite registry's gateway CPU per full handshake",
        "SQLite registry's gateway CPU per resumption",
        "floors of a full handshake",
        "floors of a resumption",
    ])
        assert.ok(
            names.some(n => n.includes(want)),
            `no row for ${want}:\n${names.join("\n")}`
        )
    const targets = rows.filter(x => x.name.startsWith("perf target:"))
    assert.equal(targets.length, 7, names.join("\n"))
    for (const t of targets) assert.match(t.name, /: (PASS|FAIL)$/)
    // a difference of two quick runs (the store's share) may come out at or below 0: finite only
    for (const x of rows) assert.ok(Number.isFinite(x.value) && (x.value > 0 || x.name.includes(" minus ")), `${x.name}: ${x.value}`)
})
