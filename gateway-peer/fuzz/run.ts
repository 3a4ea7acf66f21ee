// Runs a target in its own worker (a fresh isolate: coverage of one target only) under a
// watchdog: no execution for `hangMs` is a hang; the worker is terminated and the input it was
// running is the finding.
import { Worker } from "node:worker_threads"
import type { FuzzResult } from "./engine.js"
import { TARGETS, TEST_TARGETS } from "./targets/index.js"
import type { WorkerJob } from "./worker.js"

/** A finding, with its input in hex. */
export interface Report {
    readonly kind: "crash" | "invariant" | "hang"
    readonly input: string
    readonly message: string
    readonly stack: string
}

export type TargetResult = Omit<FuzzResult, "newInputs" | "findings"> & { newInputs: string[]; findings: Report[] }

export interface RunOptions {
    readonly seconds: number
    readonly seed: number
    readonly maxExecs?: number
    readonly guided?: boolean
    readonly strict?: boolean
    readonly seeds?: readonly Buffer[]
    /** no execution finishing for this long is a hang (default 2000 ms) */
    readonly hangMs?: number
}

const HEARTBEAT_INPUT = 64 * 1024

export function runTarget(name: string, o: RunOptions): Promise<TargetResult> {
    const entry = TARGETS[name] ?? TEST_TARGETS[name]
    if (entry === undefined) throw new Error(`fuzz: no target ${name}`)
    const heartbeat = new SharedArrayBuffer(8 + HEARTBEAT_INPUT)
    const beat = new Int32Array(heartbeat, 0, 2)
    const job: WorkerJob = {
        name,
        entry,
        seconds: o.seconds,
        seed: o.seed,
        maxExecs: o.maxExecs,
        guided: o.guided,
        strict: o.strict,
        seeds: o.seeds?.map(b => b.toString("hex")),
        heartbeat,
    }
    const hangMs = o.hangMs ?? 2000
    const started = performance.now()
    return new Promise((resolve, reject) => {
        const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: job })
        let done = false
        let last = -1
        let lastChange = performance.now()
        const timer = setInterval(() => {
            const n = Atomics.load(beat, 0)
            const now = performance.now()
            if (n !== last) {
                last = n
                lastChange = now
                return
            }
            if (now - lastChange < hangMs || done) return
            done = true
            clearInterval(timer)
            const len = Atomics.load(beat, 1)
            const input = Buffer.from(new Uint8Array(heartbeat, 8, len)).toString("hex")
            void w.terminate()
            resolve({
                target: name,
                execs: n,
                seconds: (now - started) / 1000,
                seedBlocks: 0,
                blocks: 0,
                knownBlocks: 0,
                corpusSize: 0,
                newInputs: [],
                known: {},
                findings: [{ kind: "hang", input, message: `no execution finished in ${hangMs} ms`, stack: "" }],
                findingAt: n,
            })
        }, 100)
        w.on("message", (m: TargetResult) => {
            if (done) return
            done = true
            clearInterval(timer)
            resolve(m)
        })
        w.on("error", err => {
            if (done) return
            done = true
            clearInterval(timer)
            reject(err)
        })
        w.on("exit", code => {
            if (done) return
            done = true
            clearInterval(timer)
            reject(new Error(`fuzz: worker for ${name} exited with ${code}`))
        })
    })
}
