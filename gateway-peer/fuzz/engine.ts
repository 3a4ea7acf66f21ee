// The coverage-guided loop. A target is a function of one input that returns normally (or
// with the decoder's documented error caught by the target) and throws only on a finding. The
// loop picks a corpus entry, mutates it (mutate.ts), runs it; every `batch` inputs it takes V8's
// block coverage (coverage.ts). When the batch reached a new block, halves of it run again until
// the inputs that did are found, and those join the corpus. The batch size is the target's, not
// measured, so that a seed gives the same sequence of inputs on every run (the time budget only
// decides where it stops).
import { mutate, Rng } from "./mutate.js"
import type { Coverage } from "./coverage.js"

/** A fuzz target. */
export interface Target {
    readonly name: string
    /** longest input */
    readonly maxLen: number
    /** tokens for the dictionary mutation */
    readonly dictionary?: readonly Buffer[]
    /** inputs between coverage takes (default 256): fewer for slow targets */
    readonly batch?: number
    /** runs one input; throws only on a finding */
    run(data: Buffer): void | Promise<void>
    /** the id of an open finding (known.ts) this error is, if it is one */
    known?(err: unknown): string | undefined
}

/** A checked property of the target failed (not an exception of the code under test). */
export class InvariantError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "InvariantError"
    }
}

/** Fails the input with an InvariantError unless `cond`. */
export function check(cond: boolean, message: string): asserts cond {
    if (!cond) throw new InvariantError(message)
}

export interface Finding {
    readonly kind: "crash" | "invariant" | "hang"
    /** the minimized input */
    readonly input: Buffer
    readonly message: string
    readonly stack: string
}

export interface FuzzOptions {
    readonly seed: number
    /** stop after this many seconds... */
    readonly seconds: number
    /** ...or this many executions, whichever comes first */
    readonly maxExecs?: number
    /** the committed corpus: run first, kept */
    readonly seeds: readonly Buffer[]
    /** false: a random fuzzer (the same mutations of the seeds, nothing kept); for comparison */
    readonly guided?: boolean
    /** called before each execution with its input (the hang watchdog's view) */
    readonly beforeRun?: (input: Buffer) => void
}

export interface FuzzResult {
    readonly target: string
    readonly execs: number
    readonly seconds: number
    /** blocks covered after the seeds alone, and at the end */
    readonly seedBlocks: number
    readonly blocks: number
    /** blocks seen (covered or not) */
    readonly knownBlocks: number
    readonly corpusSize: number
    /** inputs that raised coverage (what --save writes) */
    readonly newInputs: Buffer[]
    readonly findings: Finding[]
    /** hits of open findings (known.ts), by id */
    readonly known: Record<string, number>
    /** executions at which the finding was hit, if any */
    readonly findingAt?: number
}

const DEFAULT_BATCH = 256

/** Runs the target on `data`; the error it throws, if any. */
async function attempt(t: Target, data: Buffer): Promise<unknown> {
    try {
        const p = t.run(data)
        if (p !== undefined) await p
        return undefined
    } catch (err) {
        return err ?? new Error("thrown: " + String(err))
    }
}

const signature = (err: unknown): string => {
    const e = err as Error
    const frame = (e?.stack ?? "").split("\n").find(l => l.trim().startsWith("at ")) ?? ""
    return `${e?.name}|${frame.trim()}`
}

/** Cuts the input while it still fails the same way (same error name and top frame). */
export async function minimize(
    t: Target,
    input: Buffer,
    err: unknown,
    beforeRun?: (input: Buffer) => void,
    budgetMs = 5000
): Promise<{ input: Buffer; err: unknown }> {
    const want = signature(err)
    const end = performance.now() + budgetMs
    let best = input
    let bestErr = err
    // the shortest prefix that still fails, then chunks of halving sizes cut out anywhere
    for (let cut = 0; cut < best.length && performance.now() < end; cut++) {
        const cand = best.subarray(0, cut)
        beforeRun?.(cand)
        const e = await attempt(t, cand)
        if (e !== undefined && signature(e) === want) {
            best = Buffer.from(cand)
            bestErr = e
            break
        }
    }
    for (let chunk = best.length >> 1; chunk >= 1 && performance.now() < end; chunk >>= 1) {
        for (let i = 0; i + chunk <= best.length && performance.now() < end;) {
            const cand = Buffer.concat([best.subarray(0, i), best.subarray(i + chunk)])
            beforeRun?.(cand)
            const e = await attempt(t, cand)
            if (e !== undefined && signature(e) === want) {
                best = cand
                bestErr = e
            } else i += chunk
        }
    }
    return { input: best, err: bestErr }
}

function finding(input: Buffer, err: unknown): Finding {
    const e = err as Error
    return {
        kind: e instanceof InvariantError ? "invariant" : "crash",
        input,
        message: `${e?.name ?? "thrown"}: ${e?.message ?? String(err)}`,
        stack: e?.stack ?? String(err),
    }
}

/** Fuzzes one target until the time or execution budget is spent or it fails. */
export async function fuzz(t: Target, cov: Coverage, o: FuzzOptions): Promise<FuzzResult> {
    const rng = new Rng(o.seed)
    const guided = o.guided ?? true
    const corpus: Buffer[] = []
    const newInputs: Buffer[] = []
    const ctx = { corpus, dictionary: t.dictionary ?? [], maxLen: t.maxLen }
    const t0 = performance.now()
    const deadline = t0 + o.seconds * 1000
    const maxExecs = o.maxExecs ?? Infinity
    let execs = 0
    let seedBlocks = 0
    const known: Record<string, number> = {}
    /** the error unless it is a known finding (then counted) */
    const fresh = (err: unknown): unknown => {
        const id = err === undefined ? undefined : t.known?.(err)
        if (id === undefined) return err
        known[id] = (known[id] ?? 0) + 1
        return undefined
    }
    const result = (findings: Finding[], findingAt?: number): FuzzResult => {
        cov.take(true)
        return {
            target: t.name,
            execs,
            seconds: (performance.now() - t0) / 1000,
            seedBlocks,
            blocks: cov.covered,
            knownBlocks: cov.known,
            corpusSize: corpus.length,
            newInputs,
            findings,
            known,
            findingAt,
        }
    }
    const fail = async (input: Buffer, err: unknown): Promise<FuzzResult> => {
        const m = await minimize(t, input, err, o.beforeRun)
        return result([finding(m.input, m.err)], execs)
    }

    /**
     * Finds the inputs of a batch that reached new blocks by halving: run a half, take; recurse
     * into a half that covers something new; a single input that does joins the corpus. About
     * 2n runs and 2 log n takes for one new input in n.
     */
    const locate = async (inputs: Buffer[]): Promise<{ input: Buffer; err: unknown } | undefined> => {
        if (inputs.length === 1) {
            const input = inputs[0] as Buffer
            o.beforeRun?.(input)
            const err = fresh(await attempt(t, input))
            if (err !== undefined) return { input, err }
            if (cov.take(true) > 0) {
                corpus.push(input)
                newInputs.push(input)
            }
            return undefined
        }
        const mid = inputs.length >> 1
        for (const half of [inputs.slice(0, mid), inputs.slice(mid)]) {
            for (const input of half) {
                o.beforeRun?.(input)
                const err = fresh(await attempt(t, input))
                if (err !== undefined) return { input, err }
            }
            if (cov.take(false) > 0) {
                const bad = await locate(half)
                if (bad !== undefined) return bad
            }
        }
        return undefined
    }

    // the seeds, one take each
    cov.take(true)
    for (const s of o.seeds.length > 0 ? o.seeds : [Buffer.alloc(0)]) {
        const input = s.subarray(0, t.maxLen)
        o.beforeRun?.(input)
        execs++
        const err = fresh(await attempt(t, input))
        if (err !== undefined) return fail(input, err)
        cov.take(true)
        corpus.push(input)
    }
    seedBlocks = cov.covered

    const batchSize = t.batch ?? DEFAULT_BATCH
    const batch: Buffer[] = []
    while (performance.now() < deadline && execs < maxExecs) {
        batch.length = 0
        for (let i = 0; i < batchSize && execs < maxExecs; i++) {
            // newer entries more often, P(i) ~ 2i + 1 (libFuzzer's weighting by index)
            const parent = corpus[Math.max(rng.below(corpus.length), rng.below(corpus.length))] as Buffer
            const input = mutate(parent, rng, ctx)
            o.beforeRun?.(input)
            execs++
            const raw = await attempt(t, input)
            const err = fresh(raw)
            if (err !== undefined) return fail(input, err)
            if (raw === undefined) batch.push(input) // a known finding's input does not join the corpus
        }
        if (!guided) continue
        if (cov.take(false) > 0) {
            const bad = await locate(batch)
            if (bad !== undefined) return fail(bad.input, bad.err)
        }
    }
    return result([])
}
