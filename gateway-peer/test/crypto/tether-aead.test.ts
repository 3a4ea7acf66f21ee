// The generated Tether AEAD vectors: the committed file is exactly what the generator writes
// now, every valid case matches an independent computation of the rule on raw node:crypto,
// and every invalid case is rejected.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { createCipheriv, createHmac } from "node:crypto"
import { aeadDecrypt, aeadEncrypt } from "../../src/crypto/aead.js"
import { render, tetherAead, type AeadVector, type VectorFile } from "../../scripts/gen-vectors.js"
import { readVectors, h } from "../vectors.js"

const file = readVectors<VectorFile<AeadVector>>("generated", "tether-aead.json")

/** The rule written out once more, straight on node:crypto, as the brief states it. */
function reference(k: Buffer, n: number, ad: Buffer, pt: Buffer): Buffer {
    const key = createHmac("sha256", k).update(ad).digest()
    const nonce = Buffer.alloc(13)
    nonce.writeBigUInt64BE(BigInt(n), 5)
    const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
    c.setAAD(Buffer.alloc(1).subarray(0, 0), { plaintextLength: pt.length })
    const ct = Buffer.concat([c.update(pt.length > 0 ? pt : Buffer.alloc(1).subarray(0, 0)), c.final()])
    return Buffer.concat([ct, c.getAuthTag()])
}

describe("tether-aead.json", () => {
    test("the committed file is what gen-vectors writes (never edited by hand)", () => {
        const committed = readFileSync(new URL("../../../../test/vectors/generated/tether-aead.json", import.meta.url), "utf8")
        assert.equal(committed, render(tetherAead()))
        assert.equal(file.generator, "gateway-peer/scripts/gen-vectors.ts")
    })
    test("coverage: ads, plaintext sizes, counters, invalid cases", () => {
        const valid = file.tests.filter(t => t.result === "valid")
        const adLens = new Set(valid.map(t => t.ad.length / 2))
        for (const l of [0, 32]) assert.ok(adLens.has(l), `ad ${l}`)
        assert.ok([...adLens].some(l => l > 64), "a long ad")
        const ptLens = new Set(valid.map(t => t.plaintext.length / 2))
        for (const l of [0, 1, 15, 16, 17, 100, 300]) assert.ok(ptLens.has(l), `plaintext ${l}`)
        const ns = new Set(valid.map(t => t.n))
        for (const n of [0, 1, 255, 256, 2 ** 32 - 1, 2 ** 32]) assert.ok(ns.has(n), `n ${n}`)
        assert.ok(file.tests.filter(t => t.result === "invalid").length >= 10)
    })
    for (const t of file.tests)
        test(`${t.result}: ${t.comment}`, () => {
            const k = h(t.k)
            const ad = h(t.ad)
            const out = aeadDecrypt(k, t.n, ad, h(t.ciphertext))
            if (t.result === "valid") {
                assert.equal(reference(k, t.n, ad, h(t.plaintext)).toString("hex"), t.ciphertext)
                assert.equal(aeadEncrypt(k, t.n, ad, h(t.plaintext)).toString("hex"), t.ciphertext)
                assert.equal(out?.toString("hex"), t.plaintext)
            } else assert.equal(out, undefined)
        })
})
