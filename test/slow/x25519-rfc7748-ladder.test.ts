// The RFC 7748 section 5.2 ladder after 1000 iterations on the device (run by
// `npm run test:slow`; the 1-iteration case is in the fast suite).
// @timeout 900000
import { describe, test, expect } from "@devicescript/test"
import { x25519 } from "../../src/crypto/x25519"
import { RFC7748 } from "../device/vectors/x25519-rfc7748"

const h = (s: string) => Buffer.from(s, "hex")

describe("x25519 RFC 7748 iterated", () => {
    test("ladder, 1000 iterations", async () => {
        const v = RFC7748.find(r => r.iterations === 1000)
        let k = h(v.start)
        let u = h(v.start)
        for (let i = 0; i < 1000; i++) {
            const r = await x25519(k, u)
            u = k
            k = r
        }
        expect(k.toString("hex")).toBe(v.out)
    })
})
