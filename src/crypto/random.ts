// Randomness: the runtime's CSPRNG (Node's randomBytes in the simulator, the hardware RNG
// on chips). Protocol code takes a RandomSource as a parameter so vectors can inject one.
import { randomBuffer } from "@devicescript/crypto"

/** A source of `n` random bytes; protocol code takes one as a parameter. */
export type RandomSource = (n: number) => Buffer

/**
 * `n` cryptographically strong random bytes.
 * @param n a non-negative integer
 */
export function randomBytes(n: number): Buffer {
    if (!(n >= 0) || Math.floor(n) !== n) throw new RangeError("randomBytes: bad length " + n)
    return randomBuffer(n)
}
