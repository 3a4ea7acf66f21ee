// Sessions of one device (PROTOCOL.md 12.1): what is per session (its STREAM seen, its link,
// its errors) stays with that session; what is per device (the receiving state of the
// device's stream, the gateway's sending queue) is continued by every session. The server may
// keep more than one live session per device or only one: both must hold.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { AppKind, encodeApp } from "../../src/app/codec.js"
import { GatewayApp } from "../../src/app/gateway-app.js"
import { parseConfig } from "../../src/app/upstream.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"
import { Code } from "../../src/wire.js"
import { type AppFixture, appFixture, FakeLink, until, memoryStores } from "./app-helpers.js"

const cleanup: (() => Promise<void> | void)[] = []
after(async () => {
    for (const c of cleanup.reverse()) await c()
})

async function fx(): Promise<AppFixture> {
    const f = await appFixture()
    cleanup.push(() => f.close())
    return f
}

test("through the server: a PUBLISH without STREAM first in a second session is a protocol error, not delivered", async () => {
    const f = await fx()
    const p = await f.pair("twice")
    const got: string[] = []
    f.g.app.events.on("publish", e => got.push(`${e.id}:${e.payload.toString()}`))
    // session A: the device as it should be (STREAM as early data, then PUBLISH 1)
    const a = f.device(p)
    await a.connect()
    a.publish("t", Buffer.from("a1"))
    await a.settled()
    assert.deepEqual(got, ["1:a1"])

    // session B of the same device (a full handshake on a second connection) sends the next
    // id of the device's stream, but no STREAM first
    const b = await new TetherClient({
        pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: f.identity.publicKey },
        store: new MemoryTicketStore(),
        host: "127.0.0.1",
        port: f.g.gateway.port,
        timeoutMs: 5000,
    }).connect()
    b.send(encodeApp({ kind: AppKind.PUBLISH, id: 2, topic: "t", payload: Buffer.from("b-no-stream") }))
    const end = Date.now() + 5000
    while (Date.now() < end && (await b.recv(500)) !== null) {}
    assert.equal(b.closeCode, Code.PROTOCOL_ERROR, "session B is closed with PROTOCOL_ERROR")
    assert.deepEqual(got, ["1:a1"], "B's PUBLISH was not delivered: A's STREAM is not B's")
    assert.ok(f.logs.some(l => l.outcome === "protocol-error" && l.device === "twice" && /before STREAM/.test(String(l.detail))))

    // the device's stream state is the device's: its next session continues at id 2
    await a.ended()
    await a.connect()
    a.publish("t", Buffer.from("a2"))
    await a.settled()
    assert.deepEqual(got, ["1:a1", "2:a2"])
    await a.close()
    assert.ok(await until(() => f.g.gateway.stats.sessions === 0))
})

const device = { id: "00cc00cc00cc00cc", name: "dual" }
const stream = (delivered = 0, peer = 0) => encodeApp({ kind: AppKind.STREAM, streamId: 31, peerStreamId: peer, delivered })
const pub = (id: number) => encodeApp({ kind: AppKind.PUBLISH, id, topic: "t", payload: Buffer.from(`p${id}`) })

test("an error in one session closes that session only; the other keeps its flags and the gateway's stream", async () => {
    const app = new GatewayApp({ ...memoryStores(), config: parseConfig({}), lookup: async () => device })
    const got: number[] = []
    app.events.on("publish", e => got.push(e.id))
    const a = new FakeLink()
    const b = new FakeLink()
    app.data(device, Buffer.concat([stream(), pub(1)]), a)
    await app.idle()
    app.data(device, pub(2), b) // B never sent STREAM
    await app.idle()
    assert.deepEqual(b.closed, [Code.PROTOCOL_ERROR])
    assert.deepEqual(a.closed, [], "A is not B's error")
    assert.deepEqual(got, [1])
    app.data(device, pub(2), a) // A did send STREAM in its session
    await app.idle()
    assert.deepEqual(got, [1, 2])
    // the gateway's stream still goes to A
    await app.sendMessage("dual", "cmd", Buffer.from("m"))
    assert.ok(
        a.sent.some(m => m.kind === AppKind.MESSAGE && m.id === 1),
        "A still gets the gateway's messages"
    )
    // what B's session still delivers after its close is dropped
    app.data(device, Buffer.concat([stream(2), pub(3)]), b)
    await app.idle()
    assert.deepEqual(got, [1, 2])
    assert.deepEqual(b.closed, [Code.PROTOCOL_ERROR])
})

test("a second session's STREAM takes the gateway's stream over; the first session's messages are still acknowledged to it", async () => {
    const app = new GatewayApp({ ...memoryStores(), config: parseConfig({}), lookup: async () => device })
    const got: number[] = []
    app.events.on("publish", e => got.push(e.id))
    const a = new FakeLink()
    const b = new FakeLink()
    app.data(device, Buffer.concat([stream(), pub(1)]), a)
    await app.idle()
    app.data(device, stream(), b)
    await app.idle()
    await app.sendMessage("dual", "cmd", Buffer.from("m"))
    assert.ok(
        b.sent.some(m => m.kind === AppKind.MESSAGE),
        "the current session gets the gateway's stream"
    )
    assert.ok(!a.sent.some(m => m.kind === AppKind.MESSAGE))
    app.data(device, pub(2), a)
    await app.idle()
    assert.deepEqual(got, [1, 2])
    assert.deepEqual(
        a.sent.filter(m => m.kind === AppKind.ACK).map(m => m.id),
        [1, 2],
        "A's ACKs go to A"
    )
    assert.deepEqual([a.closed, b.closed], [[], []])
})
