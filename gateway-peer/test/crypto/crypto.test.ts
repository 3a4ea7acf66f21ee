// The gateway's crypto suite against published vectors: RFC 7748 and Wycheproof (X25519),
// Wycheproof/NIST AES-256-CCM, RFC 4231 (HMAC), RFC 5869 (HKDF), plus the AEAD rule's
// failure cases (a flipped byte anywhere, wrong n/ad/key, truncation).
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { hkdfSync, createHmac } from "node:crypto"
import { x25519, x25519Base, generateKeyPair } from "../../src/crypto/x25519.js"
import { sha256, hmacSha256, hkdf2, hkdf3, hkdfSha256, constantTimeEqual } from "../../src/crypto/hash.js"
import { aeadEncrypt, aeadDecrypt, aeadNonce, aeadRekey, ccmEncrypt, ccmDecrypt, TAG_LEN } from "../../src/crypto/aead.js"
import { randomBytes } from "../../src/crypto/random.js"
import { AESCCM } from "../../src/noise/cipher.js"
import { AESGCM } from "../../reference/aesgcm.js"
import { readVectors, h } from "../vectors.js"

const LOW_ORDER = /x25519: all-zero shared secret \(low-order point\)$/

interface Rfc7748 {
    scalarmult: { scalar: string; u: string; out: string }[]
    iterated: { start: string; after_1: string; after_1000: string }
    dh: { alice_private: string; alice_public: string; bob_private: string; bob_public: string; shared: string }
}

describe("x25519: RFC 7748", () => {
    const v = readVectors<Rfc7748>("published", "x25519-rfc7748.json")
    for (const [i, t] of v.scalarmult.entries())
        test(`scalar multiplication ${i + 1} (section 5.2)`, () => {
            assert.equal(x25519(h(t.scalar), h(t.u)).toString("hex"), t.out)
        })
    const iterate = (count: number): string => {
        let k = h(v.iterated.start)
        let u = h(v.iterated.start)
        for (let i = 0; i < count; i++) [k, u] = [x25519(k, u), k]
        return k.toString("hex")
    }
    test("iterated ladder, 1 iteration", () => assert.equal(iterate(1), v.iterated.after_1))
    test("iterated ladder, 1000 iterations", () => assert.equal(iterate(1000), v.iterated.after_1000))
    test("Alice and Bob (section 6.1)", () => {
        const d = v.dh
        assert.equal(x25519Base(h(d.alice_private)).toString("hex"), d.alice_public)
        assert.equal(x25519Base(h(d.bob_private)).toString("hex"), d.bob_public)
        assert.equal(x25519(h(d.alice_private), h(d.bob_public)).toString("hex"), d.shared)
        assert.equal(x25519(h(d.bob_private), h(d.alice_public)).toString("hex"), d.shared)
    })
})

interface WycheproofX25519 {
    tests: { tcId: number; flags: string[]; public: string; private: string; shared: string; result: string }[]
}

describe("x25519: Wycheproof", () => {
    const v = readVectors<WycheproofX25519>("published", "x25519-wycheproof.json")
    test("the file holds all 518 cases", () => assert.equal(v.tests.length, 518))
    test("every case: the shared secret, or the low-order error when it is all zero", () => {
        let zero = 0
        for (const t of v.tests) {
            const isZero = /^0+$/.test(t.shared)
            assert.equal(isZero, t.flags.includes("ZeroSharedSecret"), `tcId ${t.tcId}: flag`)
            assert.ok(t.result === "valid" || t.result === "acceptable", `tcId ${t.tcId}: result ${t.result}`)
            if (isZero) {
                zero++
                assert.throws(() => x25519(h(t.private), h(t.public)), LOW_ORDER, `tcId ${t.tcId}`)
            } else assert.equal(x25519(h(t.private), h(t.public)).toString("hex"), t.shared, `tcId ${t.tcId}`)
        }
        assert.equal(zero, 31)
    })
})

describe("x25519: API edge", () => {
    test("generateKeyPair agrees with x25519Base and makes a working pair", () => {
        const a = generateKeyPair()
        const b = generateKeyPair()
        assert.deepEqual(x25519Base(a.privateKey), a.publicKey)
        assert.deepEqual(x25519(a.privateKey, b.publicKey), x25519(b.privateKey, a.publicKey))
    })
    test("generateKeyPair uses an injected RNG", () => {
        const kp = generateKeyPair(n => Buffer.alloc(n, 7))
        assert.deepEqual(kp.privateKey, Buffer.alloc(32, 7))
    })
    test("wrong lengths are rejected", () => {
        assert.throws(() => x25519(Buffer.alloc(31), Buffer.alloc(32, 9)), TypeError)
        assert.throws(() => x25519(Buffer.alloc(32, 1), Buffer.alloc(33)), TypeError)
        assert.throws(() => x25519Base(Buffer.alloc(0)), TypeError)
    })
    test("the all-zero u is rejected", () => {
        assert.throws(() => x25519(randomBytes(32), Buffer.alloc(32)), LOW_ORDER)
    })
})

interface Ccm {
    tests: { source: string; key: string; nonce: string; aad: string; msg: string; ct: string; tag: string; result: string }[]
}

describe("AES-256-CCM (Wycheproof, NIST)", () => {
    const v = readVectors<Ccm>("published", "aes256ccm.json")
    for (const t of v.tests)
        test(`${t.source} (${t.result}${t.aad === "" ? ", no aad" : ""})`, () => {
            const sealed = h(t.ct + t.tag)
            const opened = ccmDecrypt(h(t.key), h(t.nonce), sealed, h(t.aad))
            if (t.result === "valid") {
                assert.equal(opened?.toString("hex"), t.msg)
                assert.equal(ccmEncrypt(h(t.key), h(t.nonce), h(t.msg), h(t.aad)).toString("hex"), t.ct + t.tag)
            } else assert.equal(opened, undefined)
        })
})

describe("HMAC-SHA-256 (RFC 4231)", () => {
    const v = readVectors<{ tests: { key: string; data: string; mac: string }[] }>("published", "hmac-sha256.json")
    for (const [i, t] of v.tests.entries())
        test(`case ${i + 1}`, () => {
            assert.equal(hmacSha256(h(t.key), h(t.data)).toString("hex"), t.mac)
            // split input: the variadic form hashes the concatenation
            const d = h(t.data)
            assert.equal(hmacSha256(h(t.key), d.subarray(0, 3), d.subarray(3)).toString("hex"), t.mac)
        })
    test("sha256 of the concatenation", () => {
        assert.equal(
            sha256(Buffer.from("ab"), Buffer.from("c")).toString("hex"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
    })
})

interface Hkdf {
    tests: { ikm: string; salt: string; info: string; L: number; prk: string; okm: string }[]
}

describe("HKDF (RFC 5869) and Noise's HKDF", () => {
    const v = readVectors<Hkdf>("published", "hkdf-sha256.json")
    for (const [i, t] of v.tests.entries()) {
        test(`RFC 5869 A.${i + 1}: hkdfSha256 and the PRK`, () => {
            assert.equal(hkdfSha256(h(t.ikm), h(t.salt), h(t.info), t.L).toString("hex"), t.okm)
            // Noise's temp_key is the RFC 5869 PRK: HMAC(salt = ck, ikm); an empty salt is
            // HashLen zeros, and HMAC pads short keys with zeros, so the two agree.
            assert.equal(hmacSha256(h(t.salt), h(t.ikm)).toString("hex"), t.prk)
        })
    }
    test("RFC 5869 A.3 (empty salt and info) is a prefix of hkdf2(empty ck, ikm)", () => {
        const t = v.tests[2]
        assert.ok(t !== undefined && t.info === "")
        assert.equal(
            Buffer.concat(hkdf2(h(t.salt), h(t.ikm)))
                .subarray(0, t.L)
                .toString("hex"),
            t.okm
        )
    })
    test("hkdf2/hkdf3 = RFC 5869 with salt = ck, info empty, L = 64/96 (node:crypto hkdfSync)", () => {
        for (const ikmLen of [0, 32, 32, 17]) {
            const ck = randomBytes(32)
            const ikm = randomBytes(ikmLen)
            const ref = Buffer.from(hkdfSync("sha256", ikm, ck, Buffer.alloc(0), 96))
            const two = hkdf2(ck, ikm)
            const three = hkdf3(ck, ikm)
            assert.deepEqual(Buffer.concat(two), ref.subarray(0, 64))
            assert.deepEqual(Buffer.concat(three), ref)
            for (const out of [...two, ...three]) assert.equal(out.length, 32)
        }
    })
    test("hkdf2 step by step as section 4.3 says", () => {
        const ck = randomBytes(32)
        const ikm = randomBytes(32)
        const temp = createHmac("sha256", ck).update(ikm).digest()
        const o1 = createHmac("sha256", temp)
            .update(Buffer.from([1]))
            .digest()
        const o2 = createHmac("sha256", temp)
            .update(Buffer.concat([o1, Buffer.from([2])]))
            .digest()
        assert.deepEqual(hkdf2(ck, ikm), [o1, o2])
    })
    test("constantTimeEqual", () => {
        assert.equal(constantTimeEqual(h("0102"), h("0102")), true)
        assert.equal(constantTimeEqual(h("0102"), h("0103")), false)
        assert.equal(constantTimeEqual(h("0102"), h("010200")), false)
        assert.equal(constantTimeEqual(Buffer.alloc(0), Buffer.alloc(0)), true)
    })
})

describe("Tether AEAD rule", () => {
    const k = sha256(Buffer.from("aead test key"))
    const ad = sha256(Buffer.from("aead test ad"))
    const pt = Buffer.from("the quick brown fox jumps over the lazy dog")

    test("nonce: 5 zero bytes || uint64_be(n)", () => {
        assert.equal(aeadNonce(0).toString("hex"), "00000000000000000000000000")
        assert.equal(aeadNonce(0x0102).toString("hex"), "00000000000000000000000102")
        assert.equal(aeadNonce(2 ** 32).toString("hex"), "00000000000000000100000000")
        assert.equal(aeadNonce(Number.MAX_SAFE_INTEGER).toString("hex"), "0000000000001fffffffffffff")
        for (const bad of [-1, 1.5, 2 ** 53, NaN, Infinity]) assert.throws(() => aeadNonce(bad), RangeError)
    })
    test("the rule as written: CCM under HMAC(k, ad) with the counter nonce", () => {
        const ct = aeadEncrypt(k, 5, ad, pt)
        assert.deepEqual(ct, ccmEncrypt(hmacSha256(k, ad), aeadNonce(5), pt))
        assert.equal(ct.length, pt.length + TAG_LEN)
    })
    test("round trip, including empty ad and empty plaintext", () => {
        for (const [a, p] of [
            [ad, pt],
            [Buffer.alloc(0), pt],
            [ad, Buffer.alloc(0)],
            [Buffer.alloc(0), Buffer.alloc(0)],
        ] as const)
            assert.deepEqual(aeadDecrypt(k, 7, a, aeadEncrypt(k, 7, a, p)), p)
    })
    test("a flipped bit in any byte of ciphertext or tag is rejected", () => {
        const ct = aeadEncrypt(k, 1, ad, pt)
        for (let i = 0; i < ct.length; i++) {
            const bad = Buffer.from(ct)
            bad[i] = (bad[i] ?? 0) ^ 0x01
            assert.equal(aeadDecrypt(k, 1, ad, bad), undefined, `byte ${i}`)
        }
    })
    test("wrong n, wrong ad, wrong key, truncated, extended, too short: undefined", () => {
        const ct = aeadEncrypt(k, 1, ad, pt)
        assert.equal(aeadDecrypt(k, 2, ad, ct), undefined)
        assert.equal(aeadDecrypt(k, 1, Buffer.alloc(0), ct), undefined)
        assert.equal(aeadDecrypt(k, 1, ad.subarray(1), ct), undefined)
        assert.equal(aeadDecrypt(sha256(k), 1, ad, ct), undefined)
        assert.equal(aeadDecrypt(k, 1, ad, ct.subarray(0, ct.length - 1)), undefined)
        assert.equal(aeadDecrypt(k, 1, ad, Buffer.concat([ct, Buffer.alloc(1)])), undefined)
        assert.equal(aeadDecrypt(k, 1, ad, ct.subarray(0, TAG_LEN - 1)), undefined)
        assert.equal(aeadDecrypt(k, 1, ad, Buffer.alloc(0)), undefined)
        assert.equal(aeadDecrypt(k, 1, ad, aeadEncrypt(k, 1, ad, Buffer.alloc(0)).subarray(1)), undefined)
    })
    test("caller errors throw without key material in the message", () => {
        assert.throws(
            () => aeadEncrypt(Buffer.alloc(16), 0, ad, pt),
            (e: Error) => e instanceof TypeError && !e.message.includes("00")
        )
        assert.throws(() => aeadDecrypt(k, -1, ad, pt), RangeError)
    })
    test("empty inputs whose backing store is unallocated (node passes NULL to OpenSSL)", () => {
        // Reading `.buffer` of a zero-length Buffer leaves it with a NULL data pointer; raw
        // node:crypto CCM then skips the MAC (encrypt throws, decrypt accepts any tag).
        const nullEmpty = (): Buffer => {
            const b = Buffer.alloc(0)
            void b.buffer
            return b
        }
        const ref = aeadEncrypt(k, 3, Buffer.alloc(0), Buffer.from("x").subarray(0, 0))
        assert.deepEqual(aeadEncrypt(k, 3, nullEmpty(), nullEmpty()), ref)
        assert.deepEqual(aeadDecrypt(k, 3, nullEmpty(), ref), Buffer.alloc(0))
        const forged = Buffer.from(ref)
        forged[0] = (forged[0] ?? 0) ^ 1
        assert.equal(aeadDecrypt(k, 3, nullEmpty(), forged), undefined)
        const key = hmacSha256(k, Buffer.alloc(0))
        assert.equal(ccmDecrypt(key, aeadNonce(3), forged, nullEmpty()), undefined)
        for (const cipher of [AESGCM, AESCCM]) {
            const ct = cipher.encrypt(k, 9, nullEmpty(), nullEmpty())
            assert.deepEqual(cipher.decrypt(k, 9, nullEmpty(), ct), Buffer.alloc(0), cipher.name)
            const bad = Buffer.from(ct)
            bad[15] = (bad[15] ?? 0) ^ 1
            assert.equal(cipher.decrypt(k, 9, nullEmpty(), bad), undefined, cipher.name)
        }
    })
    test("rekey = first 32 bytes of ENCRYPT(k, 2^64 - 1, empty, zeros32)", () => {
        const nonce = Buffer.concat([Buffer.alloc(5), Buffer.alloc(8, 0xff)])
        const expect = ccmEncrypt(hmacSha256(k, Buffer.alloc(0)), nonce, Buffer.alloc(32)).subarray(0, 32)
        assert.deepEqual(aeadRekey(k), expect)
        assert.notDeepEqual(aeadRekey(k), k)
    })
})
