// Device X25519 (src/crypto/x25519.ts) against RFC 7748 (both scalar multiplications, the
// 1-iteration ladder, Alice/Bob), the Wycheproof subset covering every flag, and the random
// differential set generated with node:crypto (devs/gen/x25519-random.mjs).
// The 1000-iteration ladder and all 518 Wycheproof cases are in test/slow/x25519-all.test.ts.
// @timeout 120000
import { describe, test, expect } from "@devicescript/test"
import { x25519, x25519Base } from "../../../src/crypto/x25519"
import { RFC7748 } from "../vectors/x25519-rfc7748"
import { WYCHEPROOF_X25519 } from "../vectors/x25519-wycheproof"
import { X25519_RANDOM } from "../vectors/x25519-random"

const h = (s: string) => Buffer.from(s, "hex")
const ZERO32 = "0000000000000000000000000000000000000000000000000000000000000000"

async function throwsLowOrder(scalar: Buffer, u: Buffer): Promise<boolean> {
    try {
        await x25519(scalar, u)
    } catch (e) {
        return (e as Error).message === "x25519: all-zero shared secret (low-order point)"
    }
    return false
}

describe("x25519 RFC 7748", () => {
    test("section 5.2 scalar multiplications", async () => {
        let n = 0
        for (const v of RFC7748) {
            if (v.scalar === undefined) continue
            expect((await x25519(h(v.scalar), h(v.u))).toString("hex")).toBe(v.out)
            n++
        }
        expect(n).toBe(2)
    })
    test("section 5.2 ladder, 1 iteration", async () => {
        let n = 0
        for (const v of RFC7748) {
            if (v.iterations !== 1) continue
            let k = h(v.start)
            let u = h(v.start)
            const r = await x25519(k, u)
            expect(r.toString("hex")).toBe(v.out)
            n++
        }
        expect(n).toBe(1)
    })
    test("section 6.1 Alice and Bob", async () => {
        const v = RFC7748.find(r => r.alice_private !== undefined)
        const ap = h(v.alice_private)
        const bp = h(v.bob_private)
        expect((await x25519Base(ap)).toString("hex")).toBe(v.alice_public)
        expect((await x25519Base(bp)).toString("hex")).toBe(v.bob_public)
        expect((await x25519(ap, h(v.bob_public))).toString("hex")).toBe(v.shared)
        expect((await x25519(bp, h(v.alice_public))).toString("hex")).toBe(v.shared)
        // the caller's scalar is not clamped in place
        expect(ap.toString("hex")).toBe(v.alice_private)
    })
})

describe("x25519 API", () => {
    test("rejects inputs that are not 32 bytes", async () => {
        let thrown = 0
        const cases = [
            [Buffer.alloc(31), Buffer.alloc(32)],
            [Buffer.alloc(32), Buffer.alloc(33)],
        ]
        for (const c of cases) {
            try {
                await x25519(c[0], c[1])
            } catch (e) {
                if (e instanceof TypeError) thrown++
            }
        }
        try {
            await x25519Base(Buffer.alloc(0))
        } catch (e) {
            if (e instanceof TypeError) thrown++
        }
        expect(thrown).toBe(3)
    })
    test("u = 0 (low order) throws", async () => {
        expect(await throwsLowOrder(h(RFC7748[0].scalar), h(ZERO32))).toBe(true)
    })
})

describe("x25519 Wycheproof subset", () => {
    test("every flag; all-zero results throw", async () => {
        expect(WYCHEPROOF_X25519.length > 0).toBe(true)
        for (const v of WYCHEPROOF_X25519) {
            if (v.shared === ZERO32) {
                expect(await throwsLowOrder(h(v.private), h(v.public))).toBe(true)
            } else {
                const r = (await x25519(h(v.private), h(v.public))).toString("hex")
                if (r !== v.shared) console.log("wycheproof tcId " + v.tcId + " " + v.flags)
                expect(r).toBe(v.shared)
            }
        }
    })
})

describe("x25519 differential against node:crypto", () => {
    test("random scalars and u (high bit set, u >= p included)", async () => {
        expect(X25519_RANDOM.length >= 100).toBe(true)
        for (const v of X25519_RANDOM) {
            const r = (await x25519(h(v.scalar), h(v.u))).toString("hex")
            if (r !== v.out) console.log("random case " + v.scalar + " " + v.u)
            expect(r).toBe(v.out)
        }
    })
})
