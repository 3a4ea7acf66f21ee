// `tether-gateway vectors --cacophony FILE`: the gateway's Noise layers with Noise's AESGCM
// against published cacophony vectors, byte for byte (PROTOCOL.md 3.3). The runner, the generic
// HandshakeState and AESGCM are the Noise reference (gateway-peer/reference/), which is not part
// of the shipped gateway: it is loaded here on demand, by path, and only by this command.
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { CliError, parse, type Io } from "./common.js"

/** A cacophony file: the fields this command reads; the runner checks each vector. */
interface CacophonyFile {
    readonly vectors: readonly { readonly protocol_name: string }[]
}

/** What this command needs of the reference's runner (reference/cacophony.ts). */
interface CacophonyRunner {
    runCacophonyVector(v: unknown): { status: "passed" | "skipped" | "failed"; reason?: string }
}

const REFERENCE_RUNNER = new URL("../../reference/cacophony.js", import.meta.url)

async function loadRunner(): Promise<CacophonyRunner> {
    try {
        return (await import(REFERENCE_RUNNER.href)) as CacophonyRunner
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND")
            throw new CliError(
                "the Noise reference is not installed with this gateway (gateway-peer/reference/ is development code): run vectors from a built checkout"
            )
        throw err
    }
}

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
    const { runCacophonyVector } = await loadRunner()
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
