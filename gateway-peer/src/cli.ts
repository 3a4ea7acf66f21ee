// tether-gateway: the operator's CLI, on commander. One module per command under cli/ (each
// parses its own options, with commander too: cli/common.ts parse); this file dispatches, answers
// --version and `help CMD`, and turns errors into one line on stderr and exit status 1 (2 for
// usage errors: an unknown command or option, a missing argument).
// No message printed here carries a secret: pair prints the name, the id and the path only.
import { readFileSync } from "node:fs"
import { Command, CommanderError } from "commander"
import { CliError, processIo, type Io } from "./cli/common.js"
import { expireTickets, list, remove, retireTicketKey, revoke, rotateTicketKey } from "./cli/devices.js"
import { init } from "./cli/init.js"
import { migrateStore, status } from "./cli/cluster.js"
import { pair } from "./cli/pair.js"
import { send } from "./cli/send.js"
import { serve } from "./cli/serve.js"
import { reportFailed, workerRole } from "./cli/workers.js"
import { vectors } from "./cli/vectors.js"
import { ConfigError } from "./app/upstream.js"
import { RegistryOpenError } from "./registry/sqlite.js"
import { StateError } from "./state.js"
import { KekError } from "./crypto/kek.js"
import { StoreUnavailable } from "./store/types.js"

export const USAGE = `usage: tether-gateway <command> [options]

The Tether gateway: identity, paired devices, and the server they connect to.

commands:
  init                 create the gateway identity in a state directory
  pair NAME            pair a device and write its settings file (.env.local)
  list                 list the paired devices
  revoke NAME          revoke a device (also closes its live sessions under serve)
  remove NAME          delete a device (its name can be paired again)
  expire-tickets NAME  invalidate a device's tickets: its next connection is a full handshake
  rotate-ticket-key    make a new current ticket key (--oob: the out-of-band one)
  retire-ticket-key    delete old ticket keys now (--now): their tickets are refused
  send NAME TOPIC      queue a message to a device (sent by the node it is connected to)
  serve                run the gateway (one node of a cluster with --store and --node)
  status               list the live sessions across the cluster
  migrate-store        copy a one-node state directory into a PostgreSQL store
  vectors              run the Noise cacophony vectors

Every command takes --help (or: tether-gateway help COMMAND); --version prints the version;
the commands that print something take --json (one JSON document on stdout). The state directory defaults to ./.tether (--state DIR); a cluster's
PostgreSQL store is named by --store postgres://... or $TETHER_STORE.`

const COMMANDS: Record<string, (argv: string[], io: Io) => Promise<number | void>> = {
    init,
    pair,
    list,
    revoke,
    remove,
    "expire-tickets": expireTickets,
    "rotate-ticket-key": rotateTicketKey,
    "retire-ticket-key": retireTicketKey,
    send,
    serve,
    status,
    "migrate-store": migrateStore,
    vectors,
}

/** The package's version (package.json, two levels above dist/src/cli.js). */
export function version(): string {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
    return pkg.version
}

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
    if (argv.length === 0) {
        io.out(USAGE)
        return 2
    }
    let chosen: { command: string; rest: string[] } | undefined
    const program = new Command("tether-gateway")
        .exitOverride()
        .configureOutput({ writeOut: s => io.out(s.trimEnd()), writeErr: () => {}, outputError: () => {} })
        .version(version(), "-V, --version", "print the version")
        .helpOption("-h, --help")
        .addHelpCommand(false)
        .enablePositionalOptions()
    program.helpInformation = () => USAGE + "\n"
    // each command takes its arguments as they are, and parses them itself (cli/common.ts parse)
    for (const name of Object.keys(COMMANDS))
        program
            .command(name)
            .helpOption(false)
            .allowUnknownOption()
            .allowExcessArguments(true)
            .passThroughOptions()
            .argument("[args...]")
            .action((_a: unknown, _o: unknown, cmd: Command) => {
                chosen = { command: name, rest: cmd.args }
            })
    program
        .command("help")
        .argument("[command]")
        .action((c: string | undefined) => {
            chosen = c === undefined ? { command: "help", rest: [] } : { command: c, rest: ["--help"] }
        })
    try {
        await program.parseAsync(argv, { from: "user" })
    } catch (err) {
        if (!(err instanceof CommanderError)) throw err
        if (err.code === "commander.version" || err.code === "commander.helpDisplayed" || err.code === "commander.help") return 0
        const hint = err.code === "commander.unknownCommand" ? "tether-gateway --help lists the commands" : "see tether-gateway --help"
        io.err(`tether-gateway: ${err.message.replace(/^error: /, "")} (${hint})`)
        return 2
    }
    if (chosen === undefined) return 0
    const { command, rest } = chosen
    if (command === "help") {
        io.out(USAGE)
        return 0
    }
    const run = COMMANDS[command]
    if (run === undefined) {
        io.err(`tether-gateway: unknown command '${command}' (tether-gateway --help lists the commands)`)
        return 2
    }
    // a serve worker (cli/workers.ts) hands its failure to the primary, which prints it once
    const fail = async (line: string, code: number): Promise<number> => {
        if (command === "serve" && workerRole() !== undefined) {
            await reportFailed(line.replace(/^tether-gateway serve: /, ""), code)
            process.disconnect?.()
        } else io.err(line)
        return code
    }
    try {
        return (await run(rest, io)) ?? 0
    } catch (err) {
        if (err instanceof CliError) return fail(`tether-gateway ${command}: ${err.message}`, err.exitCode)
        if (
            err instanceof StateError ||
            err instanceof RegistryOpenError ||
            err instanceof ConfigError ||
            err instanceof KekError ||
            err instanceof StoreUnavailable
        )
            return fail(`tether-gateway ${command}: ${err.message}`, 1)
        // unexpected: the message only (a stack may name paths, never secrets, but is noise)
        return fail(`tether-gateway ${command}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, 1)
    }
}
