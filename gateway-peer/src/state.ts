// The gateway's state directory: its static identity and its ticket keys, each in a file of
// mode 0600 (the directory is 0700), and the registry database next to them. initState never
// overwrites; loadState never re-initialises: a missing or corrupt file is a clear error.
//
// Modes are checked at every start, not only at creation: the registry holds every device's
// PSK, and SQLite creates its files (the database, -wal, -shm) under the process umask, often
// 0644, in a directory that may have existed before init (0755). The directory is tightened
// to 0700 and every file in it to 0600, with one warning line per path fixed. The two JSON
// files are the exception: the gateway always writes them 0600, so one readable by others was
// changed from outside and its secret may be out; loadState refuses it (as ssh refuses a
// private key file readable by others) rather than quietly carry on.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { randomBytes, type RandomSource } from "./crypto/random.js"
import { DH_LEN, generateKeyPair, x25519Base, type KeyPair } from "./crypto/x25519.js"
// the mode helpers live with the registry, the layer below, which needs them for its own files
import { FILE_MODE, tighten, warnModeFix, type ModeFix, type ModeFixFn } from "./registry/sqlite.js"
import { TicketKeySet } from "./tickets.js"

/** File names inside the state directory. */
export const IDENTITY_FILE = "identity.json"
export const TICKET_KEYS_FILE = "ticket-keys.json"
export const REGISTRY_FILE = "registry.db"

/** A loaded state directory. */
export interface GatewayState {
    readonly dir: string
    /** the gateway's static key pair (secret) */
    readonly identity: KeyPair
    /** the ticket keys (secret); call saveTicketKeys() after rotate() */
    readonly ticketKeys: TicketKeySet
    /** the registry database's path */
    readonly registryPath: string
    /** Writes the ticket keys back (atomically: temporary file, then rename). */
    saveTicketKeys(): void
}

/** The state directory's mode; every file in it is FILE_MODE (0600). */
export const DIR_MODE = 0o700
export { FILE_MODE, tighten, warnModeFix, type ModeFix, type ModeFixFn }

/**
 * The state directory 0700 and every file in it 0600, except the identity and ticket key
 * files, which readJson refuses when they are readable by others (see the top of the file).
 */
export function secureStateDir(dir: string, onFix: ModeFixFn = warnModeFix): void {
    tighten(dir, DIR_MODE, onFix)
    for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isFile() || e.name === IDENTITY_FILE || e.name === TICKET_KEYS_FILE) continue
        tighten(join(dir, e.name), FILE_MODE, onFix)
    }
}

/** A state directory problem, with a message fit for the operator. */
export class StateError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "StateError"
    }
}

function writeSecret(path: string, data: unknown): void {
    const tmp = `${path}.tmp`
    writeFileSync(tmp, JSON.stringify(data, null, 4) + "\n", { mode: 0o600 })
    chmodSync(tmp, 0o600) // the mode of writeFileSync applies only when it creates the file
    renameSync(tmp, path)
}

/**
 * Creates the identity and the first ticket key in `dir` (created with mode 0700 if missing).
 * @throws StateError if an identity or ticket key file already exists there
 */
export function initState(dir: string, opts: { now?: number; rng?: RandomSource; onModeFix?: ModeFixFn } = {}): GatewayState {
    const now = opts.now ?? Math.floor(Date.now() / 1000)
    const rng = opts.rng ?? randomBytes
    for (const f of [IDENTITY_FILE, TICKET_KEYS_FILE])
        if (existsSync(join(dir, f))) throw new StateError(`state: ${join(dir, f)} exists; refusing to overwrite an identity`)
    // the mode applies only when mkdir creates the directory: one that existed is tightened
    mkdirSync(dir, { recursive: true, mode: DIR_MODE })
    tighten(dir, DIR_MODE, opts.onModeFix)
    const identity = generateKeyPair(rng)
    writeSecret(join(dir, IDENTITY_FILE), {
        version: 1,
        private_key: identity.privateKey.toString("hex"),
        public_key: identity.publicKey.toString("hex"),
        created_at: now,
    })
    writeSecret(join(dir, TICKET_KEYS_FILE), TicketKeySet.create(now, rng).toJSON())
    return loadState(dir, { onModeFix: opts.onModeFix })
}

function readJson(path: string, what: string): unknown {
    if (!existsSync(path)) throw new StateError(`state: ${what} missing: ${path} (run \`tether-gateway init\`)`)
    const mode = statSync(path).mode & 0o777
    if ((mode & 0o077) !== 0) throw new StateError(`state: ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`)
    try {
        return JSON.parse(readFileSync(path, "utf8"))
    } catch {
        throw new StateError(`state: ${what} is corrupt: ${path} is not valid JSON`)
    }
}

/**
 * Loads a state directory, tightening the modes of the directory and its files first.
 * @throws StateError if the directory or a file is missing or corrupt, or an identity or
 *   ticket key file is readable by others
 */
export function loadState(dir: string, opts: { onModeFix?: ModeFixFn } = {}): GatewayState {
    if (!existsSync(dir) || !statSync(dir).isDirectory())
        throw new StateError(`state: no state directory at ${dir} (run \`tether-gateway init\`)`)
    secureStateDir(dir, opts.onModeFix)
    const id = readJson(join(dir, IDENTITY_FILE), "the gateway identity") as Record<string, unknown> | null
    const hex = (x: unknown): Buffer | undefined =>
        typeof x === "string" && x.length === 2 * DH_LEN && /^[0-9a-f]+$/.test(x) ? Buffer.from(x, "hex") : undefined
    const privateKey = hex(id?.private_key)
    const publicKey = hex(id?.public_key)
    if (id?.version !== 1 || privateKey === undefined || publicKey === undefined || !x25519Base(privateKey).equals(publicKey))
        throw new StateError(`state: the gateway identity is corrupt: ${join(dir, IDENTITY_FILE)}`)
    const keysPath = join(dir, TICKET_KEYS_FILE)
    let ticketKeys: TicketKeySet
    let upgraded = false
    try {
        const json = readJson(keysPath, "the ticket keys") as { version?: unknown } | null
        upgraded = json?.version === 1
        // a version 1 key file gets its out-of-band key here, once, and is written back (6.1)
        ticketKeys = TicketKeySet.fromJSON(json, { now: Math.floor(Date.now() / 1000) })
    } catch (err) {
        if (err instanceof StateError) throw err
        throw new StateError(`state: the ticket keys are corrupt: ${keysPath} (${(err as Error).message})`)
    }
    if (upgraded) writeSecret(keysPath, ticketKeys.toJSON())
    return {
        dir,
        identity: { privateKey, publicKey },
        ticketKeys,
        registryPath: join(dir, REGISTRY_FILE),
        saveTicketKeys: () => writeSecret(keysPath, ticketKeys.toJSON()),
    }
}
