// Findings that are open in the gateway's sources, each with its minimized input under
// corpus/<target>/crashes/. A run counts a known finding and goes on fuzzing instead of stopping
// at it again, and prints how often it hit it; --strict makes it fail the run as a new one
// would. Remove an entry when its fix lands (the run then finds nothing, or a new finding).

export interface KnownFinding {
    readonly id: string
    readonly target: string
    /** the crashes/ file, relative to corpus/<target>/ */
    readonly file: string
    readonly summary: string
    /** the error's "Name: message" and its stack */
    matches(message: string, stack: string): boolean
}

// none open. Fixed, their inputs now seed the corpus as regressions: the BOM stripped from topics
// and routes (app-codec), String() of a url or method that is not a string and a timeoutMs
// above what a timer can wait (config).
export const KNOWN: readonly KnownFinding[] = []

export const knownFor = (target: string): readonly KnownFinding[] => KNOWN.filter(k => k.target === target)
