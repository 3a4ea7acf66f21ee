// Exhaustive device X25519 (run by `npm run test:slow`): all 518 Wycheproof cases (an
// all-zero expected secret must make x25519 throw: Tether rejects low-order points) and the
// RFC 7748 section 5.2 ladder after 1000 iterations.
// @timeout 900000
import { describe, test, expect } from "@devicescript/test"
import { x25519 } from "../../src/crypto/x25519"
import { RFC7748 } from "../device/vectors/x25519-rfc7748"
import { WYCHEPROOF_X25519_ALL } from "./vectors/x25519-wycheproof-all"

const h = (s: string) => Buffer.from(s, "hex")
const ZERO32 = "0000000000000000000000000000000000000000000000000000000000000000"

describe("x25519 exhaustive", () => {
    test("all Wycheproof cases", async () => {
        let n = 0
        for (const v of WYCHEPROOF_X25519_ALL) {
            let got = "threw"
            try {
                got = (await x25519(h(v.private), h(v.public))).toString("hex")
            } catch (e) {
                got = (e as Error).message
            }
            const want = v.shared === ZERO32 ? "x25519: all-zero shared secret (low-order point)" : v.shared
            if (got !== want) console.log("wycheproof tcId " + v.tcId + " " + v.flags + ": " + got)
            expect(got).toBe(want)
            n++
        }
        expect(n).toBe(518)
    })
    test("RFC 7748 ladder, 1000 iterations", async () => {
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
