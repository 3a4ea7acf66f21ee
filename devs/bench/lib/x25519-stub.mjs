// The gateway's X25519 module with its cost taken out, for the perf group's floor "the gateway's
// plumbing with crypto stubbed" (loaded in place of gateway-peer/dist/src/crypto/x25519.js by
// x25519-hook.mjs, in a bench server process only). Results stay right, so handshakes complete:
//
//   x25519(scalar, u)     memoized per (scalar, u): the bench's clients cycle a few ephemerals
//                         (tether-peers.mjs, `ephemerals`), so after the warm-up every DH is a
//                         Map lookup
//   generateKeyPair()     cycles KEYS key pairs made once (so ee and se inputs repeat too)
//
// Everything else of the handshake (HMAC, SHA-256, AES-CCM, tickets, framing, sockets) is real.
import * as real from "../../../gateway-peer/dist/src/crypto/x25519.js"

// everything else as is (a local export below takes precedence over the star export)
export * from "../../../gateway-peer/dist/src/crypto/x25519.js"

const KEYS = 4
const memo = new Map()
let misses = 0

export function x25519(scalar, u) {
    const k = scalar.toString("latin1") + u.toString("latin1")
    let v = memo.get(k)
    if (v === undefined) {
        misses++
        v = real.x25519(scalar, u)
        if (memo.size < 1 << 16) memo.set(k, v)
    }
    return Buffer.from(v) // callers may wipe what they get
}

const pairs = Array.from({ length: KEYS }, () => real.generateKeyPair())
let next = 0

export function generateKeyPair() {
    const p = pairs[next++ % KEYS]
    return { privateKey: Buffer.from(p.privateKey), publicKey: Buffer.from(p.publicKey) }
}

/** DH cache misses so far (a warm floor has few). */
export const stubMisses = () => misses
