// `tether-gateway list`, `revoke NAME`, `remove NAME`, `expire-tickets NAME`, `rotate-ticket-key`,
// `retire-ticket-key`: the registry and the ticket keys.
import type { GatewayStore } from "../store/types.js"
import { nowSeconds, CliError, intOption, JSON_HELP, openCliStore, parse, printTable, STATE_OPTION, STORE_HELP, type Io } from "./common.js"

export const LIST_USAGE = `usage: tether-gateway list [--state DIR | --store URL] [--json]

Lists the paired devices: name, id, status, ticket generations, pairing time. Never a secret.

${STORE_HELP}
  --json        one JSON array instead of a table (each device: name, id, status, public_key,
                the four generations, paired_at)`

export const REVOKE_USAGE = `usage: tether-gateway revoke NAME [--state DIR | --store URL] [--json]

Revokes a device: its next handshake or resumption is refused, and a running \`serve\` closes its
live sessions with CLOSE(REVOKED) within about a second. --json prints
{ "device": NAME, "outcome": "revoked" }.

${STORE_HELP}
${JSON_HELP}`

export const REMOVE_USAGE = `usage: tether-gateway remove NAME [--state DIR | --store URL] [--json]

Deletes a device: its keys, its tickets and the messages queued to it. A running \`serve\` closes
its live session within about a second. Its name can then be paired again (tether-gateway pair
NAME makes new keys). To keep the record of a lost device, revoke it instead. --json prints
{ "device": NAME, "outcome": "removed" }.

${STORE_HELP}
${JSON_HELP}`

export const EXPIRE_USAGE = `usage: tether-gateway expire-tickets NAME [--state DIR | --store URL] [--json]

Invalidates every ticket issued to the device so far, without revoking it: its next connection
is refused resumption (TICKET_REJECTED) and runs the full handshake, which brings fresh forward
secrecy and a new ticket chain. Use it when a resumption secret may have leaked on its own (a
copied ticket store, a gateway log), or to see a full handshake in the demo. Takes effect on the
device's next handshake; live sessions stay up.

It is not the answer when a device's flash may have leaked: the flash also holds the device's
static key (TT_SK) and pre-shared key (TT_PSK), with which anyone can run the full handshake as
that device. Then revoke the device (tether-gateway revoke NAME) and pair it again under a new
name (tether-gateway pair NAME2), which makes new keys.

--json prints { "device": NAME, "outcome": "tickets-expired" }.

${STORE_HELP}
${JSON_HELP}`

export const ROTATE_USAGE = `usage: tether-gateway rotate-ticket-key [--oob] [--state DIR | --store URL] [--json]

Makes a new current ticket key. There are two kinds (PROTOCOL.md 6.1): session keys sign the
tickets of connected devices (7 days), the out-of-band key signs the tickets that \`pair\` mints
(365 days). The old key keeps opening the tickets it signed until they expire (7 or 365 days),
then is deleted. A running \`serve\` picks the new key up within about a second.

If a key may have leaked, rotate it and then retire the old one at once:
  tether-gateway rotate-ticket-key && tether-gateway retire-ticket-key --now

  --oob         rotate the out-of-band key instead of the session key
${STORE_HELP}
${JSON_HELP}: { "kind", "id", "held", "pruned" }`

export const RETIRE_USAGE = `usage: tether-gateway retire-ticket-key --now [--id N] [--state DIR | --store URL] [--json]

Deletes ticket keys at once instead of when their tickets expire: every ticket they signed is
refused from then on (TICKET_REJECTED), and the devices holding one run the full handshake on
their next connection. A current key cannot be retired: rotate it first. A running \`serve\`
stops opening the retired keys' tickets within about a second.

  --now         required: the retirement is immediate
  --id N        retire key N only (default: every key that is not current)
${STORE_HELP}
${JSON_HELP}: { "retired": [{ "kind", "id" }] }`

/** Runs `list`. */
export async function list(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, json: { type: "boolean" } }, LIST_USAGE, io)
    if (r === undefined) return
    const store = await openCliStore(r.values, io)
    try {
        const rows = (await store.registry.listDevices()).map(d => ({
            name: d.name,
            id: d.id,
            status: d.revoked ? "revoked" : "active",
            public_key: d.publicKey.toString("hex"),
            issued_generation: d.issued_generation,
            accepted_generation: d.accepted_generation,
            full_generation: d.full_generation,
            min_generation: d.min_generation,
            paired_at: new Date(d.created_at * 1000).toISOString(),
        }))
        if (r.values.json === true) {
            io.out(JSON.stringify(rows, null, 2))
            return
        }
        if (rows.length === 0) {
            io.out("no devices paired")
            return
        }
        const table = [
            ["NAME", "ID", "STATUS", "ISSUED", "ACCEPTED", "PAIRED"],
            ...rows.map(x => [x.name, x.id, x.status, String(x.issued_generation), String(x.accepted_generation), x.paired_at]),
        ]
        printTable(io, table)
    } finally {
        await store.close()
    }
}

/**
 * The shape of `revoke` and `expire-tickets`: one device NAME, one registry operation that
 * answers false for an unknown name, one line of output.
 */
async function onDevice(
    argv: string[],
    io: Io,
    usage: string,
    op: (store: GatewayStore, name: string) => Promise<boolean>,
    done: (name: string) => string,
    outcome: string
): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, json: { type: "boolean" } }, usage, io, { min: 1, max: 1 })
    if (r === undefined) return
    const name = r.positionals[0] as string
    const store = await openCliStore(r.values, io)
    try {
        if (!(await op(store, name))) throw new CliError(`no device named ${name}`)
        io.out(r.values.json === true ? JSON.stringify({ device: name, outcome }) : done(name))
    } finally {
        await store.close()
    }
}

/** Runs `revoke`. */
export function revoke(argv: string[], io: Io): Promise<void> {
    return onDevice(
        argv,
        io,
        REVOKE_USAGE,
        // every node closes the device's session: both stores announce it in revoke's transaction
        (store, name) => store.registry.revoke(name),
        name => `revoked ${name}`,
        "revoked"
    )
}

/** Runs `remove`. */
export function remove(argv: string[], io: Io): Promise<void> {
    return onDevice(
        argv,
        io,
        REMOVE_USAGE,
        async (store, name) => {
            // the registry tells every node (its session closes), then the queue goes
            const id = await store.registry.remove(name)
            if (id === undefined) return false
            await store.outbox.clear(id)
            return true
        },
        name => `removed ${name}`,
        "removed"
    )
}

/** Runs `expire-tickets`. */
export function expireTickets(argv: string[], io: Io): Promise<void> {
    return onDevice(
        argv,
        io,
        EXPIRE_USAGE,
        (store, name) => store.registry.expireTickets(name),
        name => `tickets of ${name} expired: its next connection runs the full handshake`,
        "tickets-expired"
    )
}

/** Runs `rotate-ticket-key`. */
export async function rotateTicketKey(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, oob: { type: "boolean" }, json: { type: "boolean" } }, ROTATE_USAGE, io)
    if (r === undefined) return
    const store = await openCliStore(r.values, io)
    const now = nowSeconds()
    let out
    try {
        // one change at a time across the cluster: key ids stay unique
        out = await store.updateTicketKeys(keys => {
            const pruned = keys.prune(now)
            let fresh
            try {
                fresh = keys.rotate(now, { kind: r.values.oob === true ? "oob" : "session" })
            } catch (err) {
                throw new CliError((err as Error).message)
            }
            return { fresh, pruned, held: keys.keys.length }
        })
    } finally {
        await store.close()
    }
    if (r.values.json === true) {
        io.out(JSON.stringify({ kind: out.fresh.kind, id: out.fresh.id, held: out.held, pruned: out.pruned }))
        return
    }
    io.out(`${out.fresh.kind} ticket key ${out.fresh.id} is current; ${out.held} keys held, ${out.pruned} expired keys deleted`)
}

/** Runs `retire-ticket-key`. */
export async function retireTicketKey(argv: string[], io: Io): Promise<void> {
    const r = parse(
        argv,
        { ...STATE_OPTION, now: { type: "boolean" }, id: { type: "string" }, json: { type: "boolean" } },
        RETIRE_USAGE,
        io
    )
    if (r === undefined) return
    if (r.values.now !== true) throw new CliError("--now is required: retiring a key refuses its tickets at once", 2)
    // a malformed --id is a usage error (exit 2), parsed before the key set's own refusals
    const id = r.values.id === undefined ? undefined : intOption(r.values.id, "id", 0, 0, 255)
    const store = await openCliStore(r.values, io)
    let retired
    try {
        retired = await store.updateTicketKeys(keys => {
            try {
                return id === undefined ? keys.retireAll() : [keys.retire(id)]
            } catch (err) {
                throw new CliError((err as Error).message)
            }
        })
    } finally {
        await store.close()
    }
    if (r.values.json === true) {
        io.out(JSON.stringify({ retired: retired.map(k => ({ kind: k.kind, id: k.id })) }))
        return
    }
    const ids = retired.map(k => `${k.kind} ${k.id}`).join(", ")
    io.out(retired.length === 0 ? "no key to retire: every key held is current" : `retired ticket keys ${ids}; their tickets are refused`)
}
