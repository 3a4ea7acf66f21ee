// `tether-gateway pair NAME`: a new device id, device key pair and PSK; the device registered;
// the out-of-band ticket (generation 1, PROTOCOL.md 6.7) and its resumption secret minted; all
// of it written to the device's settings file. Prints the name, the id and the path only.
import { chmodSync, existsSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { randomBytes } from "../crypto/random.js"
import { generateKeyPair, type KeyPair } from "../crypto/x25519.js"
import { deviceIdHex, newDevice, PseudonymTaken, type Registry } from "../registry/registry.js"
import type { ResumeTicket } from "../session/resume.js"
import { mintTicket, type TicketKeySet } from "../tickets.js"
import { DEVICE_ID_LEN, PSK_LEN } from "../wire.js"
import { CliError, intOption, nowSeconds, openCliStore, parse, STATE_OPTION, type Io } from "./common.js"

export const PAIR_USAGE = `usage: tether-gateway pair NAME [options]

Pairs a new device: creates its id, key pair and pre-shared key, registers it, mints its
out-of-band ticket and writes everything the device needs to its settings file (DeviceScript
.env format, mode 0600). Prints the device name, id and the file's path; never a secret.

  --state DIR                  the state directory (default ./.tether)
  --store URL                  a cluster's PostgreSQL store instead (default $TETHER_STORE)
  --kek-file F                 the store's key-encryption key (default $TETHER_KEK, DIR/kek)
  --out FILE                   the settings file (default ./.env.local)
  --force                      overwrite FILE if it exists
  --host H                     the gateway address the device connects to (default 127.0.0.1)
  --port P                     the gateway port (default 4433)

The out-of-band ticket is signed by the gateway's out-of-band ticket key and lives
oobTicketLifetime (serve --oob-ticket-lifetime, default 365 days) from now.`

/** Device names: what an operator types, safe in logs and file names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** The device's settings: keys of at most 13 characters (DeviceScript), the device reads exactly these. */
export interface DeviceSettings {
    readonly TT_ID: string
    readonly TT_SK: string
    readonly TT_GW_PK: string
    readonly TT_PSK: string
    readonly TT_GW_HOST: string
    readonly TT_GW_PORT: number
    readonly TT_TICKET: string
    readonly TT_RSECRET: string
}

/**
 * The settings for a paired device (PROTOCOL.md 6.8): the one place they are made, for `pair`,
 * the tests and the vectors. Secrets (TT_SK, TT_PSK, TT_RSECRET): never log.
 */
export function deviceSettings(p: Paired, gatewayPublic: Buffer, host: string, port: number): DeviceSettings {
    return {
        TT_ID: deviceIdHex(p.deviceId),
        TT_SK: p.s.privateKey.toString("hex"),
        TT_GW_PK: gatewayPublic.toString("hex"),
        TT_PSK: p.psk.toString("hex"),
        TT_GW_HOST: host,
        TT_GW_PORT: port,
        TT_TICKET: p.ticket.ticket.toString("hex"),
        TT_RSECRET: p.ticket.secret.toString("hex"),
    }
}

/**
 * The `.env` text. String values are written JSON-quoted: DeviceScript's build JSON-parses each
 * value, so an unquoted all-digit hex id would become a number (and "1e9..." even Infinity).
 */
export function envText(s: DeviceSettings, name: string): string {
    const lines = [
        `# Tether pairing of device "${name}" (tether-gateway pair). SECRET: never commit or share this file.`,
        ...Object.entries(s).map(([k, v]) => `${k}=${typeof v === "number" ? String(v) : JSON.stringify(v)}`),
    ]
    return lines.join("\n") + "\n"
}

/** What pairing makes for one device (secrets: never log). */
export interface Paired {
    readonly deviceId: Buffer
    readonly s: KeyPair
    readonly psk: Buffer
    /** the out-of-band ticket and its resumption secret */
    readonly ticket: ResumeTicket
}

/**
 * Pairs a device in a registry: a fresh unused id, key pair and PSK, the record, and the
 * out-of-band ticket (PROTOCOL.md 6.7). Used by `pair`, and by the tests and the bench.
 * @throws Error if the name is taken
 */
export async function pairDevice(opts: { registry: Registry; ticketKeys: TicketKeySet; name: string; now: number }): Promise<Paired> {
    const { registry, name, now } = opts
    if ((await registry.getDeviceByName(name)) !== undefined) throw new CliError(`a device named ${name} is already paired`)
    let deviceId: Buffer
    do deviceId = randomBytes(DEVICE_ID_LEN)
    while ((await registry.getDevice(deviceIdHex(deviceId))) !== undefined)
    const id = deviceIdHex(deviceId)
    const s = generateKeyPair()
    // "pairing sets issued_generation = full_generation = 1" and the fallback pseudonym (6.7);
    // a PSK whose pseudonym0 another device holds (2^-64 per pair) is drawn again
    let psk: Buffer
    let device
    for (;;) {
        psk = randomBytes(PSK_LEN)
        device = newDevice({ id, name, publicKey: s.publicKey, psk, now })
        try {
            await registry.putDevice(device)
            break
        } catch (err) {
            if (!(err instanceof PseudonymTaken)) throw err
        }
    }
    // the out-of-band ticket: generation 1, the out-of-band key, chain origin 1
    const t = mintTicket({
        deviceId,
        generation: device.issued_generation,
        issuedAt: now,
        chainOrigin: device.full_generation,
        keySet: opts.ticketKeys,
        kind: "oob",
    })
    return { deviceId, s, psk, ticket: { ticket: t.ticket, secret: t.resumptionSecret } }
}

/** Runs `pair`. */
export async function pair(argv: string[], io: Io): Promise<void> {
    const r = parse(
        argv,
        {
            ...STATE_OPTION,
            out: { type: "string" },
            force: { type: "boolean" },
            host: { type: "string" },
            port: { type: "string" },
        },
        PAIR_USAGE,
        io,
        { min: 1, max: 1 }
    )
    if (r === undefined) return
    const name = r.positionals[0] as string
    if (!NAME.test(name)) throw new CliError("a device name is 1..64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)", 2)
    const out = resolve(io.cwd, typeof r.values.out === "string" ? r.values.out : ".env.local")
    const force = r.values.force === true
    const host = typeof r.values.host === "string" ? r.values.host : "127.0.0.1"
    if (host.length === 0 || /[\s#"]/.test(host)) throw new CliError("--host must be a host name or address", 2)
    const port = intOption(r.values.port, "port", 4433, 1, 65535)
    if (existsSync(out) && !force) throw new CliError(`${out} exists; refusing to overwrite it (use --force)`)

    const store = await openCliStore(r.values, io)
    try {
        const ticketKeys = await store.loadTicketKeys()
        const identity = await store.loadIdentity()
        const p = await pairDevice({ registry: store.registry, ticketKeys, name, now: nowSeconds() })
        const id = deviceIdHex(p.deviceId)
        const text = envText(deviceSettings(p, identity.publicKey, host, port), name)
        writeFileSync(out, text, { mode: 0o600, flag: force ? "w" : "wx" })
        chmodSync(out, 0o600) // the mode applies only when the file is created
        // best effort on a garbage-collected VM (the hex strings cannot be wiped)
        p.s.privateKey.fill(0)
        p.psk.fill(0)
        p.ticket.secret.fill(0)
        io.out(`paired ${name} id ${id}`)
        io.out(`wrote ${out}`)
    } finally {
        await store.close()
    }
}
