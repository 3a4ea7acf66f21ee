#!/usr/bin/env node
// Writes test/vectors/generated/x25519-random.json: pseudo-random X25519 cases {scalar, u, out}
// computed by node:crypto (OpenSSL), for the device's differential test.
//
//     node devs/gen/x25519-random.mjs [--out DIR]
//     node devs/gen/vectors-to-device.mjs       (then refresh test/device/vectors/x25519-random.ts)
//
// Scalars and u values are SHA-256 blocks of a label (@noble/hashes), so a rerun writes the same
// file. u is any 32-byte string, not only a valid public key: node:crypto (like RFC 7748) accepts
// every 32 bytes, so the set exercises the masking of the top bit (a quarter of the cases force
// it set) and the reduction of non-canonical u >= p (a few cases are forced into [p, 2^255)).
// Cases whose result is all zero (low-order u; OpenSSL throws) are skipped: the device rejects
// them, and the Wycheproof vectors cover that.
import { createPrivateKey, createPublicKey, diffieHellman } from "node:crypto"
import { sha256 } from "@noble/hashes/sha2.js"
import { outDir, runAsMain, writeVectorFile } from "./common.mjs"

export const GENERATOR = "devs/gen/x25519-random.mjs (node:crypto X25519)"
export const FILE = "x25519-random.json"
const COUNT = 128

// RFC 8410 DER prefixes for raw X25519 keys (PKCS#8 private, SPKI public).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex")

const block = label => Buffer.from(sha256(Buffer.from(`tether-vectors/x25519-random/${label}`)))

/** X25519 by node:crypto; undefined when OpenSSL refuses the all-zero result of a low-order u. */
export function x25519(scalar, u) {
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, scalar]), format: "der", type: "pkcs8" })
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, u]), format: "der", type: "spki" })
    try {
        return diffieHellman({ privateKey, publicKey })
    } catch {
        return undefined
    }
}

function uFor(i) {
    const u = block(`u/${i}`)
    if (i % 4 === 1) u[31] |= 0x80 // top bit set: must be masked
    if (i % 16 === 2) {
        // p <= u < 2^255: 2^255 - 19 + r for r in [0, 18], top bit maybe set as well
        const r = block(`r/${i}`)[0] % 19
        u.fill(0xff)
        u[0] = 0xed + r
        u[31] = i % 32 === 2 ? 0x7f : 0xff
    }
    return u
}

/** The whole file: { generator, tests }. */
export function x25519Random() {
    const tests = []
    for (let i = 0; tests.length < COUNT; i++) {
        const scalar = block(`scalar/${i}`)
        const u = uFor(i)
        const out = x25519(scalar, u)
        if (!out || out.every(b => b === 0)) continue
        tests.push({ scalar: scalar.toString("hex"), u: u.toString("hex"), out: out.toString("hex") })
    }
    return { generator: GENERATOR, tests }
}

export const render = file => JSON.stringify(file, null, 1) + "\n"

/** Writes the file into `dir`; returns its path. */
export function generate(dir = outDir()) {
    const file = x25519Random()
    return writeVectorFile(dir, FILE, render(file), `${file.tests.length} cases`)
}

runAsMain(import.meta.url, argv => generate(outDir(argv)))
