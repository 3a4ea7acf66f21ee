// The shipped gateway (src/) stands on its own: no file of it imports the Node twin of the
// device (peer/), the Noise reference (reference/), the tests or anything else outside src/, and
// inside src/ imports only point down the layers
//
//     index → cli → app → server → connection → store → session, state, tickets, registry, policy → noise, wire → crypto
//
// Read from the TypeScript sources, so the check also holds for code that is never run by a test.
// The one lazy load of the reference (`vectors --cacophony`, by a computed URL) is not an import.
import assert from "node:assert/strict"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, normalize, sep } from "node:path"
import { describe, test } from "node:test"
import { fileURLToPath } from "node:url"

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

/** The layer of a file under src/, by its first path segment; higher may import lower. */
const LAYERS: Record<string, number> = {
    crypto: 0,
    noise: 1,
    wire: 1,
    registry: 2,
    tickets: 2,
    policy: 2,
    state: 3,
    store: 3.5,
    session: 3,
    connection: 4,
    server: 5,
    // serve's log sink (pino): takes the LogLine objects of connection/server
    log: 5.5,
    app: 6,
    cli: 7,
    index: 8,
}

export interface SourceFile {
    /** path relative to the package, "/"-separated, e.g. "src/session/handshake.ts" */
    readonly path: string
    readonly text: string
}

/** Every module specifier of a source text: static imports and exports, import(), require(). */
export function specifiers(text: string): string[] {
    const out: string[] = []
    const patterns = [
        /\b(?:import|export)\s[^"'`;]*?\bfrom\s*["']([^"']+)["']/g,
        /\bimport\s*["']([^"']+)["']/g,
        /\b(?:import|require)\s*\(\s*["']([^"']+)["']\s*\)/g,
    ]
    for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1] as string)
    return out
}

function layerOf(path: string): string {
    const rest = path.slice("src/".length)
    const first = rest.split("/")[0] as string
    return first.replace(/\.(ts|js)$/, "")
}

/** What is wrong with the imports of these files: one line per offending import. */
export function boundaryViolations(files: readonly SourceFile[]): string[] {
    const problems: string[] = []
    for (const f of files) {
        if (!f.path.startsWith("src/")) continue
        for (const spec of specifiers(f.text)) {
            if (!spec.startsWith(".")) {
                if (spec.startsWith("tether-gateway")) problems.push(`${f.path}: imports its own package (${spec})`)
                continue // node: builtins and dependencies
            }
            const target = normalize(join(dirname(f.path), spec))
                .split(sep)
                .join("/")
            if (!target.startsWith("src/")) {
                problems.push(`${f.path}: imports ${spec}, outside the shipped gateway`)
                continue
            }
            const from = LAYERS[layerOf(f.path)]
            const to = LAYERS[layerOf(target)]
            if (from === undefined) problems.push(`${f.path}: not in a known layer (add it to LAYERS)`)
            else if (to === undefined) problems.push(`${f.path}: imports ${spec}, not in a known layer`)
            else if (layerOf(f.path) !== layerOf(target) && to >= from)
                problems.push(`${f.path}: imports ${spec}, which is not below it (${layerOf(f.path)} → ${layerOf(target)})`)
        }
    }
    return problems
}

function sources(dir: string): SourceFile[] {
    const out: SourceFile[] = []
    for (const name of readdirSync(join(PACKAGE, dir)).sort()) {
        const path = `${dir}/${name}`
        if (statSync(join(PACKAGE, path)).isDirectory()) out.push(...sources(path))
        else if (name.endsWith(".ts")) out.push({ path, text: readFileSync(join(PACKAGE, path), "utf8") })
    }
    return out
}

describe("the shipped gateway's boundary", () => {
    const files = sources("src")

    test("src/ is read (the check is not vacuous)", () => {
        assert.ok(files.length >= 30, `only ${files.length} files under src/`)
        assert.ok(files.some(f => f.path === "src/server.ts"))
    })

    test("no file under src/ reaches peer/, reference/ or anything outside src/, and layers point down", () => {
        assert.deepEqual(boundaryViolations(files), [])
    })

    test("an import of the peer, the reference, or up the layers is caught", () => {
        const bad: SourceFile[] = [
            { path: "src/server.ts", text: `import { TetherClient } from "../peer/initiator.js"` },
            { path: "src/cli/vectors.ts", text: `const r = await import("../../reference/cacophony.js")` },
            { path: "src/session/handshake.ts", text: `export { x } from "../server.js"` },
            { path: "src/crypto/hash.ts", text: `import "../noise/cipher.js"` },
            { path: "src/app/serve.ts", text: `import { startGateway } from "tether-gateway"` },
        ]
        const v = boundaryViolations(bad)
        assert.equal(v.length, 5, v.join("\n"))
        assert.match(v[0] as string, /peer\/initiator\.js, outside the shipped gateway/)
        assert.match(v[1] as string, /reference\/cacophony\.js, outside the shipped gateway/)
        assert.match(v[2] as string, /not below it \(session → server\)/)
        assert.match(v[3] as string, /not below it \(crypto → noise\)/)
        assert.match(v[4] as string, /its own package/)
    })

    test("imports down the layers and within a folder are allowed", () => {
        const ok: SourceFile[] = [
            {
                path: "src/server.ts",
                text: `import { Responder } from "./session/responder.js"\nimport type { Dh } from "./session/handshake.js"`,
            },
            {
                path: "src/session/handshake.ts",
                text: `import { Session } from "./session.js"\nimport { SymmetricState } from "../noise/symmetric-state.js"`,
            },
            { path: "src/cli/serve.ts", text: `import { readFileSync } from "node:fs"\nimport Database from "better-sqlite3"` },
        ]
        assert.deepEqual(boundaryViolations(ok), [])
    })

    test("the package ships only the gateway and exports only its documented entry points", () => {
        const pkg = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as {
            files: string[]
            exports: Record<string, unknown>
            bin: Record<string, string>
        }
        // schema/: the config file's JSON Schema, for serve and for editors ("$schema")
        assert.deepEqual(pkg.files, ["bin", "dist/src", "schema"])
        assert.deepEqual(Object.keys(pkg.exports).sort(), [".", "./peer", "./reference", "./wire"])
        assert.equal(pkg.bin["tether-gateway"], "bin/tether-gateway.js")
    })
})
