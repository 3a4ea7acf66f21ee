// `tether-gateway init`: the gateway identity (static X25519 key pair), the first ticket key and
// an empty registry in a state directory. Never overwrites an identity.
import { SqliteRegistry } from "../registry/sqlite.js"
import { initState } from "../state.js"
import { parse, STATE_OPTION, stateDir, type Io } from "./common.js"

export const INIT_USAGE = `usage: tether-gateway init [--state DIR]

Creates the gateway identity (static X25519 key pair), the first ticket key and an empty device
registry in DIR (default ./.tether). Refuses to overwrite an existing identity.

  --state DIR   the state directory (default ./.tether)`

/** Runs `init`. */
export async function init(argv: string[], io: Io): Promise<void> {
    const r = parse(argv, STATE_OPTION, INIT_USAGE, io)
    if (r === undefined) return
    const dir = stateDir(r.values.state, io)
    const state = initState(dir)
    const registry = new SqliteRegistry(state.registryPath, { create: true })
    await registry.close()
    io.out(`initialised ${dir}`)
    io.out(`gateway public key ${state.identity.publicKey.toString("hex")}`)
}
