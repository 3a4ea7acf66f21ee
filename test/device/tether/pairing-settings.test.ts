// The device's pairing settings (PROTOCOL.md 6.8, src/tether/pairing-settings.ts) and the
// TICKET record content (src/tether/wire.ts), decoded from plain values: the KK and resume
// vectors' keys and ticket as a settings file would carry them. Every error names the
// setting and never contains its value.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { pseudonym0 } from "../../../src/tether/handshake"
import { decodeSettings, MAX_HOST_LEN } from "../../../src/tether/pairing-settings"
import { decodeTicketContent, rejectCode, TICKET_CONTENT_LEN } from "../../../src/tether/wire"
import { TETHER_KK } from "../vectors/tether-kk"
import { TETHER_RESUME } from "../vectors/tether-resume"
import { TETHER_PAIRING } from "../vectors/tether-pairing"

const K = TETHER_KK[0]
const R = TETHER_RESUME[0]
const hex = (b: Buffer) => b.toString("hex")

function values(): any {
    return {
        TT_ID: K.device_id,
        TT_SK: K.device_static_private,
        TT_GW_PK: K.gateway_static_public,
        TT_PSK: K.psk,
        TT_GW_HOST: "192.168.1.20",
        TT_GW_PORT: "8443",
        TT_TICKET: R.ticket,
        TT_RSECRET: R.resumption_secret,
    }
}

/** decodeSettings' error, checked not to leak any value given. */
function errorFor(v: any): string {
    let msg = ""
    try {
        decodeSettings(v)
    } catch (e) {
        msg = (e as Error).message
    }
    for (const k of Object.keys(v)) {
        const s = v[k]
        if (typeof s === "string" && s.length >= 8) expect(msg.indexOf(s) < 0).toBe(true)
    }
    return msg
}

describe("pairing settings", () => {
    test("the vector's settings decode to the pairing", () => {
        const s = decodeSettings(values())
        expect(hex(s.deviceId)).toBe(K.device_id)
        expect(hex(s.privateKey)).toBe(K.device_static_private)
        expect(hex(s.gatewayPublic)).toBe(K.gateway_static_public)
        expect(hex(s.psk)).toBe(K.psk)
        expect(s.host + ":" + s.port).toBe("192.168.1.20:8443")
        expect(hex(s.ticket) + hex(s.secret)).toBe(R.ticket + R.resumption_secret)
        const v = values()
        v.TT_GW_PORT = 9000
        v.TT_TICKET = undefined
        v.TT_RSECRET = undefined
        const t = decodeSettings(v)
        expect(t.port).toBe(9000)
        expect(t.ticket === undefined && t.secret === undefined).toBe(true)
    })
    test("a missing setting is named", () => {
        for (const name of ["TT_ID", "TT_SK", "TT_GW_PK", "TT_PSK", "TT_GW_HOST"]) {
            const v = values()
            v[name] = undefined
            expect(errorFor(v)).toBe("tether: setting " + name + " is missing (run `tether-gateway pair`)")
        }
        const v = values()
        v.TT_GW_PORT = undefined
        expect(errorFor(v)).toBe("tether: setting TT_GW_PORT is missing or not a port")
        // a ticket without its secret, or a secret without its ticket
        const a = values()
        a.TT_RSECRET = undefined
        expect(errorFor(a)).toBe("tether: setting TT_RSECRET is missing (run `tether-gateway pair`)")
        const b = values()
        b.TT_TICKET = undefined
        expect(errorFor(b)).toBe("tether: setting TT_TICKET is missing (run `tether-gateway pair`)")
    })
    test("a setting of the wrong length or not hex is named, its value not printed", () => {
        const cases = [
            ["TT_ID", K.device_id + "00", 8],
            ["TT_SK", K.device_static_private.slice(2), 32],
            ["TT_GW_PK", K.gateway_static_public + "0", 32],
            ["TT_PSK", "zz" + K.psk.slice(2), 32],
            ["TT_TICKET", R.ticket.slice(0, 64), 33],
            ["TT_RSECRET", R.resumption_secret + R.resumption_secret, 32],
        ]
        for (const c of cases) {
            const v = values()
            v[c[0] as string] = c[1]
            expect(errorFor(v)).toBe("tether: setting " + c[0] + " must be " + c[2] + " bytes of hex")
        }
        const n = values()
        n.TT_PSK = 42
        expect(errorFor(n)).toBe("tether: setting TT_PSK must be a quoted hex string")
        for (const port of ["0", "65536", "http", 80.5]) {
            const v = values()
            v.TT_GW_PORT = port
            expect(errorFor(v)).toBe("tether: setting TT_GW_PORT is missing or not a port")
        }
    })
})

/** The endpoints of decoded settings as "host:port,host:port". */
async function endpointsOf(v: any): Promise<string> {
    await ds.sleep(0) // each decode checks every hex digit: yield between them
    const s = decodeSettings(v)
    const out: string[] = []
    for (const e of s.endpoints) out.push(e.host + ":" + e.port)
    return out.join()
}

/** errorFor(v), after a yield. */
async function errorOf(v: any): Promise<string> {
    await ds.sleep(0)
    return errorFor(v)
}

describe("gateway endpoints (TT_GW_HOST, TT_GW_HOST2..4)", () => {
    test("one endpoint: the primary only, as before", async () => {
        expect(await endpointsOf(values())).toBe("192.168.1.20:8443")
    })
    test("2 to 4 endpoints in order; a port left out is TT_GW_PORT's; TT_GW_HOST5 is not a setting", async () => {
        const v = values()
        v.TT_GW_HOST2 = "gw-b.local"
        v.TT_GW_PORT2 = 9443
        expect(await endpointsOf(v)).toBe("192.168.1.20:8443,gw-b.local:9443")
        v.TT_GW_HOST3 = "::1"
        expect(await endpointsOf(v)).toBe("192.168.1.20:8443,gw-b.local:9443,::1:8443")
        v.TT_GW_HOST4 = "10.0.0.4"
        v.TT_GW_PORT4 = "4434"
        v.TT_GW_HOST5 = "10.0.0.5"
        v.TT_GW_PORT5 = 1
        expect(await endpointsOf(v)).toBe("192.168.1.20:8443,gw-b.local:9443,::1:8443,10.0.0.4:4434")
        await ds.sleep(0)
        const s = decodeSettings(v)
        expect(s.host + ":" + s.port).toBe("192.168.1.20:8443")
    })
    test("errors name the setting: a port without its host, a gap, a bad port, an empty or too long host", async () => {
        const a = values()
        a.TT_GW_PORT2 = 9443
        expect(await errorOf(a)).toBe("tether: setting TT_GW_PORT2 is set without TT_GW_HOST2")
        const b = values()
        b.TT_GW_HOST3 = "gw-c.local"
        expect(await errorOf(b)).toBe("tether: setting TT_GW_HOST3 is set without TT_GW_HOST2")
        const c = values()
        c.TT_GW_HOST2 = "gw-b.local"
        c.TT_GW_HOST4 = "gw-d.local"
        expect(await errorOf(c)).toBe("tether: setting TT_GW_HOST4 is set without TT_GW_HOST3")
        for (const port of ["0", "65536", "http", 80.5, ""]) {
            const v = values()
            v.TT_GW_HOST2 = "gw-b.local"
            v.TT_GW_HOST3 = "gw-c.local"
            v.TT_GW_PORT3 = port
            expect(await errorOf(v)).toBe("tether: setting TT_GW_PORT3 is missing or not a port")
        }
        const e = values()
        e.TT_GW_HOST2 = ""
        expect(await errorOf(e)).toBe("tether: setting TT_GW_HOST2 is missing (run `tether-gateway pair`)")
        const n = values()
        n.TT_GW_HOST2 = 42
        expect(await errorOf(n)).toBe("tether: setting TT_GW_HOST2 is missing (run `tether-gateway pair`)")
        let long = ""
        for (let i = 0; i < 20; i++) long += "abcdefghij"
        const ok = values()
        ok.TT_GW_HOST2 = long
        await ds.sleep(0)
        expect(decodeSettings(ok).endpoints[1].host.length).toBe(MAX_HOST_LEN)
        for (const name of ["TT_GW_HOST", "TT_GW_HOST2"]) {
            const v = values()
            if (name !== "TT_GW_HOST") v.TT_GW_HOST = "gw-a.local"
            v[name] = long + "k"
            expect(await errorOf(v)).toBe("tether: setting " + name + " is longer than 200 characters")
        }
    })
})

describe("wire decoders", () => {
    test("TICKET content: ticket 33 || resumption_secret 32 || next_pseudonym 8, nothing else", () => {
        const content = Buffer.from(R.next_ticket + R.next_resumption_secret + R.next_pseudonym, "hex")
        expect(content.length).toBe(TICKET_CONTENT_LEN)
        expect(TICKET_CONTENT_LEN).toBe(73)
        const t = decodeTicketContent(content)
        expect(hex(t.ticket)).toBe(R.next_ticket)
        expect(hex(t.secret)).toBe(R.next_resumption_secret)
        expect(hex(t.pseudonym)).toBe(R.next_pseudonym)
        content[0] ^= 1 // copies, not views
        content[72] ^= 1
        expect(hex(t.ticket)).toBe(R.next_ticket)
        expect(hex(t.pseudonym)).toBe(R.next_pseudonym)
        expect(decodeTicketContent(content.slice(1)) === undefined).toBe(true)
        expect(decodeTicketContent(Buffer.concat(content, Buffer.alloc(1))) === undefined).toBe(true)
    })
    test("REJECT body: exactly one code byte", () => {
        expect(rejectCode(Buffer.from([5]))).toBe(5)
        expect(rejectCode(Buffer.alloc(0)) === undefined).toBe(true)
        expect(rejectCode(Buffer.from([5, 0])) === undefined).toBe(true)
    })
})

// The contract with the gateway's `pair`, pinned by tether-pairing.json
// (devs/gen/pairing-vectors.mjs runs the gateway's own deviceSettings()): what pairing writes,
// the device reads; what the gateway puts in a TICKET record, the device splits.
describe("tether-pairing vectors (the gateway's pairing)", () => {
    test("the settings as pair writes them decode to the pairing", async () => {
        for (let i = 0; i < TETHER_PAIRING.length; i++) {
            await ds.sleep(0) // each decode checks every hex digit: yield between cases
            const c = TETHER_PAIRING[i]
            const v: any = {}
            for (const k of Object.keys(c)) if (k.indexOf("set_") === 0) v[k.slice(4)] = c[k]
            const s = decodeSettings(v)
            expect(hex(s.deviceId)).toBe(c.expect_device_id)
            expect(hex(s.privateKey)).toBe(c.expect_private_key)
            expect(hex(s.gatewayPublic)).toBe(c.expect_gateway_public)
            expect(hex(s.psk)).toBe(c.expect_psk)
            expect(s.host).toBe(c.expect_host)
            expect(s.port).toBe(c.expect_port)
            expect(hex(s.ticket)).toBe(c.expect_ticket)
            expect(hex(s.secret)).toBe(c.expect_secret)
            // the fallback pseudonym the gateway registers at pairing (PROTOCOL.md 4.4, 6.7)
            expect(hex(pseudonym0(s.psk))).toBe(c.expect_pseudonym0)
        }
    })
    test("the TICKET content as the gateway encodes it splits into ticket, secret and next pseudonym", () => {
        for (let i = 0; i < TETHER_PAIRING.length; i++) {
            const c = TETHER_PAIRING[i]
            const t = decodeTicketContent(Buffer.from(c.ticket_content, "hex"))
            expect(hex(t.ticket)).toBe(c.expect_ticket)
            expect(hex(t.secret)).toBe(c.expect_secret)
            expect(hex(t.pseudonym)).toBe(c.expect_next_pseudonym)
        }
    })
    test("pseudonym0 of the KK vector's psk", () => {
        expect(hex(pseudonym0(Buffer.from(K.psk, "hex")))).toBe(K.pseudonym0)
    })
})
