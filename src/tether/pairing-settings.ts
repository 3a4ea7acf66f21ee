// The device's settings written by pairing (PROTOCOL.md 6.8), read in one place:
//
//     TT_ID (8)  TT_SK (32)  TT_GW_PK (32)  TT_PSK (32)        hex
//     TT_GW_HOST (text)  TT_GW_PORT (number, or its text)
//     TT_GW_HOST2..4 (text)  TT_GW_PORT2..4                    optional: more nodes of a cluster
//     TT_TICKET (33)  TT_RSECRET (32)                          hex, optional, both or neither
//
// Every length comes from ./wire.ts. decodeSettings() is pure (a plain object of setting
// name -> value, as a test vector or the settings service gives them); readPairingSettings()
// reads the flash settings into such an object and decodes it. Errors name the setting and
// what is wrong with it, never its value (most of these are secrets).
import { readSetting } from "@devicescript/settings"
import { DEVICE_ID_LEN, PRIVATE_KEY_LEN, PSK_LEN, PUBLIC_KEY_LEN, RESUMPTION_SECRET_LEN, TICKET_LEN } from "./wire"

/** Where one gateway node listens. */
export interface Endpoint {
    host: string
    port: number
}

/** Most gateway endpoints a pairing names (TT_GW_HOST and TT_GW_HOST2..4, PROTOCOL.md 6.8). */
export const MAX_ENDPOINTS = 4
/** Longest host text of an endpoint setting (PROTOCOL.md 6.8: the settings' size limit). */
export const MAX_HOST_LEN = 200

/** Pairing material and gateway address (PROTOCOL.md 6.8). Secrets: never log. */
export interface LinkSettings {
    /** TT_ID, 8 bytes */
    deviceId: Buffer
    /** TT_SK, the device's static private key, 32 bytes */
    privateKey: Buffer
    /** TT_GW_PK, 32 bytes */
    gatewayPublic: Buffer
    /** TT_PSK, 32 bytes */
    psk: Buffer
    /** TT_GW_HOST */
    host: string
    /** TT_GW_PORT */
    port: number
    /**
     * Every endpoint in the order the link tries them: TT_GW_HOST/TT_GW_PORT first, then
     * TT_GW_HOST2..4; absent: the one of host and port
     */
    endpoints?: Endpoint[]
    /** TT_TICKET (33) and TT_RSECRET (32): the out-of-band ticket, used while flash holds none */
    ticket?: Buffer
    secret?: Buffer
}

/** The setting names, at most 13 characters each (DeviceScript's limit). */
export const TT_ID = "TT_ID"
export const TT_SK = "TT_SK"
export const TT_GW_PK = "TT_GW_PK"
export const TT_PSK = "TT_PSK"
export const TT_GW_HOST = "TT_GW_HOST"
export const TT_GW_PORT = "TT_GW_PORT"
export const TT_TICKET = "TT_TICKET"
export const TT_RSECRET = "TT_RSECRET"
/** The further endpoints' settings: HOST_NAMES[i], PORT_NAMES[i] for endpoint i (0 is TT_GW_HOST). */
export const HOST_NAMES = [TT_GW_HOST, "TT_GW_HOST2", "TT_GW_HOST3", "TT_GW_HOST4"]
export const PORT_NAMES = [TT_GW_PORT, "TT_GW_PORT2", "TT_GW_PORT3", "TT_GW_PORT4"]
/** Every setting pairing writes, in the order of PROTOCOL.md 6.8 (the optional ones included). */
export const SETTING_NAMES = [
    TT_ID,
    TT_SK,
    TT_GW_PK,
    TT_PSK,
    TT_GW_HOST,
    TT_GW_PORT,
    "TT_GW_HOST2",
    "TT_GW_PORT2",
    "TT_GW_HOST3",
    "TT_GW_PORT3",
    "TT_GW_HOST4",
    "TT_GW_PORT4",
    TT_TICKET,
    TT_RSECRET,
]

const HINT = " (run `tether-gateway pair`)"

function missing(v: any): boolean {
    return v === undefined || v === null
}

function isHex(s: string): boolean {
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i)
        if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false
    }
    return true
}

/**
 * One hex setting of exactly `len` bytes.
 * @throws Error naming the setting when it is missing; TypeError when it is not `len` bytes
 *     of hex (the value itself is never in the message)
 */
export function hexSetting(values: any, name: string, len: number): Buffer {
    const v = values[name]
    if (missing(v)) throw new Error("tether: setting " + name + " is missing" + HINT)
    if (typeof v !== "string") throw new TypeError("tether: setting " + name + " must be a quoted hex string")
    if (v.length !== 2 * len || !isHex(v)) throw new TypeError("tether: setting " + name + " must be " + len + " bytes of hex")
    return Buffer.from(v, "hex")
}

/**
 * A gateway port: a number or its decimal text, 1..65535.
 * @param name the setting, default TT_GW_PORT
 * @throws Error naming the setting
 */
export function portSetting(values: any, name?: string): number {
    const n = name || TT_GW_PORT
    const v = values[n]
    const p = typeof v === "string" ? parseInt(v) : v
    if (typeof p !== "number" || !(p >= 1 && p <= 65535) || Math.floor(p) !== p)
        throw new Error("tether: setting " + n + " is missing or not a port")
    return p
}

/**
 * The further endpoints TT_GW_HOST2..4 (a port TT_GW_PORTn, TT_GW_PORT when absent), after
 * the primary one. They are numbered without gaps; a port without its host is an error.
 * @throws Error naming the first malformed setting
 */
function moreEndpoints(values: any, primary: Endpoint, out: Endpoint[]): void {
    let gap = ""
    for (let i = 1; i < MAX_ENDPOINTS; i++) {
        const hn = HOST_NAMES[i]
        const pn = PORT_NAMES[i]
        const h = values[hn]
        if (missing(h)) {
            if (!missing(values[pn])) throw new Error("tether: setting " + pn + " is set without " + hn)
            if (gap === "") gap = hn
            continue
        }
        if (gap !== "") throw new Error("tether: setting " + hn + " is set without " + gap)
        hostSetting(values, hn)
        out.push({ host: h, port: missing(values[pn]) ? primary.port : portSetting(values, pn) })
    }
}

/** Checks one host setting: text of 1..MAX_HOST_LEN characters. @throws Error naming it */
function hostSetting(values: any, name: string): string {
    const h = values[name]
    if (typeof h !== "string" || h.length === 0) throw new Error("tether: setting " + name + " is missing" + HINT)
    if (h.length > MAX_HOST_LEN) throw new Error("tether: setting " + name + " is longer than " + MAX_HOST_LEN + " characters")
    return h
}

/**
 * Decodes the pairing settings.
 * @param values setting name -> value (hex strings, the host's text, the port)
 * @throws Error naming the first missing or malformed setting
 */
export function decodeSettings(values: any): LinkSettings {
    const host = hostSetting(values, TT_GW_HOST)
    const port = portSetting(values)
    const primary: Endpoint = { host, port }
    const endpoints = [primary]
    moreEndpoints(values, primary, endpoints)
    const s: LinkSettings = {
        deviceId: hexSetting(values, TT_ID, DEVICE_ID_LEN),
        privateKey: hexSetting(values, TT_SK, PRIVATE_KEY_LEN),
        gatewayPublic: hexSetting(values, TT_GW_PK, PUBLIC_KEY_LEN),
        psk: hexSetting(values, TT_PSK, PSK_LEN),
        host,
        port,
        endpoints,
    }
    // the out-of-band ticket is optional, but a ticket without its secret (or the other way
    // round) is a broken pairing, not "no ticket"
    if (!missing(values[TT_TICKET]) || !missing(values[TT_RSECRET])) {
        s.ticket = hexSetting(values, TT_TICKET, TICKET_LEN)
        s.secret = hexSetting(values, TT_RSECRET, RESUMPTION_SECRET_LEN)
    }
    return s
}

/**
 * Reads the pairing written by `tether-gateway pair` from the device's settings
 * (`.env.local` deployed with the program) and decodes it.
 * @throws Error naming the first missing or malformed setting
 */
export async function readPairingSettings(): Promise<LinkSettings> {
    const values: any = {}
    for (const name of SETTING_NAMES) values[name] = await readSetting<any>(name)
    return decodeSettings(values)
}
