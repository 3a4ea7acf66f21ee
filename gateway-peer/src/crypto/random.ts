// Randomness for the gateway: node:crypto's CSPRNG. It throws when the OS cannot supply
// entropy, so every caller fails closed.
import { randomBytes as nodeRandomBytes } from "node:crypto"

/** A source of random bytes; injected wherever determinism is needed (vectors, tests). */
export type RandomSource = (n: number) => Buffer

/**
 * `n` bytes from the CSPRNG.
 * @param n a non-negative integer
 */
export function randomBytes(n: number): Buffer {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("randomBytes: n must be a non-negative integer")
    return nodeRandomBytes(n)
}
