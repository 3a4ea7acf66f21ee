// Entry point of the firmware for the Tether ESP32-C3 board (boards/tether_esp32c3.board.json):
// the portable firmware of ../main.ts plus the board's BOOT button, published as "button".
// DeviceScript ties a program to a board through an import of `@dsboard/<id>` that the
// program uses: `devs build` then type-checks it against that board's pins and services.
// Build: `npm run build:esp32c3` (prints the bytecode size).
import { board } from "@dsboard/tether_esp32c3"
import { link } from "../main"

const boot = board.startButtonBOOT()
boot.down.subscribe(() => {
    try {
        link.publish("button", Buffer.from("boot"))
    } catch (e) {
        console.log("BUTTON dropped reason=" + (e as Error).message)
    }
})
