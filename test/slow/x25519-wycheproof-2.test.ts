// Exhaustive device X25519, part 2 of 4 (run by `npm run test:slow`): Wycheproof cases from
// test/slow/vectors/x25519-wycheproof-all-2.ts. The 518 cases are split in four programs because
// the simulator refuses an image much above 100 KB and the X25519 ladder alone is 30 KB of it.
// @timeout 900000
import { describe, test, expect } from "@devicescript/test"
import { WYCHEPROOF_X25519_ALL } from "./vectors/x25519-wycheproof-all-2"
import { checkWycheproofRows } from "./wycheproof-check"

describe("x25519 exhaustive, part 2", () => {
    test("Wycheproof cases, part 2 of 4", async () => {
        expect(await checkWycheproofRows(WYCHEPROOF_X25519_ALL)).toBe(WYCHEPROOF_X25519_ALL.length)
    })
})
