// Tether's AEAD rule against the gateway's generated vectors
// (test/vectors/generated/tether-aead.json, from node:crypto): every valid case is reproduced
// byte for byte and opens; every invalid case is rejected with undefined, never an exception.
// @timeout 30000
import { describe, test, expect } from "@devicescript/test"
import { aeadEncrypt, aeadDecrypt } from "../../../src/crypto/aead"
import { TETHER_AEAD } from "../vectors/tether-aead"

const h = (s: string) => Buffer.from(s, "hex")

describe("Tether AEAD vectors", () => {
    test("the vector file has valid and invalid cases", () => {
        let valid = 0
        let invalid = 0
        for (const v of TETHER_AEAD) {
            if (v.result === "invalid") invalid++
            else valid++
        }
        expect(valid > 0).toBe(true)
        expect(invalid > 0).toBe(true)
    })
    // one device test per vector, so the counts say how many were reproduced
    // (forEach: the compiler does not capture loop variables in closures)
    TETHER_AEAD.forEach(v => {
        if (v.result === "invalid") {
            test("invalid: " + v.comment, () => {
                expect(aeadDecrypt(h(v.k), v.n, h(v.ad), h(v.ciphertext)) === undefined).toBe(true)
            })
        } else {
            test("valid: " + v.comment, () => {
                expect(aeadEncrypt(h(v.k), v.n, h(v.ad), h(v.plaintext)).toString("hex")).toBe(v.ciphertext)
                const opened = aeadDecrypt(h(v.k), v.n, h(v.ad), h(v.ciphertext))
                expect(opened === undefined).toBe(false)
                expect(opened.toString("hex")).toBe(v.plaintext)
            })
        }
    })
})
