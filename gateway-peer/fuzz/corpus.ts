// The committed corpus: gateway-peer/fuzz/corpus/<target>/*, one raw input a file, named by a
// hash of its bytes. Only the files directly in the folder are seeds; crashes/ below it holds
// minimized findings, which no run replays.
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/** gateway-peer/fuzz/corpus (this file runs from gateway-peer/dist/fuzz/). */
export const CORPUS_ROOT = fileURLToPath(new URL("../../fuzz/corpus/", import.meta.url))

const nameOf = (data: Buffer) => createHash("sha256").update(data).digest("hex").slice(0, 16)

/** The seeds of a target, in file name order. */
export function loadCorpus(target: string): Buffer[] {
    const dir = join(CORPUS_ROOT, target)
    if (!existsSync(dir)) return []
    return readdirSync(dir)
        .sort()
        .filter(n => statSync(join(dir, n)).isFile())
        .map(n => readFileSync(join(dir, n)))
}

/** Writes inputs to the target's corpus folder (or its crashes/); returns the files written. */
export function saveInputs(target: string, inputs: readonly Buffer[], sub?: "crashes"): string[] {
    const dir = sub === undefined ? join(CORPUS_ROOT, target) : join(CORPUS_ROOT, target, sub)
    mkdirSync(dir, { recursive: true })
    const out: string[] = []
    for (const d of inputs) {
        const p = join(dir, nameOf(d))
        if (!existsSync(p)) writeFileSync(p, d)
        out.push(p)
    }
    return out
}
