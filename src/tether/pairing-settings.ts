// The device's settings written by pairing (PROTOCOL.md 6.8), read in one place:
//
//     TT_ID (8)  TT_SK (32)  TT_GW_PK (32)  TT_PSK (32)        hex
//     TT_GW_HOST (text)  TT_GW_PORT (number, or its text)
//     TT_TICKET (33)  TT_RSECRET (32)                          hex, optional, both or neither
//
// Every length comes from ./wire.ts. decodeSettings() is pure (a plain object of setting
// name -> value, as a test vector or the settings service gives them); readPairingSettings()
// reads the flash settings into such an object and decodes it. Errors name the setting and
// what is wrong with it, never its value (most of these are secrets).
import { readSetting } from "@devicescript/settings"
import { DEVICE_ID_LEN, PRIVATE_KEY_LEN, PSK_LEN, PUBLIC_KEY_LEN, RESUMPTION_SECRET_LEN, TICKET_LEN } from "./wire"

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
/** Every setting pairing writes, in the order of PROTOCOL.md 6.8. */
export const SETTING_NAMES = [TT_ID, TT_SK, TT_GW_PK, TT_PSK, TT_GW_HOST, TT_GW_PORT, TT_TICKET, TT_RSECRET]

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
 * The gateway's port: a number or its decimal text, 1..65535.
 * @throws Error naming TT_GW_PORT
 */
export function portSetting(values: any): number {
    const v = values[TT_GW_PORT]
    const p = typeof v === "string" ? parseInt(v) : v
    if (typeof p !== "number" || !(p >= 1 && p <= 65535) || Math.floor(p) !== p)
        throw new Error("tether: setting " + TT_GW_PORT + " is missing or not a port")
    return p
}

/**
 * Decodes the pairing settings.
 * @param values setting name -> value (hex strings, the host's text, the port)
 * @throws Error naming the first missing or malformed setting
 */
export function decodeSettings(values: any): LinkSettings {
    const host = values[TT_GW_HOST]
    if (typeof host !== "string" || host.length === 0) throw new Error("tether: setting " + TT_GW_HOST + " is missing" + HINT)
    const port = portSetting(values)
    const s: LinkSettings = {
        deviceId: hexSetting(values, TT_ID, DEVICE_ID_LEN),
        privateKey: hexSetting(values, TT_SK, PRIVATE_KEY_LEN),
        gatewayPublic: hexSetting(values, TT_GW_PK, PUBLIC_KEY_LEN),
        psk: hexSetting(values, TT_PSK, PSK_LEN),
        host,
        port,
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
