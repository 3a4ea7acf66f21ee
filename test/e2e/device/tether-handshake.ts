// End to end, device side of test/e2e/handshake.test.ts (the real gateway): a full KK
// handshake (2 X25519 on the critical path: es was prepared while idle, PROTOCOL.md 4.3) with
// records both ways, the first of which brings the TICKET (6.3); a wrong gateway key, a wrong
// device key, an unknown device (a PSK, so a pseudonym0, the gateway does not know; each
// refused with its code, nothing stored); a tampered record from the gateway closes the
// connection.
import { describe, test, expect } from "@devicescript/test"
import { RecvKind, RejectedError } from "../../../src/tether/client"
import { Code } from "../../../src/tether/wire"
import { makeClient, pairing, pass, TestClient, text } from "./tether-common"
import { DEV_ID, DEV_PRIV, DEV_PUB, GW_PUB, OTHER_PRIV, PORT, PSK, UNKNOWN_ID, UNKNOWN_PSK } from "./env.generated"

async function rejectedWith(tc: TestClient): Promise<number> {
    try {
        await tc.client.connect()
    } catch (e) {
        if (e instanceof RejectedError) return (e as RejectedError).code
        return -1
    }
    return 0
}

describe("tether full handshake", () => {
    test("handshake, records both ways, tampered record closes", async () => {
        const tc = await makeClient(PORT, await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB))
        await tc.client.prepare()
        tc.dh.reset()
        const c = await tc.client.connect()
        expect(tc.dh.x).toBe(2) // ee, se
        expect(tc.dh.base).toBe(0)
        console.log("BENCH device_full_handshake_ms " + c.handshakeMs)
        expect(tc.store.current()).toBe(undefined) // no TICKET before the device's first record
        for (let i = 0; i < 3; i++) {
            await c.send(Buffer.from("rec-" + i))
            expect(text(await c.receive(10000))).toBe("ack:rec-" + i)
        }
        expect(tc.store.seq()).toBe(1) // the TICKET followed the first record and went to flash
        await c.send(Buffer.from("tamper-me"))
        expect((await c.receive(10000)).kind).toBe(RecvKind.Closed)
        expect(c.isOpen()).toBe(false)
        pass("records-and-tamper")
    })
    test("wrong gateway key, wrong device key, unknown device", async () => {
        // the gateway's key is another device's public key here: message 1 cannot decrypt
        const wrongGw = await makeClient(
            PORT,
            await pairing(DEV_ID, DEV_PRIV, (await pairing(DEV_ID, OTHER_PRIV, GW_PUB, PSK)).s.publicKey.toString("hex"), PSK)
        )
        expect(await rejectedWith(wrongGw)).toBe(Code.HANDSHAKE_FAILED)
        expect(wrongGw.store.current()).toBe(undefined)
        const wrongDev = await makeClient(PORT, await pairing(DEV_ID, OTHER_PRIV, GW_PUB, PSK))
        expect(await rejectedWith(wrongDev)).toBe(Code.HANDSHAKE_FAILED)
        const unknown = await makeClient(PORT, await pairing(UNKNOWN_ID, DEV_PRIV, GW_PUB, UNKNOWN_PSK))
        unknown.dh.reset()
        expect(await rejectedWith(unknown)).toBe(Code.UNKNOWN_DEVICE)
        pass("rejects")
    })
})
