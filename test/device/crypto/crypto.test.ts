// Device symmetric crypto against published vectors: RFC 4231 (HMAC-SHA-256), RFC 5869
// (HKDF-SHA-256), Noise HKDF against RFC 5869, the AES-256-CCM cases with empty AAD, and
// Tether's AEAD rule (round trip and tampering).
// @timeout 30000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { sha256, hmacSha256, hkdf2, hkdf3, hkdfSha256, constantTimeEqual } from "../../../src/crypto/hash"
import { aeadEncrypt, aeadDecrypt, aeadNonce, ccmEncrypt, ccmDecrypt, TAG_LEN } from "../../../src/crypto/aead"
import { randomBytes } from "../../../src/crypto/random"
import { HMAC_SHA256 } from "../vectors/hmac-sha256"
import { HKDF_SHA256 } from "../vectors/hkdf-sha256"
import { AES256CCM } from "../vectors/aes256ccm"

const h = (s: string) => Buffer.from(s, "hex")
const EMPTY = Buffer.alloc(0)

function flip(b: Buffer, i: number): Buffer {
    const c = b.slice(0)
    c[i] ^= 0x01
    return c
}

describe("sha256", () => {
    test("FIPS 180-2 'abc' and the empty string", () => {
        expect(sha256(Buffer.from("abc")).toString("hex")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        expect(sha256().toString("hex")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        expect(sha256(Buffer.from("a"), Buffer.from("bc")).toString("hex")).toBe(sha256(Buffer.from("abc")).toString("hex"))
    })
})

describe("hmacSha256 (RFC 4231)", () => {
    test("every case", () => {
        expect(HMAC_SHA256.length > 0).toBe(true)
        for (const v of HMAC_SHA256) {
            const mac = hmacSha256(h(v.key), h(v.data)).toString("hex")
            // RFC 4231 case 5 is truncated to 128 bits: compare a prefix of the vector's length
            expect(mac.slice(0, v.mac.length)).toBe(v.mac)
        }
    })
    test("data given in pieces equals data in one piece", () => {
        const v = HMAC_SHA256[1]
        const d = h(v.data)
        expect(hmacSha256(h(v.key), d.slice(0, 3), d.slice(3)).toString("hex")).toBe(v.mac)
    })
})

describe("hkdfSha256 (RFC 5869 A.1-A.3)", () => {
    test("every case", () => {
        expect(HKDF_SHA256.length).toBe(3)
        for (const v of HKDF_SHA256) {
            const okm = hkdfSha256(h(v.ikm), h(v.salt), h(v.info), v.L)
            expect(okm.toString("hex")).toBe(v.okm)
            // PRK = HMAC(salt, IKM) (RFC 5869 section 2.2)
            expect(hmacSha256(h(v.salt), h(v.ikm)).toString("hex")).toBe(v.prk)
        }
    })
    test("bad lengths throw", () => {
        expect(() => hkdfSha256(EMPTY, EMPTY, EMPTY, 0)).toThrow()
        expect(() => hkdfSha256(EMPTY, EMPTY, EMPTY, 255 * 32 + 1)).toThrow()
    })
})

describe("Noise HKDF (rev 34 section 4.3)", () => {
    test("hkdf2/hkdf3 equal RFC 5869 with salt = ck and empty info", () => {
        for (const v of HKDF_SHA256) {
            const ck = sha256(h(v.salt)) // any 32-byte chaining key
            const ikm = h(v.ikm)
            const two = hkdf2(ck, ikm)
            const three = hkdf3(ck, ikm)
            const ref64 = hkdfSha256(ikm, ck, EMPTY, 64).toString("hex")
            const ref96 = hkdfSha256(ikm, ck, EMPTY, 96).toString("hex")
            expect(two.length).toBe(2)
            expect(three.length).toBe(3)
            expect(two[0].toString("hex") + two[1].toString("hex")).toBe(ref64)
            expect(three[0].toString("hex") + three[1].toString("hex") + three[2].toString("hex")).toBe(ref96)
        }
    })
    test("empty ikm (Noise Split) and the ck is not modified", () => {
        const ck = sha256(Buffer.from("ck"))
        const before = ck.toString("hex")
        const out = hkdf2(ck, EMPTY)
        expect(out[0].toString("hex") + out[1].toString("hex")).toBe(hkdfSha256(EMPTY, ck, EMPTY, 64).toString("hex"))
        expect(ck.toString("hex")).toBe(before)
    })
})

describe("constantTimeEqual", () => {
    test("equal, different, different lengths", () => {
        expect(constantTimeEqual(h("00ff10"), h("00ff10"))).toBe(true)
        expect(constantTimeEqual(h("00ff10"), h("00ff11"))).toBe(false)
        expect(constantTimeEqual(h("80ff10"), h("00ff10"))).toBe(false)
        expect(constantTimeEqual(h("00ff"), h("00ff10"))).toBe(false)
        expect(constantTimeEqual(EMPTY, EMPTY)).toBe(true)
    })
})

describe("AES-256-CCM (empty AAD cases)", () => {
    test("every case", () => {
        expect(AES256CCM.length > 0).toBe(true)
        let valid = 0
        let invalid = 0
        for (const v of AES256CCM) {
            expect(v.aad).toBe("")
            const key = h(v.key)
            const nonce = h(v.nonce)
            const sealed = h(v.ct + v.tag)
            if (v.result === "valid") {
                valid++
                expect(ccmEncrypt(key, nonce, h(v.msg)).toString("hex")).toBe(v.ct + v.tag)
                const pt = ccmDecrypt(key, nonce, sealed)
                expect(pt === undefined).toBe(false)
                expect(pt.toString("hex")).toBe(v.msg)
            } else {
                invalid++
                expect(ccmDecrypt(key, nonce, sealed) === undefined).toBe(true)
            }
        }
        expect(valid > 0).toBe(true)
        expect(invalid > 0).toBe(true)
    })
    test("short or tampered input gives undefined, never an exception", () => {
        const key = randomBytes(32)
        const nonce = randomBytes(13)
        const sealed = ccmEncrypt(key, nonce, Buffer.from("hello"))
        expect(ccmDecrypt(key, nonce, sealed.slice(0, TAG_LEN - 1)) === undefined).toBe(true)
        expect(ccmDecrypt(key, nonce, EMPTY) === undefined).toBe(true)
        expect(ccmDecrypt(key, nonce, flip(sealed, 0)) === undefined).toBe(true)
        expect(ccmDecrypt(key, nonce, flip(sealed, sealed.length - 1)) === undefined).toBe(true)
    })
    test("wrong key or nonce length is a caller bug and throws", () => {
        expect(() => ccmEncrypt(Buffer.alloc(16), Buffer.alloc(13), EMPTY)).toThrow()
        expect(() => ccmEncrypt(Buffer.alloc(32), Buffer.alloc(12), EMPTY)).toThrow()
        expect(() => ccmDecrypt(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(16))).toThrow()
    })
})

describe("aeadNonce", () => {
    test("layout: 5 zero bytes || uint64_be(n)", () => {
        expect(aeadNonce(0).toString("hex")).toBe("00000000000000000000000000")
        expect(aeadNonce(1).toString("hex")).toBe("00000000000000000000000001")
        expect(aeadNonce(0x80000000).toString("hex")).toBe("00000000000000000080000000")
        expect(aeadNonce(4294967295).toString("hex")).toBe("000000000000000000ffffffff")
        expect(aeadNonce(4294967296).toString("hex")).toBe("00000000000000000100000000")
        expect(aeadNonce(4294967296 * 0x12345 + 0xdeadbeef).toString("hex")).toBe("000000000000012345deadbeef")
        expect(aeadNonce(9007199254740991).toString("hex")).toBe("0000000000001fffffffffffff")
    })
    test("out of range or not an integer throws RangeError", () => {
        expect(() => aeadNonce(-1)).toThrow()
        expect(() => aeadNonce(9007199254740992)).toThrow()
        expect(() => aeadNonce(1.5)).toThrow()
        expect(() => aeadNonce(NaN)).toThrow()
        expect(() => aeadNonce(Infinity)).toThrow()
    })
})

describe("Tether AEAD rule", () => {
    const k = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    const ad = Buffer.from("transcript hash")
    const pt = Buffer.from("the quick brown fox")

    test("equals CCM under HMAC(k, ad) with the counter nonce", () => {
        const sealed = aeadEncrypt(k, 7, ad, pt)
        expect(sealed.length).toBe(pt.length + TAG_LEN)
        expect(sealed.toString("hex")).toBe(ccmEncrypt(hmacSha256(k, ad), aeadNonce(7), pt).toString("hex"))
    })
    test("round trip, also with empty ad and empty plaintext", () => {
        expect(aeadDecrypt(k, 7, ad, aeadEncrypt(k, 7, ad, pt)).toString("hex")).toBe(pt.toString("hex"))
        expect(aeadDecrypt(k, 0, EMPTY, aeadEncrypt(k, 0, EMPTY, pt)).toString("hex")).toBe(pt.toString("hex"))
        const e = aeadEncrypt(k, 3, ad, EMPTY)
        expect(e.length).toBe(TAG_LEN)
        expect(aeadDecrypt(k, 3, ad, e).length).toBe(0)
    })
    test("tampering gives undefined", () => {
        const sealed = aeadEncrypt(k, 7, ad, pt)
        expect(aeadDecrypt(k, 7, ad, flip(sealed, 0)) === undefined).toBe(true) // ct
        expect(aeadDecrypt(k, 7, ad, flip(sealed, sealed.length - 1)) === undefined).toBe(true) // tag
        expect(aeadDecrypt(k, 8, ad, sealed) === undefined).toBe(true) // wrong n
        expect(aeadDecrypt(k, 7, Buffer.from("transcript hasH"), sealed) === undefined).toBe(true) // wrong ad
        expect(aeadDecrypt(k, 7, EMPTY, sealed) === undefined).toBe(true) // ad dropped
        expect(aeadDecrypt(flip(k, 31), 7, ad, sealed) === undefined).toBe(true) // wrong k
        expect(aeadDecrypt(k, 7, ad, sealed.slice(0, sealed.length - 1)) === undefined).toBe(true) // truncated
        expect(aeadDecrypt(k, 7, ad, sealed.slice(0, TAG_LEN - 1)) === undefined).toBe(true) // shorter than a tag
        expect(aeadDecrypt(k, 7, ad, EMPTY) === undefined).toBe(true)
        // and the genuine one still opens
        expect(aeadDecrypt(k, 7, ad, sealed).toString("hex")).toBe(pt.toString("hex"))
    })
    test("random round trips", async () => {
        for (let i = 0; i < 20; i++) {
            const kk = randomBytes(32)
            const a = randomBytes(i)
            const m = randomBytes(i * 7)
            const n = i * 1000003
            expect(aeadDecrypt(kk, n, a, aeadEncrypt(kk, n, a, m)).toString("hex")).toBe(m.toString("hex"))
            await ds.sleep(0)
        }
    })
})
