// The formatter (prettier, pinned; .prettierrc and .prettierignore at the top) finds nothing to
// change: `npm run format` writes what this checks.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")
const PRETTIER = join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs")

test("every source file is formatted (npm run format)", () => {
    const r = spawnSync(process.execPath, [PRETTIER, "--check", "--log-level", "warn", "."], { cwd: ROOT, encoding: "utf8" })
    assert.equal(r.status, 0, `prettier --check found files to format (run npm run format):\n${r.stdout}${r.stderr}`)
})
