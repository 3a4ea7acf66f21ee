// tether-gateway: the operator's CLI. One module per command under cli/; this file
// dispatches and turns errors into one line on stderr and exit status 1 (2 for usage errors).
// No message printed here carries a secret: pair prints the name, the id and the path only.
import { CliError, processIo, type Io } from "./cli/common.js"
import { expireTickets, list, remove, retireTicketKey, revoke, rotateTicketKey } from "./cli/devices.js"
import { init } from "./cli/init.js"
import { migrateStore, status } from "./cli/cluster.js"
import { pair } from "./cli/pair.js"
import { send } from "./cli/send.js"
import { serve } from "./cli/serve.js"
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

Every command takes --help. The state directory defaults to ./.tether (--state DIR); a cluster's
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

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
    const [command, ...rest] = argv
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
        io.out(USAGE)
        return command === undefined ? 2 : 0
    }
    const run = COMMANDS[command]
    if (run === undefined) {
        io.err(`tether-gateway: unknown command ${command}\n\n${USAGE}`)
        return 2
    }
    try {
        return (await run(rest, io)) ?? 0
    } catch (err) {
        if (err instanceof CliError) {
            io.err(`tether-gateway ${command}: ${err.message}`)
            return err.exitCode
        }
        if (
            err instanceof StateError ||
            err instanceof RegistryOpenError ||
            err instanceof ConfigError ||
            err instanceof KekError ||
            err instanceof StoreUnavailable
        ) {
            io.err(`tether-gateway ${command}: ${err.message}`)
            return 1
        }
        // unexpected: the message only (a stack may name paths, never secrets, but is noise)
        io.err(`tether-gateway ${command}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
        return 1
    }
}
