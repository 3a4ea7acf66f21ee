// Issue 15: keys imported into node:crypto once. A device's static public key is interned (one
// Buffer per value, so its KeyObject is made once per device, not per handshake), bounded; a
// public key Buffer changed in place is imported again, never served from a stale KeyObject.
import { test } from "node:test"
import assert from "node:assert/strict"
import { generateKeyPair, internPublicKey, INTERNED_PUBLIC_KEYS_MAX, x25519 } from "../../src/crypto/x25519.js"

test("internPublicKey: one Buffer per value, a copy of the caller's", () => {
    const p = generateKeyPair().publicKey
    const a = internPublicKey(Buffer.from(p))
    const b = internPublicKey(Buffer.from(p))
    assert.equal(a, b, "the same Buffer for the same value")
    assert.deepEqual(a, p)
    assert.notEqual(internPublicKey(generateKeyPair().publicKey), a)
    assert.throws(() => internPublicKey(Buffer.alloc(31)), TypeError)
})

test("internPublicKey is bounded: the least recently used key goes first", () => {
    const first = generateKeyPair().publicKey
    const kept = internPublicKey(first)
    const filler = Buffer.alloc(32)
    for (let i = 0; i < INTERNED_PUBLIC_KEYS_MAX; i++) {
        filler.writeUInt32BE(i, 0)
        internPublicKey(filler)
    }
    assert.notEqual(internPublicKey(first), kept, "evicted, then interned afresh")
})

test("x25519 with an interned or reused public key gives the uncached result", () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const expect = x25519(b.privateKey, Buffer.from(a.publicKey))
    const rs = internPublicKey(a.publicKey)
    assert.deepEqual(x25519(b.privateKey, rs), expect)
    assert.deepEqual(x25519(b.privateKey, rs), expect, "second use: the cached KeyObject")
})

test("a public key Buffer changed in place is imported again", () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const c = generateKeyPair()
    const u = Buffer.from(a.publicKey)
    const first = x25519(b.privateKey, u)
    c.publicKey.copy(u) // the same Buffer object, other bytes
    assert.deepEqual(x25519(b.privateKey, u), x25519(b.privateKey, Buffer.from(c.publicKey)))
    assert.notDeepEqual(x25519(b.privateKey, u), first)
})
