// `tether-gateway pair NAME`: a new device id, device key pair and PSK; the device registered;
// the out-of-band ticket (generation 1, PROTOCOL.md 6.7) and its resumption secret minted; all
// of it written to the device's settings file. Prints the name, the id and the path only.
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs"
import { resolve } from "node:path"
import { randomBytes } from "../crypto/random.js"
import { generateKeyPair, type KeyPair } from "../crypto/x25519.js"
import { deviceIdHex, newDevice, PseudonymTaken, type Registry } from "../registry/registry.js"
import type { ResumeTicket } from "../session/resume.js"
import { mintTicket, type TicketKeySet } from "../tickets.js"
import { DEVICE_ID_LEN, PSK_LEN } from "../wire.js"
import { badHost, CliError, intOption, nowSeconds, openCliStore, parse, STATE_OPTION, type Io } from "./common.js"

export const PAIR_USAGE = `usage: tether-gateway pair NAME [options]

Pairs a new device: creates its id, key pair and pre-shared key, registers it, mints its
out-of-band ticket and writes everything the device needs to its settings file (DeviceScript
.env format, mode 0600). Prints the device name, id and the file's path; never a secret.

  --state DIR                  the state directory (default ./.tether)
  --store URL                  a cluster's PostgreSQL store instead (default $TETHER_STORE)
  --kek-file F                 the store's key-encryption key (default $TETHER_KEK, DIR/kek)
  --out FILE                   the settings file (default ./.env.local)
  --force                      overwrite FILE if it exists, and re-key a device of that name
                               already paired (new id, keys and PSK; its old ones stop working
                               and its live session is closed)
  --host H                     the gateway address the device connects to (default 127.0.0.1)
  --port P                     the gateway port (default 4433)
  --endpoint HOST:PORT         a gateway node the device connects to, instead of --host/--port;
                               repeat it for the nodes of a cluster (1..4, the first is the
                               primary; the device fails over to the next when one is down,
                               BUSY or shutting down); an IPv6 address in brackets: [::1]:4433
  --json                       print { "device", "id", "out" } instead of two lines

A host is a host name or an IPv4/IPv6 address a device can dial: not a URL, not 0.0.0.0 or ::.

The out-of-band ticket is signed by the gateway's out-of-band ticket key and lives
oobTicketLifetime (serve --oob-ticket-lifetime, default 365 days) from now.`

/** Device names: what an operator types, safe in logs and file names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Most gateway endpoints in a device's settings: TT_GW_HOST and TT_GW_HOST2..4 (PROTOCOL.md 6.8). */
export const MAX_ENDPOINTS = 4
/** Longest host of an endpoint (PROTOCOL.md 6.8: a setting's record is at most 232 bytes). */
export const MAX_HOST_LEN = 200

/** Where a gateway node listens, as the device connects to it. */
export interface GatewayEndpoint {
    readonly host: string
    readonly port: number
}

/** The device's settings: keys of at most 13 characters (DeviceScript), the device reads exactly these. */
export interface DeviceSettings {
    readonly TT_ID: string
    readonly TT_SK: string
    readonly TT_GW_PK: string
    readonly TT_PSK: string
    readonly TT_GW_HOST: string
    readonly TT_GW_PORT: number
    /** further nodes of a cluster, in failover order (present only when there are) */
    readonly TT_GW_HOST2?: string
    readonly TT_GW_PORT2?: number
    readonly TT_GW_HOST3?: string
    readonly TT_GW_PORT3?: number
    readonly TT_GW_HOST4?: string
    readonly TT_GW_PORT4?: number
    readonly TT_TICKET: string
    readonly TT_RSECRET: string
}

/**
 * The settings for a paired device (PROTOCOL.md 6.8): the one place they are made, for `pair`,
 * the tests and the vectors. Secrets (TT_SK, TT_PSK, TT_RSECRET): never log.
 * @param host, port the primary endpoint (TT_GW_HOST, TT_GW_PORT)
 * @param more further endpoints (TT_GW_HOST2.., each with its TT_GW_PORTn), at most 3
 * @throws RangeError on more than MAX_ENDPOINTS endpoints in all
 */
export function deviceSettings(
    p: Paired,
    gatewayPublic: Buffer,
    host: string,
    port: number,
    more: readonly GatewayEndpoint[] = []
): DeviceSettings {
    if (more.length > MAX_ENDPOINTS - 1) throw new RangeError(`at most ${MAX_ENDPOINTS} gateway endpoints`)
    const extra: Record<string, string | number> = {}
    more.forEach((e, i) => {
        extra[`TT_GW_HOST${i + 2}`] = e.host
        extra[`TT_GW_PORT${i + 2}`] = e.port
    })
    // key order is the file's line order: PROTOCOL.md 6.8's
    return {
        TT_ID: deviceIdHex(p.deviceId),
        TT_SK: p.s.privateKey.toString("hex"),
        TT_GW_PK: gatewayPublic.toString("hex"),
        TT_PSK: p.psk.toString("hex"),
        TT_GW_HOST: host,
        TT_GW_PORT: port,
        ...extra,
        TT_TICKET: p.ticket.ticket.toString("hex"),
        TT_RSECRET: p.ticket.secret.toString("hex"),
    }
}

/** Checks a host for the settings file: 1..MAX_HOST_LEN characters, no space, `#` or `"`. */
function checkHost(host: string, what: string): void {
    if (host.length === 0 || /[\s#"]/.test(host)) throw new CliError(`${what} must be a host name or address`, 2)
    if (host.length > MAX_HOST_LEN) throw new CliError(`${what}: a host of at most ${MAX_HOST_LEN} characters`, 2)
    const bad = badHost(host, true)
    if (bad !== undefined) throw new CliError(`${what}: ${host} ${bad}`, 2)
}

/**
 * One `--endpoint HOST:PORT`: a host name, an IPv4 address, or an IPv6 address in brackets
 * (`[::1]:4433`, written to the settings without them).
 * @throws CliError (exit 2) naming the value
 */
export function parseEndpoint(text: string): GatewayEndpoint {
    const what = `--endpoint ${text}`
    let host: string
    let portText: string
    if (text.startsWith("[")) {
        const close = text.indexOf("]")
        if (close < 0 || text[close + 1] !== ":")
            throw new CliError(`${what}: an IPv6 address is written [ADDRESS]:PORT, e.g. [::1]:4433`, 2)
        host = text.slice(1, close)
        portText = text.slice(close + 2)
        if (!host.includes(":")) throw new CliError(`${what}: only an IPv6 address goes in brackets`, 2)
    } else {
        const colon = text.lastIndexOf(":")
        if (colon < 0) throw new CliError(`${what}: HOST:PORT, e.g. gw-1.local:4433 or [::1]:4433`, 2)
        host = text.slice(0, colon)
        portText = text.slice(colon + 1)
        if (host.includes(":")) throw new CliError(`${what}: an IPv6 address goes in brackets, e.g. [::1]:4433`, 2)
    }
    checkHost(host, what)
    const port = Number(portText)
    if (!/^[0-9]+$/.test(portText) || port < 1 || port > 65535) throw new CliError(`${what}: the port must be an integer in 1..65535`, 2)
    return { host, port }
}

/**
 * The endpoints of `pair`'s options: `--endpoint` (1..4, the first the primary), or the one of
 * `--host`/`--port` (each with its default), never both.
 * @throws CliError (exit 2)
 */
export function endpointsOption(values: Record<string, unknown>): GatewayEndpoint[] {
    const list = values.endpoint
    if (Array.isArray(list) && list.length > 0) {
        if (values.host !== undefined || values.port !== undefined)
            throw new CliError("--endpoint replaces --host and --port: give one form or the other", 2)
        if (list.length > MAX_ENDPOINTS)
            throw new CliError(`at most ${MAX_ENDPOINTS} --endpoint (the device's settings hold TT_GW_HOST..TT_GW_HOST${MAX_ENDPOINTS})`, 2)
        const out = list.map(v => parseEndpoint(String(v)))
        const seen = new Set<string>()
        for (const e of out) {
            const key = `${e.host.toLowerCase()} ${e.port}`
            if (seen.has(key)) throw new CliError(`--endpoint ${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port} is given twice`, 2)
            seen.add(key)
        }
        return out
    }
    const host = typeof values.host === "string" ? values.host : "127.0.0.1"
    checkHost(host, "--host")
    return [{ host, port: intOption(values.port, "port", 4433, 1, 65535) }]
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
            endpoint: { type: "string", multiple: true },
            json: { type: "boolean" },
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
    const [primary, ...more] = endpointsOption(r.values)
    if (existsSync(out) && !force) throw new CliError(`${out} exists; refusing to overwrite it (use --force)`)

    // all or nothing: the settings file is made (empty, 0600) before anything is registered, its
    // content written and moved into place after; a failure after registering removes the device
    const tmp = `${out}.${process.pid}.tmp`
    let fd: number
    try {
        fd = openSync(tmp, "wx", 0o600)
    } catch (err) {
        throw new CliError(`cannot write the settings file ${out}: ${(err as NodeJS.ErrnoException).code ?? "error"}`)
    }
    const store = await openCliStore(r.values, io).catch(err => {
        closeSync(fd)
        rmSync(tmp, { force: true })
        throw err
    })
    let registered: string | undefined
    try {
        const ticketKeys = await store.loadTicketKeys()
        const identity = await store.loadIdentity()
        const existing = await store.registry.getDeviceByName(name)
        if (existing !== undefined && !force)
            throw new CliError(`a device named ${name} is already paired (re-key it with --force, or remove it)`)
        if (existing !== undefined) {
            await store.registry.remove(name) // a running serve closes its session
            await store.outbox.clear(existing.id)
            io.err(`tether-gateway pair: re-keying ${name}: its old keys and tickets no longer work`)
        }
        const p = await pairDevice({ registry: store.registry, ticketKeys, name, now: nowSeconds() })
        const id = deviceIdHex(p.deviceId)
        registered = name
        const text = envText(deviceSettings(p, identity.publicKey, primary!.host, primary!.port, more), name)
        // best effort on a garbage-collected VM (the hex strings cannot be wiped)
        p.s.privateKey.fill(0)
        p.psk.fill(0)
        p.ticket.secret.fill(0)
        writeSync(fd, text)
        fsyncSync(fd)
        closeSync(fd)
        fd = -1
        renameSync(tmp, out)
        registered = undefined
        if (r.values.json === true) io.out(JSON.stringify({ device: name, id, out }))
        else {
            io.out(`paired ${name} id ${id}`)
            io.out(`wrote ${out}`)
        }
    } catch (err) {
        // nothing half done: a device whose settings file was not written is not paired
        if (registered !== undefined) await store.registry.remove(registered).catch(() => {})
        if (err instanceof CliError) throw err
        const code = (err as NodeJS.ErrnoException).code
        if (registered !== undefined && code !== undefined)
            throw new CliError(`cannot write the settings file ${out} (${code}); ${name} is not paired`)
        throw err
    } finally {
        if (fd >= 0) closeSync(fd)
        rmSync(tmp, { force: true })
        await store.close()
    }
}
