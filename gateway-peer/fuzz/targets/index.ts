// The targets by name. Modules are imported only after block coverage has started (in the
// worker), so this table names them instead of importing them.

export interface TargetEntry {
    /** module under dist/fuzz/targets/ exporting `create(): Promise<Target>` */
    readonly module: string
    /** substrings of the script URLs whose blocks guide this target */
    readonly watch: readonly string[]
}

/** The gateway's compiled sources. */
const GATEWAY = ["/dist/src/"]

export const TARGETS: Readonly<Record<string, TargetEntry>> = {
    frame: { module: "frame.js", watch: GATEWAY },
    "hs-init": { module: "hs-init.js", watch: GATEWAY },
    "resume-init": { module: "resume-init.js", watch: GATEWAY },
    ticket: { module: "ticket.js", watch: GATEWAY },
    responder: { module: "responder.js", watch: GATEWAY },
    "app-codec": { module: "app-codec.js", watch: GATEWAY },
    config: { module: "config.js", watch: GATEWAY },
}

/** Not run by default: the engine's own test targets. */
export const TEST_TARGETS: Readonly<Record<string, TargetEntry>> = {
    planted: { module: "planted.js", watch: ["/dist/fuzz/targets/planted.js"] },
    hang: { module: "hang.js", watch: ["/dist/fuzz/targets/hang.js"] },
}
