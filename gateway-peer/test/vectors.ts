// Reads the project's JSON test vectors from test/vectors/ at the repository root. Compiled to
// gateway-peer/dist/test/vectors.js, three levels below the root.
import { readFileSync } from "node:fs"

/** Parses test/vectors/<dir>/<file> (dir "published" or "generated"). */
export function readVectors<T>(dir: "published" | "generated", file: string): T {
    return JSON.parse(readFileSync(new URL(`../../../test/vectors/${dir}/${file}`, import.meta.url), "utf8")) as T
}

/** Hex to Buffer. */
export const h = (s: string): Buffer => Buffer.from(s, "hex")
