// Secrets at rest: the devices' PSKs, the gateway's static private key and the ticket keys are
// stored sealed under a key-encryption key (KEK) that is never in the store. A dump or a backup of
// the database holds only ciphertext; each node reads the KEK from the environment variable
// TETHER_KEK (64 hex characters) or from a file of mode 0600 (`--kek-file`; for a one-node SQLite
// gateway `init` creates `<state>/kek`).
//
//     sealed = 0x01 || nonce (12) || AES-256-GCM(kek, nonce, secret, aad = "tether/store " || what)
//
// `what` names the field and its row ("psk " || device_id, "identity", "ticket-keys"), so a sealed
// value copied into another row or column does not open there.
import { createCipheriv, createDecipheriv, createHash } from "node:crypto"
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { randomBytes } from "./random.js"

/** The environment variable that holds the KEK in hex. */
export const KEK_ENV = "TETHER_KEK"
/** The KEK file's name in a state directory. */
export const KEK_FILE = "kek"
const SEALED_VERSION = 0x01
const NONCE_LEN = 12
const TAG_LEN = 16
const KEK_LEN = 32

/** A KEK problem (missing, unreadable, wrong), with a message fit for the operator; never the key. */
export class KekError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "KekError"
    }
}

/** A loaded key-encryption key. */
export class Kek {
    readonly #key: Buffer
    /** where it came from (an environment variable or a path), for errors */
    readonly source: string

    constructor(key: Buffer, source: string) {
        if (key.length !== KEK_LEN) throw new KekError(`kek: ${source} must hold 32 bytes (64 hex characters)`)
        this.#key = Buffer.from(key)
        this.source = source
    }

    /** A short fingerprint that names the KEK without revealing it (SHA-256 of it, 8 hex characters). */
    get fingerprint(): string {
        return createHash("sha256").update("tether/kek fingerprint").update(this.#key).digest("hex").slice(0, 8)
    }

    seal(secret: Buffer, what: string): Buffer {
        const nonce = randomBytes(NONCE_LEN)
        const c = createCipheriv("aes-256-gcm", this.#key, nonce, { authTagLength: TAG_LEN })
        c.setAAD(Buffer.from(`tether/store ${what}`))
        const body = Buffer.concat([c.update(secret), c.final()])
        return Buffer.concat([Buffer.from([SEALED_VERSION]), nonce, body, c.getAuthTag()])
    }

    /** @throws KekError when the value does not open (another KEK, another row, tampered) */
    open(sealed: Buffer, what: string): Buffer {
        if (sealed.length < 1 + NONCE_LEN + TAG_LEN || sealed[0] !== SEALED_VERSION)
            throw new KekError(`kek: the stored ${what.split(" ")[0]} is not sealed (an unencrypted store? run migrate-store)`)
        const d = createDecipheriv("aes-256-gcm", this.#key, sealed.subarray(1, 1 + NONCE_LEN), { authTagLength: TAG_LEN })
        d.setAAD(Buffer.from(`tether/store ${what}`))
        d.setAuthTag(sealed.subarray(sealed.length - TAG_LEN))
        try {
            return Buffer.concat([d.update(sealed.subarray(1 + NONCE_LEN, sealed.length - TAG_LEN)), d.final()])
        } catch {
            throw new KekError(`kek: the stored ${what.split(" ")[0]} does not open with the KEK from ${this.source} (another KEK?)`)
        }
    }
}

function parseHex(text: string, source: string): Buffer {
    const t = text.trim()
    if (!/^[0-9a-fA-F]{64}$/.test(t)) throw new KekError(`kek: ${source} must hold 32 bytes as 64 hex characters`)
    return Buffer.from(t, "hex")
}

/**
 * The KEK from `TETHER_KEK` in `env` if set, else from `file` (which must exist, be a regular file
 * and not be readable by group or others), else undefined.
 */
export function loadKek(opts: { file?: string; env?: NodeJS.ProcessEnv }): Kek | undefined {
    const env = opts.env ?? process.env
    const v = env[KEK_ENV]
    if (v !== undefined && v !== "") return new Kek(parseHex(v, `$${KEK_ENV}`), `$${KEK_ENV}`)
    if (opts.file === undefined || !existsSync(opts.file)) return undefined
    const st = statSync(opts.file)
    if (!st.isFile()) throw new KekError(`kek: ${opts.file} is not a file`)
    if ((st.mode & 0o077) !== 0)
        throw new KekError(`kek: ${opts.file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
    return new Kek(parseHex(readFileSync(opts.file, "utf8"), opts.file), opts.file)
}

/** Writes a new random KEK to `file` (mode 0600). @throws KekError if the file exists */
export function createKekFile(file: string): Kek {
    if (existsSync(file)) throw new KekError(`kek: ${file} exists; refusing to overwrite a key-encryption key`)
    const key = randomBytes(KEK_LEN)
    writeFileSync(file, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" })
    chmodSync(file, 0o600)
    return new Kek(key, file)
}
