// A planted bug behind a nested byte condition, for the test that the engine is coverage-guided:
// each matching byte opens a new block, so coverage feedback keeps the inputs that got one byte
// further; a random fuzzer must hit all four bytes at once (about 1 in 2^32 per try).
import type { Target } from "../engine.js"

export class PlantedBug extends Error {}

function planted(d: Buffer): void {
    if (d.length >= 4) {
        if (d[0] === 0x54) {
            if (d[1] === 0x45) {
                if (d[2] === 0x54) {
                    if (d[3] === 0x48) throw new PlantedBug("planted: TETH")
                }
            }
        }
    }
}

export async function create(): Promise<Target> {
    return { name: "planted", maxLen: 8, run: planted }
}
