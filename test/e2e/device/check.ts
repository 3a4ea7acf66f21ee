// Helpers shared by the end-to-end device programs.
import { expect } from "@devicescript/test"

/** The message an async call throws, or "" when it does not throw. */
export async function errorOf(f: () => Promise<any>): Promise<string> {
    try {
        await f()
    } catch (e) {
        return (e as Error).message
    }
    return ""
}

/** Expects `part` inside `msg`, printing both when it is not. */
export function has(msg: string, part: string) {
    if (msg.indexOf(part) < 0) console.log("expected '" + part + "' in '" + msg + "'")
    expect(msg.indexOf(part) >= 0).toBe(true)
}
