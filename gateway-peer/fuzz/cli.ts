// npm run fuzz -- --seconds N [--target NAME] [--seed S] [--save] [--strict]
//
// Runs each target (or the one named) for its share of N seconds, the TCP fuzzer included, and
// prints per target: executions, executions per second, blocks covered (after the seeds and at
// the end), corpus size, findings. --save writes coverage-raising inputs to the corpus folder and
// minimized findings to its crashes/. Exits 1 on a finding; an open finding listed in
// known.ts is counted and printed, and fails the run only with --strict.
import { saveInputs } from "./corpus.js"
import { KNOWN } from "./known.js"
import { runTarget, type Report, type TargetResult } from "./run.js"
import { TARGETS, TEST_TARGETS } from "./targets/index.js"
import { tcpFuzz, type TcpResult } from "./tcp.js"

function arg(name: string): string | undefined {
    const i = process.argv.indexOf(`--${name}`)
    return i >= 0 ? process.argv[i + 1] : undefined
}

const seconds = Number(arg("seconds") ?? 60)
const seed = Number(arg("seed") ?? 1)
const save = process.argv.includes("--save")
const strict = process.argv.includes("--strict")
const only = arg("target")
const all = [...Object.keys(TARGETS), "tcp"]
if (!Number.isFinite(seconds) || seconds <= 0 || !Number.isInteger(seed)) {
    console.error("usage: npm run fuzz -- --seconds N [--target NAME] [--seed S] [--save] [--strict]")
    process.exit(2)
}
if (only !== undefined && !all.includes(only) && TEST_TARGETS[only] === undefined) {
    console.error(`fuzz: no target ${only}; targets: ${all.join(", ")}`)
    process.exit(2)
}
const names = only !== undefined ? [only] : all
const share = seconds / names.length

const printFinding = (target: string, f: Report) => {
    console.log(`  FINDING ${target} ${f.kind}: ${f.message}`)
    if (f.input !== "") console.log(`    input (${f.input.length / 2} bytes): ${f.input}`)
    if (f.stack !== "")
        console.log(
            f.stack
                .split("\n")
                .map(l => `    ${l}`)
                .join("\n")
        )
}

let findings = 0
console.log(`fuzz: ${names.length} target(s), ${share.toFixed(1)} s each, seed ${seed}`)
for (const name of names) {
    if (name === "tcp") {
        const r: TcpResult = await tcpFuzz({ seconds: share, seed })
        console.log(
            `${"tcp".padEnd(12)} ${String(r.connections).padStart(9)} connections ${(r.connections / r.seconds).toFixed(0).padStart(7)}/s  ${r.bytesSent} bytes  answered ${r.answered}  closed by gateway ${r.closedByGateway}  canary: ${r.canaryPublishes} acked, ${r.canaryReconnects} connects (${r.canaryResumed} resumed)  fds ${r.fdsBefore} -> ${r.fdsAfter}  findings ${r.findings.length}  (${r.seconds.toFixed(1)} s)`
        )
        for (const f of r.findings) printFinding(name, f)
        findings += r.findings.length
        continue
    }
    const r: TargetResult = await runTarget(name, { seconds: share, seed, strict })
    console.log(
        `${name.padEnd(12)} ${String(r.execs).padStart(9)} execs ${(r.execs / r.seconds).toFixed(0).padStart(7)}/s  blocks ${r.seedBlocks} -> ${r.blocks} (of ${r.knownBlocks} seen)  corpus ${r.corpusSize} (+${r.newInputs.length})  findings ${r.findings.length}  (${r.seconds.toFixed(1)} s)`
    )
    for (const f of r.findings) printFinding(name, f)
    for (const [id, hits] of Object.entries(r.known)) {
        const k = KNOWN.find(x => x.id === id)
        console.log(`  known open finding ${id}: hit ${hits} times (${k?.file}): ${k?.summary}`)
    }
    findings += r.findings.length
    if (save) {
        saveInputs(
            name,
            r.newInputs.map(h => Buffer.from(h, "hex"))
        )
        const crashes = saveInputs(
            name,
            r.findings.filter(f => f.input !== "").map(f => Buffer.from(f.input, "hex")),
            "crashes"
        )
        for (const p of crashes) console.log(`  saved ${p}`)
    }
}
console.log(findings === 0 ? "fuzz: no findings" : `fuzz: ${findings} finding(s)`)
process.exit(findings === 0 ? 0 : 1)
