// Block coverage from V8 itself, through node:inspector: Profiler.startPreciseCoverage with
// callCount and detailed (block) counts. Each takePreciseCoverage returns the counts since the
// previous one and resets them, so a take after an input (or a batch) says which blocks it ran.
//
// V8 leaves a block out of the report when its count equals that of the range around it, and
// merges neighbours with equal counts. So the count of a block is the count of the innermost
// reported range that contains it, and a block is known from the first report that shows it
// with a count of its own (often 0: not taken). A coverage point is such a known range (a
// function's own range included) of a script we watch; it is covered once its count was
// nonzero in some take.
import { Session } from "node:inspector"

interface Range {
    readonly startOffset: number
    readonly endOffset: number
    readonly count: number
}
interface FunctionCoverage {
    readonly functionName: string
    readonly ranges: readonly Range[]
}
interface ScriptCoverage {
    readonly url: string
    readonly functions: readonly FunctionCoverage[]
}

/** The known ranges of one function, and which of them were ever covered. */
interface FunctionPoints {
    /** "start:end" of each known range */
    readonly known: Set<string>
    readonly covered: Set<string>
}

/** The coverage points reached so far, and the inspector session that reports them. */
export class Coverage {
    readonly #session = new Session()
    readonly #watch: readonly string[]
    readonly #functions = new Map<string, FunctionPoints>()
    #covered = 0

    /**
     * Starts block coverage. Only code compiled after this gets block counters: start it before
     * the target's modules are imported.
     * @param watch substrings of the script URLs whose blocks count (e.g. "/dist/src/")
     */
    constructor(watch: readonly string[]) {
        this.#watch = watch
        this.#session.connect()
        this.#post("Profiler.enable")
        this.#post("Profiler.startPreciseCoverage", { callCount: true, detailed: true })
    }

    /** An inspector call on this thread: dispatched synchronously, so its answer is here on return. */
    #post(method: string, params?: object): unknown {
        let answer: unknown
        let error: Error | null = null
        this.#session.post(method, params, (err: Error | null, res: unknown) => {
            error = err
            answer = res
        })
        if (error !== null) throw error
        return answer
    }

    /** Coverage points covered so far. */
    get covered(): number {
        return this.#covered
    }

    /** Coverage points known (covered or seen not taken). */
    get known(): number {
        let n = 0
        for (const f of this.#functions.values()) n += f.known.size
        return n
    }

    /** Reads and resets the counts: the points covered since the last take that were not covered before. */
    take(commit: boolean): number {
        const { result } = this.#post("Profiler.takePreciseCoverage") as { result: ScriptCoverage[] }
        let fresh = 0
        for (const script of result) {
            if (!this.#watch.some(w => script.url.includes(w))) continue
            for (const fn of script.functions) {
                const top = fn.ranges[0]
                if (top === undefined) continue
                const key = `${script.url}#${top.startOffset}`
                let pts = this.#functions.get(key)
                if (pts === undefined) {
                    pts = { known: new Set(), covered: new Set() }
                    this.#functions.set(key, pts)
                }
                for (const r of fn.ranges) pts.known.add(`${r.startOffset}:${r.endOffset}`)
                if (top.count === 0) continue
                for (const k of pts.known) {
                    if (pts.covered.has(k)) continue
                    if (countOf(k, fn.ranges) > 0) {
                        fresh++
                        if (commit) pts.covered.add(k)
                    }
                }
            }
        }
        if (commit) this.#covered += fresh
        return fresh
    }

    stop(): void {
        this.#post("Profiler.stopPreciseCoverage")
        this.#post("Profiler.disable")
        this.#session.disconnect()
    }
}

/** The count of the known range "start:end": that of the innermost reported range holding it. */
function countOf(key: string, ranges: readonly Range[]): number {
    const [s, e] = key.split(":").map(Number) as [number, number]
    let best: Range | undefined
    for (const r of ranges) {
        if (
            r.startOffset <= s &&
            e <= r.endOffset &&
            (best === undefined || r.endOffset - r.startOffset <= best.endOffset - best.startOffset)
        )
            best = r
    }
    return best?.count ?? 0
}
