// Issue 15: the records of a session that arrive in one turn are one batch for the application
// layer: one pass, one stored receiving state, one cumulative ACK. What must not change: every
// PUBLISH delivered once and in order, the state stored before the ACK that counts it, and a
// record that does not decode failing the session after the records before it were processed
// (exactly as record by record).
import { test } from "node:test"
import assert from "node:assert/strict"
import { AppKind, decodeApp, encodeApp, type AppMessage } from "../../src/app/codec.js"
import { GatewayApp, type AppLink } from "../../src/app/gateway-app.js"
import { parseConfig } from "../../src/app/upstream.js"
import { MemoryAppStateStore, MemoryOutbox } from "../../src/store/memory-app.js"
import type { ReceiveState } from "../../src/store/types.js"
import { Code } from "../../src/wire.js"

/** A receiving-state store that counts its writes and says what each stored. */
class CountingStore extends MemoryAppStateStore {
    readonly puts: ReceiveState[] = []
    override async put(deviceId: string, next: ReceiveState, prev: ReceiveState | undefined): Promise<boolean> {
        const ok = await super.put(deviceId, next, prev)
        if (ok) this.puts.push(next)
        return ok
    }
}

function fixture() {
    const receiving = new CountingStore()
    const app = new GatewayApp({ receiving, outbox: new MemoryOutbox(), config: parseConfig({}), lookup: async () => undefined })
    const published: number[] = []
    app.events.on("publish", e => published.push(e.id))
    const sent: AppMessage[] = []
    const closed: number[] = []
    const link: AppLink = {
        send: c => {
            for (const m of decodeApp(c, "gateway")) sent.push(m)
        },
        close: code => void closed.push(code),
    }
    const device = { id: "00000000000000b1", name: "batcher" }
    const publish = (id: number) => encodeApp({ kind: AppKind.PUBLISH, id, topic: "t", payload: Buffer.from(`p${id}`) })
    return { receiving, app, published, sent, closed, link, device, publish }
}

test("eleven records in one turn: one stored state, one ACK of the last, every PUBLISH once and in order", async () => {
    const f = fixture()
    f.app.data(f.device, encodeApp({ kind: AppKind.STREAM, streamId: 7, peerStreamId: 0, delivered: 0 }), f.link)
    for (let i = 1; i <= 10; i++) f.app.data(f.device, f.publish(i), f.link)
    await f.app.idle()
    assert.deepEqual(f.published, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.deepEqual(f.receiving.puts, [{ streamId: 7, delivered: 10 }], "one write for the batch")
    const acks = f.sent.filter(m => m.kind === AppKind.ACK)
    assert.deepEqual(
        acks.map(m => m.id),
        [10],
        "one cumulative ACK"
    )
    assert.equal(f.sent[0]?.kind, AppKind.STREAM, "the gateway's STREAM first")
    // the next turn is a batch of its own; a duplicate in it is acknowledged, not delivered again
    f.app.data(f.device, f.publish(10), f.link)
    f.app.data(f.device, f.publish(11), f.link)
    await f.app.idle()
    assert.deepEqual(f.published.slice(10), [11])
    assert.deepEqual(f.receiving.puts.at(-1), { streamId: 7, delivered: 11 })
    assert.equal(f.receiving.puts.length, 2)
    assert.equal(f.sent.filter(m => m.kind === AppKind.ACK).at(-1)?.id, 11)
    assert.deepEqual(f.closed, [])
})

test("a record that does not decode in the middle of a batch: the ones before it are stored and acknowledged, then the session closes", async () => {
    const f = fixture()
    f.app.data(f.device, encodeApp({ kind: AppKind.STREAM, streamId: 9, peerStreamId: 0, delivered: 0 }), f.link)
    f.app.data(f.device, f.publish(1), f.link)
    f.app.data(f.device, f.publish(2), f.link)
    f.app.data(f.device, Buffer.from([0xee, 0, 0, 0, 1, 0, 0]), f.link) // an unknown kind
    f.app.data(f.device, f.publish(3), f.link)
    await f.app.idle()
    assert.deepEqual(f.published, [1, 2])
    assert.deepEqual(f.receiving.puts, [{ streamId: 9, delivered: 2 }])
    assert.equal(f.sent.filter(m => m.kind === AppKind.ACK).at(-1)?.id, 2, "what was stored is acknowledged")
    assert.deepEqual(f.closed, [Code.PROTOCOL_ERROR])
})

test("two sessions' records in one turn are two batches, each on its own link", async () => {
    const f = fixture()
    const other: AppMessage[] = []
    const link2: AppLink = { send: c => void other.push(...decodeApp(c, "gateway")), close: () => {} }
    f.app.data(f.device, encodeApp({ kind: AppKind.STREAM, streamId: 4, peerStreamId: 0, delivered: 0 }), f.link)
    f.app.data(f.device, f.publish(1), f.link)
    // the device reconnected: its new session's STREAM continues the same receiving state
    f.app.data(f.device, encodeApp({ kind: AppKind.STREAM, streamId: 4, peerStreamId: 0, delivered: 0 }), link2)
    f.app.data(f.device, f.publish(1), link2)
    f.app.data(f.device, f.publish(2), link2)
    await f.app.idle()
    assert.deepEqual(f.published, [1, 2], "the resent PUBLISH 1 is a duplicate")
    assert.equal(f.receiving.puts.length, 2)
    assert.equal(other.filter(m => m.kind === AppKind.ACK).at(-1)?.id, 2)
    assert.equal(f.sent.filter(m => m.kind === AppKind.ACK).at(-1)?.id, 1)
})
