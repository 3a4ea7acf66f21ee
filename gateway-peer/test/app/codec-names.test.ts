// Names (topics and routes) are decoded exactly as their bytes say: PROTOCOL.md 12 carries them
// as UTF-8, and a leading U+FEFF is a character of the name, not a byte-order mark.
import { test } from "node:test"
import assert from "node:assert/strict"
import { AppKind, decodeApp, encodeApp } from "../../src/app/codec.js"

test("codec: a leading U+FEFF in a route or topic is kept, not stripped as a BOM", () => {
    const req = encodeApp({ kind: AppKind.REQUEST, id: 1, route: "\ufeffweat", payload: Buffer.from("x") })
    const [r] = decodeApp(req, "device")
    assert.ok(r?.kind === AppKind.REQUEST)
    assert.equal(r.route, "\ufeffweat", "a different route than 'weat'")
    assert.notEqual(r.route, "weat")
    const msg = encodeApp({ kind: AppKind.MESSAGE, id: 1, topic: "\ufeff\ufefft", payload: Buffer.alloc(0) })
    const [m] = decodeApp(msg, "gateway")
    assert.ok(m?.kind === AppKind.MESSAGE)
    assert.equal(m.topic, "\ufeff\ufefft")
})
