// A planted hang, for the test of the watchdog: an input starting with "H" never returns.
import type { Target } from "../engine.js"

function hang(d: Buffer): void {
    if (d[0] === 0x48) for (;;);
}

export async function create(): Promise<Target> {
    return { name: "hang", maxLen: 16, run: hang }
}
