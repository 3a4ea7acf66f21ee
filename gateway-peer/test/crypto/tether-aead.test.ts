// The generated Tether AEAD vectors (devs/gen/aead-vectors.mjs, on @noble/hashes; that the
// committed file is what it writes is checked in test/devs/): every valid case matches the
// gateway and an independent computation of the rule on raw node:crypto, and every invalid case
// is rejected.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { createCipheriv, createHmac } from "node:crypto"
import { aeadDecrypt, aeadEncrypt } from "../../src/crypto/aead.js"
import { readVectors, h } from "../vectors.js"

/** One case of tether-aead.json. */
interface AeadVector {
    comment: string
    k: string
    n: number
    ad: string
    plaintext: string
    ciphertext: string
    result: "valid" | "invalid"
}

/** The generated file. */
interface VectorFile<T> {
    generator: string
    rule: string
    tests: T[]
}

const file = readVectors<VectorFile<AeadVector>>("generated", "tether-aead.json")

/** The rule written out once more, straight on node:crypto, as PROTOCOL.md 3.1 states it. */
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
    test("the committed file names its generator (never edited by hand)", () => {
        assert.equal(file.generator, "devs/gen/aead-vectors.mjs")
    })
    test("coverage: ads, plaintext sizes, counters, invalid cases", () => {
        const valid = file.tests.filter(t => t.result === "valid")
        const adLens = new Set(valid.map(t => t.ad.length / 2))
        for (const l of [0, 32]) assert.ok(adLens.has(l), `ad ${l}`)
        assert.ok(
            [...adLens].some(l => l > 64),
            "a long ad"
        )
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
