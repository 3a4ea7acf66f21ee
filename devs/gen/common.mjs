// What the vector generators share: where they write, and how a generator runs as a command.
import { mkdirSync, writeFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

/** The repository root. */
export const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")

/** The output folder: `--out DIR` in argv, else test/vectors/generated. */
export function outDir(argv = []) {
    const i = argv.indexOf("--out")
    if (i >= 0) {
        const dir = argv[i + 1]
        if (dir === undefined) throw new Error("--out needs a folder")
        return resolve(dir)
    }
    return join(ROOT, "test", "vectors", "generated")
}

/** Writes `text` to dir/name and says so on stdout; returns the path. */
export function writeVectorFile(dir, name, text, what) {
    mkdirSync(dir, { recursive: true })
    const path = join(dir, name)
    writeFileSync(path, text)
    console.log(`${relative(process.cwd(), path) || path}: ${what}`)
    return path
}

/** Runs `main(argv)` when the module is the process's entry (not when a test imports it). */
export function runAsMain(moduleUrl, main) {
    const entry = process.argv[1]
    if (entry === undefined || moduleUrl !== pathToFileURL(resolve(entry)).href) return
    Promise.resolve()
        .then(() => main(process.argv.slice(2)))
        .catch(err => {
            console.error(`${relative(ROOT, fileURLToPath(moduleUrl))}: ${err instanceof Error ? err.message : err}`)
            process.exitCode = 1
        })
}
