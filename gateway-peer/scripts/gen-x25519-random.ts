// Writes test/vectors/generated/x25519-random.json: random X25519 cases {scalar, u, out}
// computed by node:crypto, for the device's differential test.
//
//   npm run build -w gateway-peer && node gateway-peer/dist/scripts/gen-x25519-random.js
//   node test/vectors/to-device.mjs      # then regenerate test/device/vectors/x25519-random.ts
//
// u is any 32-byte string, not only a valid public key: node:crypto (like RFC 7748) accepts
// every 32 bytes, so the set exercises the masking of the top bit (a quarter of the cases
// force it set) and the reduction of non-canonical u >= p (a few cases are forced into
// [p, 2^255)). Cases whose result is all zero (low-order u; OpenSSL throws) are skipped: the device rejects
// them, and the Wycheproof vectors cover that.
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto"
import { writeFileSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const COUNT = 128

// RFC 8410 DER prefixes for raw X25519 keys (PKCS#8 private, SPKI public).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex")

// undefined when OpenSSL refuses the all-zero result of a low-order u
function x25519(scalar: Buffer, u: Buffer): Buffer | undefined {
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, scalar]), format: "der", type: "pkcs8" })
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, u]), format: "der", type: "spki" })
    try {
        return diffieHellman({ privateKey, publicKey })
    } catch {
        return undefined
    }
}

function randomU(i: number): Buffer {
    const u = randomBytes(32)
    const last = u[31] ?? 0
    if (i % 4 === 1) u[31] = last | 0x80 // top bit set: must be masked
    if (i % 16 === 2) {
        // p <= u < 2^255: 2^255 - 19 + r for r in [0, 18], top bit maybe set as well
        u.fill(0xff)
        u[0] = 0xed + (randomBytes(1)[0] ?? 0) % 19
        u[31] = i % 32 === 2 ? 0x7f : 0xff
    }
    return u
}

const tests: { scalar: string; u: string; out: string }[] = []
for (let i = 0; tests.length < COUNT; i++) {
    const scalar = randomBytes(32)
    const u = randomU(i)
    const out = x25519(scalar, u)
    if (!out || out.every(b => b === 0)) continue
    tests.push({ scalar: scalar.toString("hex"), u: u.toString("hex"), out: out.toString("hex") })
}

// dist/scripts/ -> repository root
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const file = join(root, "test", "vectors", "generated", "x25519-random.json")
mkdirSync(dirname(file), { recursive: true })
const json = { generator: "gateway-peer/scripts/gen-x25519-random.ts (node:crypto X25519)", tests }
writeFileSync(file, JSON.stringify(json, null, 1) + "\n")
console.log(`${file}: ${tests.length} cases`)
