#!/usr/bin/env node
// `npm run build:esp32c3` / `npm run build:pico-w`: builds the firmware for one of the boards in
// boards/ and says how much room is left. Two limits: Tether's own budget for the firmware's
// bytecode (48 KB, issue 17: what a handshake may cost in flash), and the VM's (the notes on the
// toolchain: an image much above ~100 KB is refused, 78 KB was seen to load; one function's code
// at most 64 KB). Exits 1 when the image is over Tether's budget.
//
//   node devs/build-board.mjs esp32c3|pico_w
import { spawnSync } from "node:child_process"
import { statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(fileURLToPath(import.meta.url), "..", "..")
const BOARDS = {
    esp32c3: { entry: "src/boards/esp32c3.ts", chip: "ESP32-C3 (DeviceScript esp32c3 firmware)" },
    pico_w: { entry: "src/boards/pico_w.ts", chip: "Raspberry Pi Pico W (DeviceScript rp2040w firmware)" },
}
/** Tether's budget for the firmware's bytecode, in bytes */
const BUDGET = 48 * 1024
/** the largest image seen to load in the VM (the notes: 78 KB loads, 113 KB does not) */
const VM_KNOWN_GOOD = 78 * 1024

const name = process.argv[2]
const board = BOARDS[name]
if (board === undefined) {
    console.error(`usage: node devs/build-board.mjs ${Object.keys(BOARDS).join("|")}`)
    process.exit(2)
}
const devs = join(root, "node_modules", ".bin", "devs")
const r = spawnSync(devs, ["build", "--quiet", board.entry], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, NO_UPDATE_NOTIFIER: "1" },
})
if (r.status !== 0) process.exit(r.status ?? 1)
const size = statSync(join(root, ".devicescript", "bin", "bytecode.devs")).size
const kb = n => (n / 1024).toFixed(1) + " KB"
console.log(`tether_${name} bytecode: ${size} bytes (${kb(size)}) for the ${board.chip}`)
console.log(`  Tether's budget ${kb(BUDGET)}: ${size <= BUDGET ? `${BUDGET - size} bytes left` : `OVER by ${size - BUDGET} bytes`}`)
console.log(
    `  the VM's: images up to ${kb(VM_KNOWN_GOOD)} are known to load (${VM_KNOWN_GOOD - size} bytes above this one); near 100 KB the VM refuses them`
)
console.log(
    `  image: .devicescript/bin/bytecode.devs (the board runs DeviceScript's firmware, \`npx devs flash\`; the program goes on from VS Code, docs/device.md)`
)
process.exit(size <= BUDGET ? 0 : 1)
