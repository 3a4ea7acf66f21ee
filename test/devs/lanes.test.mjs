// test/run-all.mjs runs files marked `// @lane node` beside the simulator lane. A marked file
// must not reach DeviceScript (one simulator, one .devicescript/ and one env.generated.ts at a
// time): none names the helpers that start it, and the helpers refuse to start in the node lane.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")
const MARK = /^\/\/\s*@lane\s+node\b/m
const STARTS_DEVICESCRIPT = /\b(runDevice|runProgram|buildIn)\(|devs\/(demo|cluster|sim)\.mjs|"--tcp"/

test("no file marked // @lane node starts the simulator or the DeviceScript compiler", () => {
    const marked = []
    for (const [dir, ext] of [
        ["test/e2e", ".test.ts"],
        ["test/devs", ".test.mjs"],
    ])
        for (const name of readdirSync(join(ROOT, dir)).filter(n => n.endsWith(ext))) {
            const text = readFileSync(join(ROOT, dir, name), "utf8")
            if (!MARK.test(text)) continue
            marked.push(name)
            if (name !== "lanes.test.mjs") assert.doesNotMatch(text, STARTS_DEVICESCRIPT, `${dir}/${name}`)
        }
    // the simulator files stay in the simulator lane
    for (const name of ["link.test.ts", "demo.test.ts", "cluster-demo.test.ts", "sim.test.ts", "build-board.test.mjs"])
        assert.ok(!marked.includes(name), name)
    assert.ok(marked.includes("hostile.test.ts") && marked.includes("generators.test.mjs"), marked.join(" "))
})

test("in the node lane the demos' DeviceScript helpers refuse to build or run", () => {
    const script = `import { buildIn, runProgram } from ${JSON.stringify(join(ROOT, "devs", "lib", "demo-common.mjs"))}
        for (const f of [() => buildIn(".", "src/main.ts", true), () => runProgram(".", () => {})])
            try { f(); console.log("started") } catch (e) { console.log("refused: " + e.message) }`
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: ROOT,
        env: { ...process.env, TETHER_TEST_LANE: "node" },
        encoding: "utf8",
    })
    assert.equal(r.status, 0, r.stderr)
    const lines = r.stdout.trim().split("\n")
    assert.equal(lines.length, 2, r.stdout)
    for (const l of lines) assert.match(l, /^refused: .*@lane node/)
})
