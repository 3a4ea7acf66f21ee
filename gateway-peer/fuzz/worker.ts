// One target in a worker thread: block coverage starts first, then the target's module is
// imported, then the loop runs. Before each execution the input goes into the shared heartbeat
// buffer, so the main thread can name the input of a hang after it has terminated the worker.
import { parentPort, workerData } from "node:worker_threads"
import { Coverage } from "./coverage.js"
import { loadCorpus } from "./corpus.js"
import { fuzz, type Target } from "./engine.js"
import { knownFor } from "./known.js"
import type { TargetEntry } from "./targets/index.js"

export interface WorkerJob {
    readonly name: string
    readonly entry: TargetEntry
    readonly seconds: number
    readonly seed: number
    readonly maxExecs?: number
    readonly guided?: boolean
    /** known findings (known.ts) fail the run too */
    readonly strict?: boolean
    /** extra seeds (hex) used instead of the corpus folder when given */
    readonly seeds?: readonly string[]
    /** Int32 [executions, input length] then the input bytes */
    readonly heartbeat: SharedArrayBuffer
}

const job = workerData as WorkerJob
const beat = new Int32Array(job.heartbeat, 0, 2)
const bytes = new Uint8Array(job.heartbeat, 8)

const cov = new Coverage(job.entry.watch)
const mod = (await import(`./targets/${job.entry.module}`)) as { create(): Promise<Target> }
const known = knownFor(job.name)
const created = await mod.create()
const target: Target =
    job.strict || known.length === 0
        ? created
        : {
              ...created,
              known: err =>
                  known.find(k => k.matches(`${(err as Error)?.name}: ${(err as Error)?.message}`, String((err as Error)?.stack)))?.id,
          }
const seeds = job.seeds !== undefined ? job.seeds.map(h => Buffer.from(h, "hex")) : loadCorpus(job.name)
const r = await fuzz(target, cov, {
    seed: job.seed,
    seconds: job.seconds,
    maxExecs: job.maxExecs,
    guided: job.guided,
    seeds,
    beforeRun: input => {
        const n = Math.min(input.length, bytes.length)
        bytes.set(input.subarray(0, n))
        Atomics.store(beat, 1, n)
        Atomics.add(beat, 0, 1)
    },
})
cov.stop()
parentPort?.postMessage({
    ...r,
    newInputs: r.newInputs.map(b => b.toString("hex")),
    findings: r.findings.map(f => ({ ...f, input: f.input.toString("hex") })),
})
