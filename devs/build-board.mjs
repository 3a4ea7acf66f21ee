#!/usr/bin/env node
// `npm run build:esp32c3` / `npm run build:pico-w`: builds the firmware for one of the boards in
// boards/ and says how much room is left under each limit; exits 1, saying which, when the image
// is over one.
//
// The limits on the bytecode image:
// - Tether's own budget, 48 KB (issue 17: what a handshake may cost in flash);
// - the VM's program store: DeviceScript keeps the deployed program in its flash settings store
//   (jacdac-c's jd_fstor, JD_FSTOR_TOTAL_SIZE = 128 KB in DeviceScript's ESP32 and RP2040
//   builds, 4 KB flash pages), as one "large" entry in the data pages: 32 pages less 4 of
//   headers = 28, and the allocator takes at most 27 in one piece, less the program's 128-byte
//   header: 110,464 bytes. Read from DeviceScript's sources, not measured on a board; the
//   toolchain notes saw 78 KB load and 113 KB refused, which agrees.
// The heap is not a property of the image: its budget (8 KB above the program's own) is
// measured by `node devs/bench.mjs device` (docs/device.md, Cost).
//
//   node devs/build-board.mjs esp32c3|pico_w
import { spawnSync } from "node:child_process"
import { statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(fileURLToPath(import.meta.url), "..", "..")
export const BOARDS = {
    esp32c3: { entry: "src/boards/esp32c3.ts", chip: "ESP32-C3 (DeviceScript esp32c3 firmware)" },
    pico_w: { entry: "src/boards/pico_w.ts", chip: "Raspberry Pi Pico W (DeviceScript rp2040w firmware)" },
}
/** Tether's budget for the firmware's bytecode, in bytes */
export const BUDGET = 48 * 1024
/** the largest program DeviceScript's flash store takes on these boards (see the header) */
export const VM_PROGRAM_MAX = 27 * 4096 - 128

const kb = n => (n / 1024).toFixed(1) + " KB"
const room = (size, limit) => (size <= limit ? `${limit - size} bytes left` : `OVER by ${size - limit} bytes`)

/**
 * The report of an image of `size` bytes for board `name`: its lines, and whether it is within
 * every limit.
 */
export function report(name, size) {
    const lines = [
        `tether_${name} bytecode: ${size} bytes (${kb(size)}) for the ${BOARDS[name].chip}`,
        `  Tether's budget ${BUDGET} bytes (${kb(BUDGET)}): ${room(size, BUDGET)}`,
        `  the VM's program store ${VM_PROGRAM_MAX} bytes (${kb(VM_PROGRAM_MAX)}, DeviceScript's 128 KB flash store): ${room(size, VM_PROGRAM_MAX)}`,
        `  image: .devicescript/bin/bytecode.devs (the board runs DeviceScript's firmware, \`npx devs flash\`; the program goes on with \`devs devtools\` or VS Code, docs/device.md)`,
    ]
    const over = []
    if (size > BUDGET) over.push(`Tether's budget by ${size - BUDGET} bytes`)
    if (size > VM_PROGRAM_MAX) over.push(`the VM's program store by ${size - VM_PROGRAM_MAX} bytes: DeviceScript would refuse to deploy it`)
    if (over.length > 0) lines.push(`FAILED: the image is over ${over.join(", and over ")}`)
    return { lines, ok: over.length === 0 }
}

function main() {
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
    const { lines, ok } = report(name, statSync(join(root, ".devicescript", "bin", "bytecode.devs")).size)
    for (const l of lines) (l.startsWith("FAILED") ? console.error : console.log)(l)
    process.exit(ok ? 0 : 1)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
