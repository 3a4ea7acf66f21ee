// `tether-gateway init`: the gateway identity (static X25519 key pair), the first ticket keys and
// an empty registry, in a state directory (one node, SQLite) or a PostgreSQL store (a cluster:
// the versioned schema, created by its migrations). Never overwrites an identity.
import { initStore } from "../store/open.js"
import { JSON_HELP, parse, STATE_OPTION, STORE_HELP, storeSpec, type Io } from "./common.js"

export const INIT_USAGE = `usage: tether-gateway init [--state DIR | --store URL --kek-file F] [--json]

Creates the gateway identity (static X25519 key pair), the first ticket keys and an empty device
registry. Refuses to overwrite an existing identity.

With --state DIR (default ./.tether): the one-node gateway's state directory, and its
key-encryption key in DIR/kek (or $TETHER_KEK, or --kek-file).
With --store URL: the cluster's PostgreSQL store (14 or newer): its schema, and the identity and
ticket keys sealed under the KEK from --kek-file (created 0600 if missing) or $TETHER_KEK. Copy
that KEK to every node; it is never written into the database.

${STORE_HELP}
${JSON_HELP}: { "kind", "where", "publicKey" }`

/** Runs `init`. */
export async function init(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, { ...STATE_OPTION, json: { type: "boolean" } }, INIT_USAGE, io)
    if (r === undefined) return
    const store = await initStore(storeSpec(r.values, io))
    try {
        const id = await store.loadIdentity()
        if (r.values.json === true) {
            io.out(JSON.stringify({ kind: store.kind, where: store.where, publicKey: id.publicKey.toString("hex") }))
            return
        }
        io.out(`initialised ${store.kind} store ${store.where}`)
        io.out(`gateway public key ${id.publicKey.toString("hex")}`)
    } finally {
        await store.close()
    }
}
