// Issue 15's deferred temp_k: MixKey leaves the CipherState's key to be computed on its first
// use, so a temp_k that the next MixKey overwrites costs no HMAC. Everything observable is the
// same as the eager schedule of Noise section 5.2 (the cacophony and generated vectors check
// whole transcripts; this file checks the layer itself): the key, once used, is HKDF's second
// output; a clone shares the deferred key and stays independent; the resumption's cached
// prologue hash gives the same state as computing it.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { AESCCM } from "../../src/noise/cipher.js"
import { CipherState } from "../../src/noise/cipher-state.js"
import { SymmetricState } from "../../src/noise/symmetric-state.js"
import { hkdf2, hkdf2Deferred, hkdf3, hkdf3Deferred, sha256 } from "../../src/crypto/hash.js"

const b = (label: string): Buffer => sha256(Buffer.from(label))
const EMPTY = Buffer.alloc(0)
const NAME = "Noise_KKpsk2_25519_AESCCM_SHA256"

/** The eager schedule, written out with hkdf2/hkdf3 and initializeKey, for comparison. */
function eager(ikms: Buffer[], psk: Buffer): { ck: Buffer; cs: CipherState } {
    let ck: Buffer = Buffer.from(NAME, "ascii")
    const cs = new CipherState(AESCCM)
    for (const ikm of ikms) {
        const [c, k] = hkdf2(ck, ikm)
        ck = c
        cs.initializeKey(k)
    }
    const [c, , k] = hkdf3(ck, psk)
    cs.initializeKey(k)
    return { ck: c, cs }
}

describe("deferred temp_k (issue 15)", () => {
    test("hkdf2Deferred and hkdf3Deferred give hkdf2's and hkdf3's bytes", () => {
        const [a1, a2] = hkdf2(b("ck"), b("ikm"))
        const [d1, d2] = hkdf2Deferred(b("ck"), b("ikm"))
        assert.deepEqual(d1, a1)
        assert.deepEqual(d2(), a2)
        assert.equal(d2(), d2(), "asked again: the same output")
        const [e1, e2, e3] = hkdf3(b("ck"), b("ikm"))
        const [f1, f2, f3] = hkdf3Deferred(b("ck"), b("ikm"))
        assert.deepEqual([f1, f2, f3()], [e1, e2, e3])
    })

    test("mixKey defers the key; its first use computes HKDF's second output", () => {
        const sym = new SymmetricState(AESCCM, NAME)
        const ck0 = sym.ck
        sym.mixKey(b("e"))
        assert.equal(sym.cs.keyDeferred, true, "temp_k not computed by mixKey")
        assert.equal(sym.hasKey(), true, "HasKey() is true as soon as MixKey ran")
        const ct = sym.encryptAndHash(EMPTY)
        assert.equal(sym.cs.keyDeferred, false)
        assert.deepEqual(sym.cs.k, hkdf2(ck0, b("e"))[1])
        assert.equal(ct.length, 16)
    })

    test("five mixKeys and a mixKeyAndHash: the used key and ck are the eager schedule's", () => {
        const ikms = ["e", "es", "ss", "e2", "ee"].map(b)
        const sym = new SymmetricState(AESCCM, NAME)
        for (const ikm of ikms) sym.mixKey(ikm)
        sym.mixKeyAndHash(b("psk"))
        assert.equal(sym.cs.keyDeferred, true)
        const ref = eager(ikms, b("psk"))
        assert.deepEqual(sym.ck, ref.ck)
        const h = sym.h
        const ct = sym.encryptAndHash(Buffer.from("payload"))
        assert.deepEqual(ct, ref.cs.encryptWithAd(h, Buffer.from("payload")))
    })

    test("a clone shares the deferred key and stays independent", () => {
        const sym = new SymmetricState(AESCCM, NAME)
        sym.mixKey(b("e"))
        const c = sym.clone()
        assert.equal(c.cs.keyDeferred, true)
        const ct = c.encryptAndHash(Buffer.from("x"))
        assert.equal(sym.cs.keyDeferred, true, "the original's key is still deferred")
        assert.equal(sym.cs.n, 0)
        assert.deepEqual(sym.encryptAndHash(Buffer.from("x")), ct, "the same key and n give the same bytes")
        c.mixKey(b("other"))
        assert.notDeepEqual(c.ck, sym.ck)
    })

    test("initializeKey after a deferred key replaces it; rekey computes it first", () => {
        const cs = new CipherState(AESCCM)
        cs.initializeKeyDeferred(() => b("k1"))
        cs.initializeKey(b("k2"))
        assert.equal(cs.keyDeferred, false)
        assert.deepEqual(cs.k, b("k2"))
        const r = new CipherState(AESCCM)
        r.initializeKeyDeferred(() => b("k1"))
        const eagerCs = new CipherState(AESCCM, b("k1"))
        r.rekey()
        eagerCs.rekey()
        assert.deepEqual(r.k, eagerCs.k)
    })

    test("SymmetricState.afterMixHash is InitializeSymmetric then MixHash", () => {
        const a = new SymmetricState(AESCCM, "Tether_Resume2_AESCCM_SHA256")
        a.mixHash(b("prologue"))
        const c = SymmetricState.afterMixHash(AESCCM, "Tether_Resume2_AESCCM_SHA256", a.h)
        assert.deepEqual(c.ck, a.ck)
        assert.deepEqual(c.h, a.h)
        assert.equal(c.hasKey(), false)
    })
})
