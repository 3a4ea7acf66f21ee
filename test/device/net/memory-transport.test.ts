// The in-memory twin of FramedSocket (src/net/memory-transport.ts): frames both ways in
// order, the timeout, a close seen by the peer after what was already sent, use after
// close, an injected framing violation, and the encoder's size checks.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { MAX_BODY } from "../../../src/net/frame"
import { memoryPair } from "../../../src/net/memory-transport"

async function message(f: () => Promise<any>): Promise<string> {
    try {
        await f()
    } catch (e) {
        return (e as Error).message
    }
    return ""
}

describe("memory transport", () => {
    test("frames both ways, in order; the trace of each end", async () => {
        const { device, gateway } = memoryPair()
        await gateway.sendFrame(2, Buffer.from("a"))
        await gateway.sendFrame(16, Buffer.alloc(0))
        await device.sendFrame(1, Buffer.from("b"))
        const f = await device.recvFrame(100)
        expect(f.type + ":" + f.body.toString()).toBe("2:a")
        expect((await device.recvFrame(100)).body.length).toBe(0)
        expect((await gateway.recvFrame(100)).body.toString()).toBe("b")
        expect(device.trace.join(" ")).toBe(">1 <2 <16")
        expect(gateway.trace.join(" ")).toBe(">2 >16 <1")
    })
    test("timeout, then a frame sent from another fiber wakes the reader", async () => {
        const { device, gateway } = memoryPair()
        const t0 = ds.millis()
        expect(await device.recvFrame(30)).toBe(undefined)
        expect(ds.millis() - t0 >= 25).toBe(true)
        const later = async () => {
            await ds.sleep(20)
            await gateway.sendFrame(4, Buffer.from("x"))
        }
        later.start()
        expect((await device.recvFrame(2000)).type).toBe(4)
    })
    test("close: the peer reads what was sent, then null; use after close throws", async () => {
        const { device, gateway } = memoryPair()
        await gateway.sendFrame(2, Buffer.from("last"))
        gateway.close()
        expect(device.isOpen()).toBe(false)
        expect((await device.recvFrame(100)).body.toString()).toBe("last")
        expect((await device.recvFrame(100)) === null).toBe(true)
        expect(await message(async () => await device.sendFrame(1, Buffer.alloc(0)))).toBe("MemoryTransport: memory:device closed by peer")
        expect(await message(async () => await gateway.recvFrame(0))).toBe("MemoryTransport: memory:gateway used after close()")
        device.close()
        device.close()
        expect(device.isClosed()).toBe(true)
    })
    test("an injected violation after the queued frames; encoder limits", async () => {
        const { device, gateway } = memoryPair()
        await gateway.sendFrame(2, Buffer.from("ok"))
        gateway.violate("bad frame length 0")
        expect(device.isOpen()).toBe(true)
        expect((await device.recvFrame(100)).type).toBe(2)
        expect(await message(async () => await device.recvFrame(100))).toBe("bad frame length 0")
        expect(device.isOpen()).toBe(false)
        const p = memoryPair()
        expect((await message(async () => await p.device.sendFrame(256, Buffer.alloc(0)))).indexOf("bad type") >= 0).toBe(true)
        expect((await message(async () => await p.device.sendFrame(1, Buffer.alloc(MAX_BODY + 1)))).indexOf("body of") >= 0).toBe(true)
        expect(p.gateway.pending()).toBe(0)
    })
})
