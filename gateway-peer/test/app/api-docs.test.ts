// The library's entry point is documented: every name `tether-gateway` exports (src/index.ts)
// has a JSDoc comment at its declaration, read with the TypeScript compiler as an editor would
// show it. A new export without one fails here.
import { test } from "node:test"
import assert from "node:assert/strict"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

/** gateway-peer/ (this file runs as dist/test/app/api-docs.test.js) */
const PKG = join(fileURLToPath(import.meta.url), "..", "..", "..", "..")

test("every export of the package's entry point has JSDoc", () => {
    const index = join(PKG, "src", "index.ts")
    const program = ts.createProgram([index], {
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
    })
    const checker = program.getTypeChecker()
    const source = program.getSourceFile(index)
    assert.ok(source, "src/index.ts")
    const module = checker.getSymbolAtLocation(source)
    assert.ok(module, "the index is a module")
    const exports = checker.getExportsOfModule(module)
    assert.ok(exports.length > 30, `${exports.length} exports`)
    const undocumented = exports
        .filter(s => {
            const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s
            return ts.displayPartsToString(target.getDocumentationComment(checker)).trim() === ""
        })
        .map(s => s.getName())
    assert.deepEqual(undocumented, [], `exports without JSDoc: ${undocumented.join(", ")}`)
    for (const name of ["createGateway", "TetherGateway", "startMqttBridge", "SinkUnavailable", "webhookSink", "jsonLinesSink"])
        assert.ok(
            exports.some(s => s.getName() === name),
            name
        )
})
