// The link (src/link.ts) over the in-memory transport against the test-local version 2
// gateway (../tether/mini-gateway.ts, a toy DH): the device's first application message on
// every new session is its STREAM (PROTOCOL.md 12.1), as early data only on a resumption
// whose ticket age is known, else in the session's first DATA record: the out-of-band ticket
// at boot (age unknown), then a ticket received in this boot (0-RTT), then a rejected ticket
// (the full handshake on the same connection).
// @timeout 60000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { sha256 } from "../../../src/crypto/hash"
import { startLink } from "../../../src/link"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { MiniGateway, TOY_DH, until } from "../tether/mini-gateway"

/** A STREAM message's first bytes: kind 0x06, id 0, length 12. */
const STREAM_HEAD = "06" + "00000000" + "000c"

describe("the link's first message on every session", () => {
    test("STREAM first: a record after the out-of-band ticket, early data after a ticket of this boot, a record after a fallback", async () => {
        const priv = sha256(Buffer.from("link device"))
        const gwPriv = sha256(Buffer.from("link gateway"))
        const deviceId = sha256(Buffer.from("id")).slice(0, 8)
        const psk = sha256(Buffer.from("link psk"))
        const gw = await new MiniGateway(
            { deviceId, s: { privateKey: priv, publicKey: priv }, gatewayPublic: gwPriv, psk },
            gwPriv,
            TOY_DH
        ).init()
        const oob = gw.mint()
        const link = await startLink({
            settings: {
                deviceId,
                privateKey: priv,
                gatewayPublic: gwPriv,
                psk,
                host: "gw.test",
                port: 1,
                ticket: oob.ticket,
                secret: oob.secret,
            },
            storage: new MemoryStorage(),
            dh: TOY_DH,
            connect: gw.connector(),
            backoffMinMs: 10,
            backoffMaxMs: 50,
        })
        const ups = () => link.status().sessions
        // 1. boot: the out-of-band ticket, age unknown: no early data, STREAM in the first record
        expect(await until(() => ups() === 1 && gw.seen.data.length >= 1, 5000)).toBe(true)
        expect(gw.seen.first.join("")).toBe("R")
        expect(gw.seen.early.join()).toBe("false")
        expect(gw.seen.data[0].slice(0, STREAM_HEAD.length)).toBe(STREAM_HEAD)
        const s1 = link.status()
        expect(s1.resumed && !s1.earlyAccepted).toBe(true)
        expect(s1.x25519).toBe(0)
        await ds.sleep(100) // the TICKET of that session reaches flash
        // 2. a ticket received in this boot: STREAM as accepted early data
        link.dropConnection()
        expect(await until(() => ups() === 2 && gw.seen.data.length >= 2, 5000)).toBe(true)
        expect(gw.seen.first.join("")).toBe("RR")
        expect(gw.seen.early.join()).toBe("false,true")
        expect(gw.seen.data[1].slice(0, 2 + STREAM_HEAD.length)).toBe("e:" + STREAM_HEAD)
        expect(link.status().earlyAccepted).toBe(true)
        await ds.sleep(100)
        // 3. the ticket refused: the full handshake on the same connection, STREAM first again
        gw.rejectTickets = true
        link.dropConnection()
        expect(await until(() => ups() === 3 && gw.seen.data.length >= 3, 5000)).toBe(true)
        expect(gw.seen.first.join("")).toBe("RRRH")
        expect(gw.seen.data[2].slice(0, STREAM_HEAD.length)).toBe(STREAM_HEAD)
        const s3 = link.status()
        expect(!s3.resumed && s3.fellBack).toBe(true)
        // the link prepared the ephemeral and its es while idle after the first session:
        // the full handshake cost ee and se only
        expect(s3.x25519).toBe(2)
        await link.stop()
        expect(link.status().state).toBe("down")
    })
})
