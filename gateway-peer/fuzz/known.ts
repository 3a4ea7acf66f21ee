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

export const KNOWN: readonly KnownFinding[] = [
    {
        id: "codec-bom-topic",
        target: "app-codec",
        file: "crashes/298ccb77724a89d7 (a topic of the BOM alone), crashes/7512ee323a395534 (BOM t aliases t)",
        summary:
            "decodeApp's UTF-8 decoder strips a leading BOM (TextDecoder's default ignoreBOM: false): a topic or route of EF BB BF decodes to the empty name the decoder otherwise refuses, and EF BB BF 74 to the same name as 74",
        matches: m =>
            m.startsWith("InvariantError: a decoded message does not encode: app: topic must be") ||
            m.startsWith("InvariantError: a decoded message does not encode: app: route must be") ||
            // "re-encoding differs: <content> -> <again>", for a content holding a BOM
            (m.startsWith("InvariantError: re-encoding differs") && (m.split(" -> ")[0] ?? "").includes("efbbbf")),
    },
    {
        id: "config-string-of-object",
        target: "config",
        file: "crashes/269f7ba2dd5534c2 (edit mode), crashes/8ed4c9558165439d (as JSON text)",
        summary:
            "parseConfig calls String() on url and method: an object whose toString is not a function (valid JSON) throws TypeError, not ConfigError",
        matches: (m, s) => m.startsWith("TypeError: Cannot convert object to primitive value") && s.includes("parseConfig"),
    },
    {
        id: "config-timeout-overflow",
        target: "config",
        file: "crashes/1c6cc10a09a5ab54 (edit mode), crashes/1644eeb0f1b5c4b8 (as JSON text)",
        summary:
            "parseConfig accepts any positive integer timeoutMs; callUpstream's setTimeout turns a delay above 2^31 - 1 ms into 1 ms, so such a route times out at once",
        matches: m => m.startsWith("InvariantError: route ") && m.includes("setTimeout runs a delay above"),
    },
]

export const knownFor = (target: string): readonly KnownFinding[] => KNOWN.filter(k => k.target === target)
