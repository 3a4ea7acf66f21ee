// What every command of the operator CLI shares: option parsing with --help, the state
// directory, the registry, and errors fit for the operator (one line, exit 1, never a secret).
import { join, resolve } from "node:path"
import { KEK_FILE, loadKek } from "../crypto/kek.js"
import { isIP } from "node:net"
import { Command, CommanderError, Option } from "commander"
import { DEFAULT_POLICY, type ServerPolicy } from "../policy.js"
import { SqliteRegistry } from "../registry/sqlite.js"
import { loadState, type GatewayState, type ModeFixFn } from "../state.js"
import { openStore, STORE_ENV, type StoreSpec } from "../store/open.js"
import type { GatewayStore } from "../store/types.js"

/** The default state directory, under the working directory (git-ignored). */
export const DEFAULT_STATE_DIR = ".tether"

/** An error for the operator: printed as one line, exit status 1 (2 for usage errors). */
export class CliError extends Error {
    constructor(
        message: string,
        readonly exitCode = 1
    ) {
        super(message)
        this.name = "CliError"
    }
}

/** Where a command writes: injectable so tests and the bench can run commands in-process. */
export interface Io {
    out(line: string): void
    err(line: string): void
    /** the working directory relative paths resolve against */
    readonly cwd: string
}

/** The process's stdout/stderr and working directory. */
export const processIo: Io = {
    out: line => process.stdout.write(line + "\n"),
    err: line => process.stderr.write(line + "\n"),
    cwd: process.cwd(),
}

/** A command's options, as the commands declare them (the shape node:util parseArgs took). */
export type Options = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>

/** The help line of `--json`, for the commands that take it. */
export const JSON_HELP = `  --json          one JSON document on stdout instead of text (errors stay one line on stderr)`

/** The options every command that touches the state takes: --state, --store, --kek-file. */
export const STATE_OPTION: Options = { state: { type: "string" }, store: { type: "string" }, "kek-file": { type: "string" } }

/** The help lines of STATE_OPTION. */
export const STORE_HELP = `  --state DIR     the state directory of a one-node gateway (default ./.tether)
  --store URL     a PostgreSQL store shared by a cluster, postgres://user:pass@host:port/db
                  (default $${STORE_ENV}); replaces --state
  --kek-file F    the key-encryption key that seals the secrets in the store (default
                  $TETHER_KEK, else for --state DIR: DIR/kek)`

/** The store a command's --state/--store/--kek-file name. */
export function storeSpec(values: Record<string, unknown>, io: Io, onModeFix?: ModeFixFn): StoreSpec {
    const kek = values["kek-file"]
    const url = values.store
    return {
        stateDir: stateDir(values.state, io),
        url: typeof url === "string" && url.length > 0 ? url : undefined,
        // an explicit --state wins over $TETHER_STORE, as --kek-file wins over $TETHER_KEK
        explicitState: typeof values.state === "string" && values.state.length > 0,
        kekFile: typeof kek === "string" && kek.length > 0 ? resolve(io.cwd, kek) : undefined,
        onModeFix,
    }
}

/** Opens the store a command names (see storeSpec). */
export function openCliStore(values: Record<string, unknown>, io: Io, onModeFix?: ModeFixFn): Promise<GatewayStore> {
    return openStore(storeSpec(values, io, onModeFix))
}

/**
 * Parses a command's arguments with commander; `--help` (or `-h`) prints `usage` and returns
 * undefined. The values are keyed by the options' names as declared (`kek-file`, not kekFile);
 * a `multiple` option collects an array.
 * @throws CliError (exit 2) on an unknown option, a missing value or a wrong number of positionals
 */
export function parse(
    argv: string[],
    options: Options,
    usage: string,
    io: Io,
    positionals: { min: number; max: number } = { min: 0, max: 0 }
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } | undefined {
    const name = /^usage: tether-gateway (\S+)/.exec(usage)?.[1] ?? "tether-gateway"
    const cmd = new Command(name)
        .exitOverride()
        .configureOutput({ writeOut: s => io.out(s.trimEnd()), writeErr: () => {}, outputError: () => {} })
        .helpOption("-h, --help")
        .argument("[args...]")
        .allowExcessArguments(true)
    // the hand-written usage is the help: it says more than a generated one would
    cmd.helpInformation = () => usage + "\n"
    const attr = new Map<string, string>()
    for (const [key, o] of Object.entries(options)) {
        const flags = `${o.short !== undefined ? `-${o.short}, ` : ""}--${key}${o.type === "string" ? " <value>" : ""}`
        const opt = new Option(flags)
        if (o.multiple === true) opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v])
        cmd.addOption(opt)
        attr.set(key, opt.attributeName())
    }
    try {
        cmd.parse(argv, { from: "user" })
    } catch (err) {
        if (err instanceof CommanderError) {
            if (err.code === "commander.helpDisplayed" || err.code === "commander.help") return undefined
            throw new CliError(`${err.message.replace(/^error: /, "")} (see tether-gateway ${name} --help)`, 2)
        }
        throw err
    }
    const opts = cmd.opts()
    const values: Record<string, string | boolean | string[] | undefined> = {}
    for (const [key, a] of attr) values[key] = opts[a] as string | boolean | string[] | undefined
    const args = cmd.args
    if (args.length < positionals.min || args.length > positionals.max)
        throw new CliError(
            `${args.length < positionals.min ? `missing argument ${argNames(usage)[args.length] ?? ""}`.trimEnd() : `unexpected argument ${args[positionals.max]}`} (see tether-gateway ${name} --help)`,
            2
        )
    return { values, positionals: args }
}

/** The positionals a usage line names: `usage: tether-gateway send NAME TOPIC [TEXT ...` gives NAME, TOPIC. */
function argNames(usage: string): string[] {
    const words = (usage.split("\n")[0] ?? "").split(" ").slice(3)
    const end = words.findIndex(w => !/^[A-Z]+$/.test(w))
    return end < 0 ? words : words.slice(0, end)
}

/** A host name of labels of letters, digits and hyphens (RFC 1123), dots between. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/**
 * Why `host` is not a host name or IP address literal (undefined: it is). `dialable`: a device
 * must be able to connect to it, so an unspecified address (0.0.0.0, ::) is refused too.
 */
export function badHost(host: string, dialable: boolean): string | undefined {
    if (host.length === 0) return "is empty"
    const ip = isIP(host)
    if (ip === 4) return dialable && host === "0.0.0.0" ? "is the unspecified address: give one a device can reach" : undefined
    if (ip === 6) {
        const normal = new URL(`http://[${host}]/`).hostname
        return dialable && normal === "[::]" ? "is the unspecified address: give one a device can reach" : undefined
    }
    if (host.includes("://") || host.includes("/")) return "must be a host name or address, not a URL"
    if (/^[0-9.]+$/.test(host)) return "is not an IPv4 address"
    if (!HOSTNAME.test(host)) return "must be a host name (letters, digits, hyphens, dots) or an IP address"
    return undefined
}

/** The state directory from --state, resolved against the working directory. */
export function stateDir(value: unknown, io: Io): string {
    return resolve(io.cwd, typeof value === "string" && value.length > 0 ? value : DEFAULT_STATE_DIR)
}

/**
 * Loads the state directory and opens its registry (both must exist and be sound), tightening
 * their modes; each fix goes to `onModeFix` (default: a warning line on stderr).
 */
export function openState(dir: string, onModeFix?: ModeFixFn): { state: GatewayState; registry: SqliteRegistry } {
    const state = loadState(dir, { onModeFix })
    const kek = loadKek({ file: join(dir, KEK_FILE) })
    return { state, registry: new SqliteRegistry(state.registryPath, { onModeFix, kek }) }
}

/** Prints rows as columns two spaces apart, each padded to its widest cell (the first row is the header). */
export function printTable(io: Io, table: readonly (readonly string[])[]): void {
    const widths = table[0]?.map((_, i) => Math.max(...table.map(row => (row[i] ?? "").length))) ?? []
    for (const row of table)
        io.out(
            row
                .map((c, i) => c.padEnd(widths[i] ?? 0))
                .join("  ")
                .trimEnd()
        )
}

/** A positive integer option, or `dflt` when absent. @throws CliError (exit 2) */
export function intOption(value: unknown, name: string, dflt: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined) return dflt
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`--${name} must be an integer in ${min}..${max}`, 2)
    return n
}

/** Seconds since the Unix epoch. */
export function nowSeconds(): number {
    return Math.floor(Date.now() / 1000)
}

/** A policy field's command-line option: `handshakeTimeoutMs` is `--handshake-timeout-ms`. */
export function policyOptionName(field: string): string {
    return field.replace(/[A-Z]/g, c => "-" + c.toLowerCase())
}

/**
 * The policy from a config file's `policy` object and the command line's options, the command
 * line winning; fields given nowhere keep DEFAULT_POLICY's.
 * @throws CliError (exit 2) for an unknown field or a value that is not a non-negative integer
 */
export function policyFrom(config: unknown, values: Record<string, unknown>, where: string): Partial<ServerPolicy> {
    const out: Record<string, number> = {}
    if (config !== undefined) {
        if (config === null || typeof config !== "object" || Array.isArray(config))
            throw new CliError(`${where}: policy must be an object`, 2)
        for (const [k, v] of Object.entries(config)) {
            if (!(k in DEFAULT_POLICY)) throw new CliError(`${where}: unknown policy field ${k}`, 2)
            if (!Number.isSafeInteger(v) || (v as number) < 0) throw new CliError(`${where}: policy.${k} must be a non-negative integer`, 2)
            out[k] = v as number
        }
    }
    for (const k of Object.keys(DEFAULT_POLICY)) {
        const v = values[policyOptionName(k)]
        if (v !== undefined) out[k] = intOption(v, policyOptionName(k), 0, 0)
    }
    return out as Partial<ServerPolicy>
}
