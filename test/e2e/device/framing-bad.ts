// Device side of test/e2e/framing.test.ts, the failure cases: an oversized length field, a
// zero length field, and a connection closed inside a frame. The device must report each as a
// clear error (and close on a bad length) without hanging. And a peer that answers with one
// frame and closes at once (a gateway's REJECT), while the device connects again immediately,
// RECONNECTS times: the old socket's close must never reach the new connection.
import { describe, test, expect } from "@devicescript/test"
import { FramedSocket } from "../../../src/net/framed-socket"
import { errorOf, has } from "./check"
import { PORT_OVERSIZED, PORT_ZERO, PORT_TRUNC, PORT_REJECT, RECONNECTS } from "./env.generated"

const HOST = "127.0.0.1"

describe("framing e2e (failures)", () => {
    test("oversized: a length above MAX_FRAME is an error and the device closes", async () => {
        const s = await FramedSocket.connect({ host: HOST, port: PORT_OVERSIZED, timeoutMs: 5000 })
        const f = await s.recvFrame(5000) // the valid frame before it is still delivered
        expect(f.type).toBe(0x60)
        expect(f.body.toString()).toBe("fine")
        has(await errorOf(async () => await s.recvFrame(5000)), "bad frame length 1025")
        // sticky and immediate: no hang, the same answer
        has(await errorOf(async () => await s.recvFrame(5000)), "bad frame length 1025")
        has(await errorOf(async () => await s.sendFrame(0x60, Buffer.alloc(0))), "bad frame length")
        expect(s.isOpen()).toBe(false)
        s.close()
        console.log("E2E-PASS oversized")
    })

    test("zero: a length of 0 is an error", async () => {
        const s = await FramedSocket.connect({ host: HOST, port: PORT_ZERO, timeoutMs: 5000 })
        has(await errorOf(async () => await s.recvFrame(5000)), "bad frame length 0")
        s.close()
        console.log("E2E-PASS zero")
    })

    test("truncated: the peer closes inside a frame (body, then length field)", async () => {
        const s = await FramedSocket.connect({ host: HOST, port: PORT_TRUNC, timeoutMs: 5000 })
        const f = await s.recvFrame(5000)
        expect(f.type).toBe(0x61)
        expect(f.body.toString()).toBe("before")
        has(await errorOf(async () => await s.recvFrame(5000)), "closed inside a frame (13 of 102 bytes)")
        has(await errorOf(async () => await s.recvFrame(5000)), "closed inside a frame")
        s.close()
        // second connection: only one byte of the length field, then FIN
        const t = await FramedSocket.connect({ host: HOST, port: PORT_TRUNC, timeoutMs: 5000 })
        has(await errorOf(async () => await t.recvFrame(5000)), "closed inside a frame (1 of ? bytes)")
        t.close()
        console.log("E2E-PASS truncated")
    })

    test("reject and close: an immediate reconnect is not closed by the old socket's event", async () => {
        let failures = 0
        for (let i = 0; i < RECONNECTS; i++) {
            let s: FramedSocket = undefined
            try {
                s = await FramedSocket.connect({ host: HOST, port: PORT_REJECT, timeoutMs: 5000 })
            } catch (e) {
                failures++
                console.log("reconnect " + i + " failed: " + (e as Error).message)
                continue
            }
            const f = await s.recvFrame(5000)
            expect(f.type).toBe(0x7f)
            expect(f.body.length).toBe(1)
            s.close() // as the client does on a REJECT; the next connect follows at once
        }
        expect(failures).toBe(0)
        console.log("E2E-PASS reject-reconnect")
    })
})
