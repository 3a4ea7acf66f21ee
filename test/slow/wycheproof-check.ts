// Shared by the exhaustive X25519 programs: runs packed Wycheproof rows (see
// devs/gen/vectors-to-device.mjs) through the device X25519. An all-zero expected secret must make
// x25519 throw: Tether rejects low-order points.
import { expect } from "@devicescript/test"
import { x25519 } from "../../src/crypto/x25519"

const h = (s: string) => Buffer.from(s, "hex")
const ZERO32 = "0000000000000000000000000000000000000000000000000000000000000000"

/** Checks every row ("tcId private public shared result flags"); returns how many ran. */
export async function checkWycheproofRows(rows: string[]) {
    let n = 0
    for (const row of rows) {
        const f = row.split(" ")
        let got = "threw"
        try {
            got = (await x25519(h(f[1]), h(f[2]))).toString("hex")
        } catch (e) {
            got = (e as Error).message
        }
        const want = f[3] === ZERO32 ? "x25519: all-zero shared secret (low-order point)" : f[3]
        if (got !== want) console.log("wycheproof tcId " + f[0] + " " + f[5] + ": " + got)
        expect(got).toBe(want)
        n++
    }
    return n
}
