// The main job as a newcomer runs it: `npm run demo` (devs/demo.mjs --scripted) pairs a device
// with the CLI, runs the gateway (the library, createGateway) bridged to an embedded MQTT broker
// and the real firmware (src/main.ts) in the simulator outside test mode, and goes through
// connect, telemetry arriving at an MQTT subscriber of its own, a command published on the broker
// reaching the device, a dropped connection with a resumption, a forced full handshake and an
// upstream request, printing each operator command before running it. It exits 0 only when
// every step succeeded.
// Run here twice on one state directory: the first run is a new device (its first connection
// resumes from the out-of-band ticket), the second a device that kept its flash. A run that
// reached DONE after a hidden failure does not pass: no PROTOCOL_ERROR in any gateway line,
// and no "LINK down" but the two the scenario causes (its two cuts of the relay): the firmware
// boots "connecting", not "down".
import { test } from "node:test"
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "..", "..")

/** The hidden failures a successful-looking run must not have. */
function clean(out: string): void {
    assert.doesNotMatch(out, /PROTOCOL_ERROR|protocol-error/, "a protocol error in the run")
    assert.doesNotMatch(out, /unexpected event/)
    assert.equal(
        out.match(/DEVICE\s+LINK down/g)?.length,
        2,
        `LINK down only for the scenario's two cuts (none at boot: the firmware starts "connecting")`
    )
}

function demo(dir: string) {
    return spawnSync(process.execPath, [join(ROOT, "devs", "demo.mjs"), "--scripted"], {
        cwd: ROOT,
        env: { ...process.env, TETHER_DEMO_DIR: dir, NO_UPDATE_NOTIFIER: "1" },
        encoding: "utf8",
        timeout: 240000,
    })
}

test("npm run demo: every step succeeds on a new device, and again on the same device", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-demo-"))
    try {
        const first = demo(dir)
        assert.equal(first.status, 0, first.stdout + first.stderr)
        assert.match(first.stdout, /SETUP\s+paired demo-device|SETUP.*demo-device/)
        assert.match(
            first.stdout,
            /RESULT\s+resumed in \d+ ms of device time with 0 X25519; 97 B of handshake/,
            "first connection: the out-of-band ticket"
        )
        assert.match(first.stdout, /Noise KKpsk2 in \d+ ms of device time with 2 X25519 .*HS_INIT 60 B, ← HS_RESP 51 B/)
        assert.match(first.stdout, /HTTP 200/)
        // the MQTT leg: telemetry from the broker, with its ids, and a command from it at the device
        assert.match(first.stdout, /MQTT\s+broker \(aedes, embedded\) on mqtt:\/\/127\.0\.0\.1:\d+/)
        assert.match(first.stdout, /GATEWAY\s+event=mqtt outcome=connected/)
        assert.ok(
            (first.stdout.match(/MQTT\s+tether\/demo-device\/telemetry stream=\d+ id=\d+ \{"temp":[\d.]+,"led":[01]\}/g)?.length ?? 0) >= 2
        )
        assert.match(first.stdout, /OK\s+telemetry flows device → gateway → MQTT broker → our subscriber/)
        assert.match(first.stdout, /MQTT\s+publish tether\/demo-device\/cmd\/led "on"/)
        assert.match(first.stdout, /DEVICE\s+COMMAND led=on/)
        assert.match(first.stdout, /OK\s+a command published on the MQTT broker reaches the device/)
        // each operator step shows its command
        for (const c of [
            "init --state",
            "pair demo-device --state",
            "expire-tickets demo-device --state",
            "send demo-device request weather --state",
        ])
            assert.match(first.stdout, new RegExp(`OPERATOR\\s+\\$ tether-gateway ${c}`))
        assert.match(first.stdout, /DONE\s+every step succeeded/)
        clean(first.stdout)
        const second = demo(dir)
        assert.equal(second.status, 0, second.stdout + second.stderr)
        assert.match(second.stdout, /reusing the gateway/)
        assert.match(second.stdout, /DONE\s+every step succeeded/)
        assert.match(second.stdout, /DEVICE\s+COMMAND led=on/)
        clean(second.stdout)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
