// `npm run build:esp32c3` / `build:pico-w` (devs/build-board.mjs) report the image's size and its
// room under Tether's budget and the VM's program store, and fail, saying which limit, when over.
// One real build (the ESP32-C3's); the over-limit cases on the report itself.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"
import { BUDGET, report, VM_PROGRAM_MAX } from "../../devs/build-board.mjs"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")

test("npm run build:esp32c3: the size, then the room under each limit", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "devs", "build-board.mjs"), "esp32c3"], {
        cwd: ROOT,
        env: { ...process.env, NO_UPDATE_NOTIFIER: "1" },
        encoding: "utf8",
        timeout: 120000,
    })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const m = /^tether_esp32c3 bytecode: (\d+) bytes \(\d+\.\d KB\) for the ESP32-C3/m.exec(r.stdout)
    assert.ok(m, r.stdout)
    const size = Number(m[1])
    assert.match(r.stdout, new RegExp(`^  Tether's budget 49152 bytes \\(48\\.0 KB\\): ${BUDGET - size} bytes left$`, "m"))
    assert.match(
        r.stdout,
        new RegExp(
            `^  the VM's program store 110464 bytes \\(107\\.9 KB, DeviceScript's 128 KB flash store\\): ${VM_PROGRAM_MAX - size} bytes left$`,
            "m"
        )
    )
    assert.doesNotMatch(r.stdout + r.stderr, /OVER|FAILED/)
})

test("over a limit: the report says which and by how much, and is not ok", () => {
    const within = report("pico_w", BUDGET)
    assert.equal(within.ok, true)
    const over = report("pico_w", BUDGET + 1)
    assert.equal(over.ok, false)
    assert.match(over.lines[1], /OVER by 1 bytes$/)
    assert.equal(over.lines.at(-1), "FAILED: the image is over Tether's budget by 1 bytes")
    const huge = report("esp32c3", VM_PROGRAM_MAX + 10)
    assert.equal(huge.ok, false)
    assert.match(
        huge.lines.at(-1),
        /over Tether's budget by \d+ bytes, and over the VM's program store by 10 bytes: DeviceScript would refuse to deploy it$/
    )
})
