// A device whose ticket generation counter reached the wire's uint32 limit (PROTOCOL.md 6.4):
// refused before any DH, with its own outcome in the log, and the counter never passes it.
import { test } from "node:test"
import assert from "node:assert/strict"
import { MemoryTicketStore, RejectedError } from "../peer/initiator.js"
import { MemoryRegistry } from "../src/registry/memory.js"
import { newDevice } from "../src/registry/registry.js"
import { MAX_GENERATION } from "../src/tickets.js"
import { Code, FrameType, UINT32_MAX } from "../src/wire.js"
import { fixtures } from "./helpers.js"

const fx = fixtures()

test("a generation counter at 2^32 - 1: both handshakes refused before any DH, logged as such", async () => {
    const f = await fx()
    const p = await f.pair("exhausted")
    const store = new MemoryTicketStore()
    const c = await f.client(p, store).connect()
    c.send(Buffer.from("first record")) // confirms the session: the TICKET follows
    assert.ok(await c.awaitTicket())
    c.close()
    const rec = (await f.registry.getDevice(p.deviceId.toString("hex")))!
    await f.registry.putDevice({ ...rec, issued_generation: MAX_GENERATION })
    const dh0 = f.dhCount.n
    await assert.rejects(f.client(p).connect(), (e: unknown) => e instanceof RejectedError && e.code === Code.UNKNOWN_DEVICE)
    // the stored ticket is refused too, then the full handshake on the same connection
    let fellBack = false
    await assert.rejects(
        f.client(p, store, { onSend: t => void (fellBack ||= t === FrameType.HS_INIT) }).connect(),
        (e: unknown) => e instanceof RejectedError && e.code === Code.UNKNOWN_DEVICE
    )
    assert.ok(fellBack, "TICKET_REJECTED, then HS_INIT")
    assert.equal(f.dhCount.n, dh0, "no X25519")
    assert.equal(f.logs.filter(l => l.outcome === "generations-exhausted").length, 3)
    assert.equal((await f.registry.getDevice(rec.id))?.issued_generation, MAX_GENERATION, "the counter never passes 2^32 - 1")
    assert.equal(f.gw.stats.connections, 0)
})

test("MemoryRegistry: confirmSession refuses to pass 2^32 - 1", async () => {
    assert.equal(MAX_GENERATION, UINT32_MAX)
    const r = new MemoryRegistry()
    const d = newDevice({ id: "00".repeat(8), name: "top", publicKey: Buffer.alloc(32, 1), psk: Buffer.alloc(32, 2), now: 0 })
    await r.putDevice({ ...d, issued_generation: MAX_GENERATION - 1 })
    const next = { full: false, resumedGeneration: 1, nextPseudonym: Buffer.alloc(8, 3) }
    assert.equal((await r.confirmSession(d.id, next)).generation, MAX_GENERATION)
    await assert.rejects(r.confirmSession(d.id, { ...next, nextPseudonym: Buffer.alloc(8, 4) }), RangeError)
    assert.deepEqual((await r.getDevice(d.id))?.pseudonym, Buffer.alloc(8, 3), "the refusal rotated nothing")
    assert.equal((await r.getDevice(d.id))?.issued_generation, MAX_GENERATION)
})
