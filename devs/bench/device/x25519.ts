// X25519 alternatives side by side in the simulator, all checked against RFC 7748 section 5.2
// first, then measured interleaved in the same run:
//   device     src/crypto/x25519.ts: 12 limbs in doubles (devs/gen/x25519-field.mjs)
//   limbs13    the same generator with 13 limbs (alt/field-13.ts, alt/x25519-13.ts), the device's
//              engine before it moved to 12
//   int32      the engine it replaced: 20 limbs of 13 bits, every value an int32
//              (devs/gen/x25519-field-int32.mjs, alt/field-int32.ts, alt/x25519-int32.ts)
//   reference  the straight TweetNaCl-style port, 16 limbs of 16 bits (x25519-reference.ts)
//
//   npx devs run --test -k -T 600000 --no-colors devs/bench/device/x25519.ts
//
// Under the stock VM it prints ms per scalar multiplication (yields included, test mode: GC
// stress slows every variant alike) and, per round, the device's time over the int32 engine's;
// under the counting VM (counting-vm.mjs, where Math.random()
// is the opcode counter) it prints each variant's bytecode instructions and longest slice
// between yields instead. Lines are `BENCHDEV {"name":...,"value":...,"unit":...}`, read by
// devs/bench/x25519.mjs.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { x25519 } from "../../../src/crypto/x25519"
import { x25519Limbs13 } from "./alt/x25519-13"
import { x25519Int32 } from "./alt/x25519-int32"
import { x25519Reference } from "./x25519-reference"
import { RFC7748 } from "../../../test/device/vectors/x25519-rfc7748"

const ROUNDS = 5
const h = (s: string) => Buffer.from(s, "hex")
type X = (k: Buffer, u: Buffer) => Promise<Buffer>
const NAMES = ["device", "limbs13", "int32", "reference"]
const FNS: X[] = [x25519, x25519Limbs13, x25519Int32, x25519Reference]

function median(a: number[]): number {
    const s = a.slice(0)
    s.sort((x, y) => x - y)
    const n = s.length
    return n & 1 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2
}

function emit(name: string, value: number, unit: string): void {
    // number-to-string keeps ~6 significant digits: thousands and the rest apart
    const hi = Math.floor(value / 1000)
    const lo = Math.round((value - hi * 1000) * 1000) / 1000
    console.log(`BENCHDEV {"name":"${name}","value":${hi}e3,"lo":${lo},"unit":"${unit}"}`)
}

describe("bench", () => {
    test("x25519 alternatives", async () => {
        for (let f = 0; f < FNS.length; f++)
            for (let i = 0; i < 2; i++) {
                const v = RFC7748[i]
                expect((await FNS[f](h(v.scalar), h(v.u))).toString("hex")).toBe(v.out)
            }
        const k = h(RFC7748[0].scalar)
        const u = h(RFC7748[0].u)
        const counting = Math.random() >= 1
        if (counting) {
            for (let f = 0; f < FNS.length; f++) {
                await ds.sleep(1)
                Math.randomInt(2) // resets the counting VM's longest slice
                const a0 = Math.randomInt(7)
                const t0 = Math.random()
                await FNS[f](k, u)
                const n = Math.random() - t0
                const allocs = Math.randomInt(7) - a0
                emit(NAMES[f] + "_instr", n, "instr")
                emit(NAMES[f] + "_slice", Math.randomInt(2), "instr")
                emit(NAMES[f] + "_allocs", allocs, "allocs")
            }
            return
        }
        const times: number[][] = []
        for (let f = 0; f < FNS.length; f++) times.push([])
        for (let r = 0; r < ROUNDS; r++)
            for (let f = 0; f < FNS.length; f++) {
                const t0 = ds.millis()
                await FNS[f](k, u)
                times[f].push(ds.millis() - t0)
            }
        for (let f = 0; f < FNS.length; f++) emit(NAMES[f] + "_ms", median(times[f]), "ms/op")
        // the device's time over the int32 engine's in each round (adjacent in time, so a change
        // in the machine's load touches both)
        for (let r = 0; r < ROUNDS; r++) emit("ratio_int32", times[0][r] / times[2][r], "x")
    })
})
