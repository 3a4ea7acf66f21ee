// `tether-gateway vectors --cacophony FILE`: the gateway's Noise layers with Noise's AESGCM
// against published cacophony vectors, byte for byte (PROTOCOL.md 3.3).
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { runCacophonyVector, type CacophonyFile } from "../noise/cacophony.js"
import { CliError, parse, type Io } from "./common.js"

export const VECTORS_USAGE = `usage: tether-gateway vectors --cacophony FILE

Runs Noise cacophony test vectors (25519, AESGCM, SHA256) through the gateway's Noise layers.
Prints one line per vector, then "N passed, N failed" and the patterns skipped. Exit status 1
on any failure.

  --cacophony FILE   a cacophony JSON file ({ "vectors": [...] })`

/** Runs `vectors`; returns the exit status. */
export async function vectors(argv: string[], io: Io): Promise<number> {
    const r = parse(argv, { cacophony: { type: "string" } }, VECTORS_USAGE, io)
    if (r === undefined) return 0
    if (typeof r.values.cacophony !== "string") throw new CliError(`--cacophony FILE is required\n\n${VECTORS_USAGE}`, 2)
    const path = resolve(io.cwd, r.values.cacophony)
    let json: CacophonyFile
    try {
        json = JSON.parse(readFileSync(path, "utf8")) as CacophonyFile
    } catch (err) {
        throw new CliError(`cannot read ${path}: ${(err as Error).message}`)
    }
    if (json === null || typeof json !== "object" || !Array.isArray(json.vectors)) throw new CliError(`${path} is not a cacophony file`)
    let passed = 0
    let failed = 0
    const skipped = new Set<string>()
    for (const v of json.vectors) {
        const o = runCacophonyVector(v)
        if (o.status === "passed") {
            passed++
            io.out(`pass  ${v.protocol_name}`)
        } else if (o.status === "skipped") {
            skipped.add(v.protocol_name)
            io.out(`skip  ${v.protocol_name} (${o.reason})`)
        } else {
            failed++
            io.out(`FAIL  ${v.protocol_name}: ${o.reason}`)
        }
    }
    io.out(`${passed} passed, ${failed} failed`)
    io.out(`skipped: ${skipped.size === 0 ? "none" : [...skipped].join(", ")}`)
    return failed > 0 ? 1 : 0
}
