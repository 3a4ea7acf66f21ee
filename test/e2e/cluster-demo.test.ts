// The cluster as a newcomer runs it: `node devs/cluster.mjs --scripted` (`npm run cluster`
// without the live end) starts a PostgreSQL, creates the cluster's store with the CLI, runs three
// `tether-gateway serve --node A|B|C` processes on it, pairs a device with the three as its
// endpoints and runs the real firmware (src/main.ts) in the simulator outside test mode. The
// device resumes on A, node A is killed and it resumes on B with A's ticket, a command sent with
// `send` through the store reaches it on B, node B shuts down and it resumes on C, A comes back.
// It exits 0 only when every step succeeded. A run that reached DONE after a hidden failure does
// not pass: no protocol error in any node's line, no X25519 on the device in any of its three
// resumptions, and no "LINK down" but the three the scenario causes
// (A's session lost, the attempt at A refused, B's CLOSE(SHUTDOWN)). The run leaves nothing
// behind: PostgreSQL's data directory is gone, and so are the KEK and the settings file.
import { test } from "node:test"
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "..", "..")

test("npm run cluster: the device roams A → B (A killed) → C (B shut down) with no X25519; a command reaches it through the store", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-cluster-demo-"))
    try {
        const r = spawnSync(process.execPath, [join(ROOT, "devs", "cluster.mjs"), "--scripted"], {
            cwd: ROOT,
            env: { ...process.env, TETHER_CLUSTER_DIR: dir, NO_UPDATE_NOTIFIER: "1" },
            encoding: "utf8",
            timeout: 120000,
        })
        const out = r.stdout
        assert.equal(r.status, 0, out + r.stderr)
        assert.match(out, /PG\s+PostgreSQL on 127\.0\.0\.1:\d+, data in \S+/)
        assert.match(out, /SETUP\s+paired roaming-device/)
        // the three resumptions, on endpoints 0, 1 and 2, each without X25519
        const ups = [...out.matchAll(/DEVICE\s+LINK up resumed=(\d) .* x25519=(\d+) endpoint=(\d)/g)].map(m => m.slice(1).join(","))
        assert.deepEqual(ups, ["1,0,0", "1,0,1", "1,0,2"], "resumed=1 x25519=0 on endpoints 0, 1, 2, and no other LINK up")
        assert.match(out, /RESULT\s+resumed on node A \(endpoint 0\) in \d+ ms of device time with 0 X25519/)
        assert.match(out, /KILL\s+node A \(pid \d+\) killed: SIGKILL/)
        assert.match(out, /RESULT\s+resumed on node B \(endpoint 1\) in \d+ ms of device time with 0 X25519/)
        assert.match(out, /NODE B\s+event=connection .*outcome=resumed deviceName=roaming-device/)
        assert.match(out, /DEVICE\s+COMMAND led=on/)
        assert.match(out, /STOP\s+node B shut down cleanly \(exit 0\)/)
        assert.match(out, /RESULT\s+resumed on node C \(endpoint 2\) in \d+ ms of device time with 0 X25519/)
        assert.match(out, /NODE C\s+event=connection .*outcome=resumed deviceName=roaming-device/)
        for (const n of ["A", "B", "C"]) assert.match(out, new RegExp(`STATUS\\s+tether-gateway status .*: roaming-device on node ${n}`))
        assert.match(out, /DEVICE\s+COMMAND interval=2000/)
        assert.match(out, /DONE\s+every step succeeded/)
        // hidden failures
        assert.doesNotMatch(out, /PROTOCOL_ERROR|protocol-error|internal-error|"outcome":"error"/, "an error in a node's log")
        assert.doesNotMatch(out, /unexpected event|FAILED/)
        assert.equal(
            out.match(/DEVICE\s+LINK down/g)?.length,
            3,
            `LINK down only twice for the SIGKILL and once for the SIGTERM (none at boot: the firmware starts "connecting")`
        )
        // nothing left behind
        const data = /data in (\S+)/.exec(out)?.[1] as string
        assert.equal(existsSync(data), false, `PostgreSQL's data directory ${data} was deleted`)
        assert.equal(existsSync(join(dir, "kek")), false, "the KEK was deleted with the store")
        assert.equal(existsSync(join(dir, "device.env")), false, "the settings file was deleted with the store")
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
