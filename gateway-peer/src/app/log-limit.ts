// Rate limits for the log lines a device can cause once per message (a refused route, a
// request past the in-flight cap, a dropped RESPONSE): a device at a hundred records a second
// must not become a hundred log lines a second. A token bucket: a burst of lines at once,
// so an operator sees the first few in full, then one per interval, each carrying how many
// lines were held back since the one before. Time is injected.

/** Options of LogLimiter. */
export interface LogLimitOptions {
    /** lines let through at once (default 10) */
    readonly burst?: number
    /** ms per further line (default 1000) */
    readonly intervalMs?: number
    readonly now?: () => number
}

/** One token bucket: one kind of line for one device. */
export class LogLimiter {
    readonly #burst: number
    readonly #intervalMs: number
    readonly #now: () => number
    #tokens: number
    #at: number
    #held = 0

    constructor(opts: LogLimitOptions = {}) {
        this.#burst = opts.burst ?? 10
        this.#intervalMs = opts.intervalMs ?? 1000
        this.#now = opts.now ?? Date.now
        this.#tokens = this.#burst
        this.#at = this.#now()
    }

    /**
     * One line wants out.
     * @returns undefined when it is held back (counted), otherwise how many lines were held
     *     back since the last one let through (0 in a quiet period)
     */
    take(): number | undefined {
        const now = this.#now()
        this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / this.#intervalMs)
        this.#at = now
        if (this.#tokens < 1) {
            this.#held++
            return undefined
        }
        this.#tokens--
        const held = this.#held
        this.#held = 0
        return held
    }
}
