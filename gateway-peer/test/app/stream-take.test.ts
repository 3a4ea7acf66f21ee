// SendStream.take() under a long queue: a flush costs the messages it sends, not the queue's
// length (counted in queue entries looked at, not in time).
import { test } from "node:test"
import assert from "node:assert/strict"
import { AppKind } from "../../src/app/codec.js"
import { SendStream } from "../../src/app/stream.js"

test("take(): the work of one flush is the new messages, not the queue's length", () => {
    for (const queued of [10, 1000, 20000]) {
        const s = new SendStream({ streamId: 1 })
        s.sessionStart(true)
        for (let i = 0; i < queued; i++) s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.alloc(0) })
        assert.equal(s.take().length, queued)
        const before = s.examined
        for (let i = 0; i < 100; i++) {
            s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.alloc(0) })
            const out = s.take()
            assert.deepEqual(
                out.map(m => m.id),
                [queued + i + 1]
            )
        }
        assert.equal(s.examined - before, 100, `one entry looked at per flush with ${queued} queued`)
        // an ACK of a prefix and a flush with nothing new cost nothing either
        s.ack(queued / 2)
        const b2 = s.examined
        assert.deepEqual(s.take(), [])
        assert.equal(s.examined, b2)
        // a new session resends everything unacknowledged, in order
        s.sessionStart(true)
        const again = s.take()
        assert.equal(again.length, queued / 2 + 100)
        assert.equal(again[0]?.id, queued / 2 + 1)
        // and after a restart (renumbered from 1) the index follows the new ids
        s.restart()
        s.sessionStart(true)
        assert.deepEqual(
            s
                .take()
                .map(m => m.id)
                .slice(0, 3),
            [1, 2, 3]
        )
        s.enqueue({ kind: AppKind.MESSAGE, topic: "t", payload: Buffer.alloc(0) })
        assert.deepEqual(
            s.take().map(m => m.id),
            [queued / 2 + 101]
        )
    }
})
