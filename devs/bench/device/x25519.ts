// X25519 timing in the simulator: src/crypto/x25519.ts against the straight TweetNaCl-style
// port (devs/bench/device/x25519-reference.ts), interleaved in the same run, yield time included.
//
//   npx devs run --test -k -T 600000 --no-colors devs/bench/device/x25519.ts
//
// Prints `BENCHDEV {"name":...,"value":...,"unit":...}` lines (read by devs/bench/x25519.mjs).
// Both implementations are first checked against RFC 7748 section 5.2. Test mode runs the
// VM with GC stress, which slows both sides alike. The bytecode instruction count is not
// measured here but derived from the compiled image by devs/bench/x25519.mjs.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { x25519 } from "../../../src/crypto/x25519"
import { x25519Reference } from "./x25519-reference"
import { RFC7748 } from "../../../test/device/vectors/x25519-rfc7748"

const ROUNDS = 7
const h = (s: string) => Buffer.from(s, "hex")

function median(a: number[]): number {
    const s = a.slice(0)
    s.sort((x, y) => x - y)
    const n = s.length
    return n & 1 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2
}

function emit(name: string, value: number, unit: string): void {
    // number-to-string keeps ~6 significant digits: send milli-units as integers
    console.log(`BENCHDEV {"name":"${name}","value":${Math.round(value * 1000) / 1000},"unit":"${unit}"}`)
}

describe("bench", () => {
    test("x25519 against the reference port", async () => {
        for (let i = 0; i < 2; i++) {
            const v = RFC7748[i]
            expect((await x25519(h(v.scalar), h(v.u))).toString("hex")).toBe(v.out)
            expect((await x25519Reference(h(v.scalar), h(v.u))).toString("hex")).toBe(v.out)
        }
        const k = h(RFC7748[0].scalar)
        const u = h(RFC7748[0].u)
        const mine: number[] = []
        const ref: number[] = []
        for (let r = 0; r < ROUNDS; r++) {
            let t0 = ds.millis()
            await x25519(k, u)
            await x25519(k, u)
            mine.push((ds.millis() - t0) / 2)
            t0 = ds.millis()
            await x25519Reference(k, u)
            ref.push(ds.millis() - t0)
        }
        const m = median(mine)
        const rf = median(ref)
        emit("device x25519 (simulator, test mode)", m, "ms/op")
        emit("reference 16x16-bit port (simulator, test mode)", rf, "ms/op")
        emit("device x25519 speed-up over the reference port", rf / m, "x")
    })
})
