// The engine is coverage-guided, not random: a planted bug behind four nested byte conditions
// (fuzz/targets/planted.ts) is found within a small budget with coverage feedback, and not with
// the same mutations and budget without it (the random fuzzer must hit four bytes at once).
// Also: a hang is caught and named, the mutator is deterministic, and a run with the same seed
// executes the same inputs.
import assert from "node:assert/strict"
import { test } from "node:test"
import { mutate, Rng } from "../../fuzz/mutate.js"
import { runTarget } from "../../fuzz/run.js"

const BUDGET = 100_000
const SEEDS = [Buffer.from("AAAA")]

test("coverage guidance finds the planted bug that the same budget of random mutations does not", async () => {
    const guided = await runTarget("planted", { seconds: 20, maxExecs: BUDGET, seed: 7, seeds: SEEDS })
    assert.equal(guided.findings.length, 1, "the guided run found nothing")
    const f = guided.findings[0]!
    assert.match(f.message, /planted: TETH/)
    assert.equal(f.input, Buffer.from("TETH").toString("hex"), "the finding is minimized to the four bytes")
    assert.ok(guided.findingAt! < BUDGET)
    assert.ok(guided.corpusSize > SEEDS.length, "the inputs that matched one more byte were kept")

    const random = await runTarget("planted", { seconds: 20, maxExecs: BUDGET, seed: 7, seeds: SEEDS, guided: false })
    assert.equal(random.findings.length, 0, "random mutations hit four bytes at once")
    assert.equal(random.execs, BUDGET)
    assert.equal(random.corpusSize, SEEDS.length)
})

test("an input that never returns is reported as a hang with that input, and the worker is stopped", async () => {
    const r = await runTarget("hang", { seconds: 20, seed: 1, seeds: [Buffer.from("H")], hangMs: 500 })
    assert.equal(r.findings.length, 1)
    assert.equal(r.findings[0]!.kind, "hang")
    assert.equal(r.findings[0]!.input, "48")
})

test("the mutator is deterministic given a seed and respects maxLen", () => {
    const ctx = { corpus: [Buffer.from("hello world")], dictionary: [Buffer.from([0x10])], maxLen: 32 }
    const run = (seed: number) => {
        const r = new Rng(seed)
        const out: string[] = []
        let d: Buffer = Buffer.from("seed input")
        for (let i = 0; i < 500; i++) {
            d = mutate(d, r, ctx)
            assert.ok(d.length <= ctx.maxLen)
            out.push(d.toString("hex"))
        }
        return out
    }
    assert.deepEqual(run(3), run(3))
    assert.notDeepEqual(run(3), run(4))
})

test("a run is reproducible: the same seed and budget give the same executions and corpus", async () => {
    const a = await runTarget("hs-init", { seconds: 30, maxExecs: 5000, seed: 11 })
    const b = await runTarget("hs-init", { seconds: 30, maxExecs: 5000, seed: 11 })
    assert.equal(a.execs, b.execs)
    assert.deepEqual(a.newInputs, b.newInputs)
})
