// Entry point of the firmware for the Tether Pico W board (boards/tether_pico_w.board.json,
// DeviceScript's rp2040w firmware): the portable firmware of ../main.ts; the board's LED (on the
// CYW43 chip, the status light of the board's `led` entry) shows whether the link is up.
// DeviceScript ties a program to a board through an import of `@dsboard/<id>`.
// Build: `npm run build:pico-w` (prints the bytecode size and its headroom).
import "@dsboard/tether_pico_w"
import { setStatusLight } from "@devicescript/runtime"
import { link } from "../main"

let up = false
const show = async () => {
    await setStatusLight(up ? 0x001000 : 0)
}
link.onState(state => {
    up = state === "up"
    show.start()
})
