// A short run of every fuzz target (about 1.5 s each) and of the TCP fuzzer (4 s): no findings
// beyond the open ones listed in fuzz/known.ts, and mutations reach blocks the seed corpus does
// not, at least for the frame decoder and the Responder. `npm run fuzz` runs the long version.
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { runTarget } from "../../fuzz/run.js"
import { TARGETS } from "../../fuzz/targets/index.js"
import { tcpFuzz } from "../../fuzz/tcp.js"

const SECONDS = 1.5
const MUST_GROW = ["frame", "responder"]

describe("fuzz smoke", () => {
    for (const name of Object.keys(TARGETS))
        test(`${name}: no findings in ${SECONDS} s`, async () => {
            const r = await runTarget(name, { seconds: SECONDS, seed: 1 })
            assert.deepEqual(r.findings, [], r.findings.map(f => `${f.kind} ${f.message}\n${f.input}\n${f.stack}`).join("\n"))
            assert.ok(r.execs > 100, `only ${r.execs} executions`)
            assert.ok(r.seedBlocks > 0, "the seeds cover nothing: is coverage on?")
            if (MUST_GROW.includes(name)) assert.ok(r.blocks > r.seedBlocks, `${name}: no block beyond the seeds' ${r.seedBlocks}`)
        })

    test("tcp: the gateway survives mutated traffic and the canary keeps publishing and resuming", async () => {
        const r = await tcpFuzz({ seconds: 4, seed: 1 })
        assert.deepEqual(r.findings, [], r.findings.map(f => `${f.kind} ${f.message}\n${f.stack}`).join("\n"))
        assert.ok(r.connections > 100, `only ${r.connections} connections`)
        assert.ok(r.canaryPublishes > 5 && r.canaryResumed > 0, `canary: ${r.canaryPublishes} publishes, ${r.canaryResumed} resumed`)
        assert.ok(r.fdsAfter <= r.fdsBefore + 3, `descriptors ${r.fdsBefore} -> ${r.fdsAfter}`)
    })
})
