// serve's configuration file: JSON checked against the committed schema
// (gateway-peer/schema/config.schema.json, JSON Schema 2020-12) with every error reported at once,
// each with its JSON path; then app/upstream.ts parseConfig for what a schema cannot say (a URL
// that parses, a route name's length in bytes, the MQTT templates). A route naming a device that
// is not paired is a warning, not an error (the device may be paired later).
import { readFileSync } from "node:fs"
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js"
import { ConfigError, parseConfig, type UpstreamConfig } from "../app/upstream.js"
import { CliError } from "./common.js"

/** The schema file, shipped in the package (package.json "files"). */
export const CONFIG_SCHEMA_URL = new URL("../../../schema/config.schema.json", import.meta.url)

let validator: ReturnType<Ajv2020["compile"]> | undefined

function validate(): ReturnType<Ajv2020["compile"]> {
    if (validator === undefined) {
        const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, "utf8")) as object
        validator = new Ajv2020({ allErrors: true, strict: true, verbose: true }).compile(schema)
    }
    return validator
}

/** One schema error as the operator reads it: `/routes/weather/timeoutMs: must be integer`. */
function describe(e: ErrorObject): string {
    const at = e.instancePath === "" ? "/" : e.instancePath
    const p = e.params as Record<string, unknown>
    if (e.keyword === "additionalProperties") return `${at}: unknown key ${String(p.additionalProperty)}`
    const description = (e.parentSchema as { description?: unknown } | undefined)?.description
    if (e.keyword === "pattern" && typeof description === "string") return `${at}: must be ${description}`
    if (e.keyword === "enum") return `${at}: must be one of ${(p.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(", ")}`
    return `${at}: ${e.message ?? e.keyword}`
}

/** Every schema error of a parsed config file (empty: it conforms). */
export function schemaErrors(json: unknown): string[] {
    const v = validate()
    if (v(json)) return []
    // anyOf/propertyNames add a summary error after their details: the details say it
    return [...new Set((v.errors ?? []).filter(e => e.keyword !== "anyOf").map(describe))]
}

/** A config file, checked: its routes and MQTT section, and its `policy` object (read by the CLI). */
export interface ServeConfig {
    readonly upstream: UpstreamConfig
    readonly policy: unknown
}

/**
 * Reads and checks a config file.
 * @throws CliError (exit 1) listing every error, one per line, each with its path
 */
export function readConfig(path: string): ServeConfig {
    let json: unknown
    try {
        json = JSON.parse(readFileSync(path, "utf8"))
    } catch (err) {
        throw new CliError(`cannot read the config ${path}: ${(err as Error).message}`)
    }
    const errors = schemaErrors(json)
    if (errors.length > 0)
        throw new CliError(`${path}: ${errors.length} error${errors.length === 1 ? "" : "s"}:\n${errors.map(e => `  ${e}`).join("\n")}`)
    const { policy, $schema: _s, ...rest } = json as Record<string, unknown>
    try {
        return { upstream: parseConfig(rest), policy }
    } catch (err) {
        if (err instanceof ConfigError) throw new CliError(`${path}: ${err.message}`)
        throw err
    }
}

/** The warnings of a config against the paired device names: a route naming a device not paired. */
export function configWarnings(config: UpstreamConfig, paired: ReadonlySet<string>): string[] {
    const out: string[] = []
    for (const [name, r] of config.routes)
        for (const d of r.devices) if (d !== "*" && !paired.has(d)) out.push(`route ${name} names device ${d}, which is not paired`)
    return out
}
