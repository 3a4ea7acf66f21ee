// Device Noise layers: the cipher function's prepared path, CipherState (nonce limit, rekey and
// key update with the explicit 2^64-1 nonce, the cached HMAC(k, "")), SymmetricState, and the
// KKpsk2 initiator's transactional processing (a corrupted message leaves ck, h, k and n exactly
// as they were) against a test-local responder built from SymmetricState with a toy
// commutative DH (the real X25519 and the gateway's bytes are checked by tether-kk.test.ts).
// @timeout 30000
import { describe, test, expect } from "@devicescript/test"
import { sha256, hmacSha256 } from "../../../src/crypto/hash"
import { aeadEncrypt, aeadDecrypt, ccmEncrypt, NONCE_LIMIT } from "../../../src/crypto/aead"
import { AESCCM } from "../../../src/noise/cipher"
import { CipherState } from "../../../src/noise/cipher-state"
import { SymmetricState } from "../../../src/noise/symmetric-state"
import { Dh } from "../../../src/noise/dh"
import { HandshakeState } from "../../../src/noise/handshake-state"

const h = (s: string) => Buffer.from(s, "hex")
const hex = (b: Buffer) => b.toString("hex")
const EMPTY = Buffer.alloc(0)
const K = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

// Toy DH: public = scalar, DH(a, B) = SHA-256(min || max): commutative, not secure.
let dhCalls = 0
function lt(a: Buffer, b: Buffer) {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i]
    return false
}
const TOY: Dh = {
    x25519: async (a: Buffer, u: Buffer) => {
        dhCalls++
        if (hex(u) === hex(Buffer.alloc(32))) throw new Error("all-zero output")
        return lt(a, u) ? sha256(a, u) : sha256(u, a)
    },
    x25519Base: async (a: Buffer) => {
        dhCalls++
        return a.slice(0)
    },
}
function filled(b: number) {
    const k = Buffer.alloc(32)
    k.fillAt(0, 32, b)
    return k
}
const kp = (b: number) => {
    const k = filled(b)
    return { privateKey: k, publicKey: k.slice(0) }
}

describe("CipherState", () => {
    test("EncryptWithAd equals the AEAD rule, with and without ad", () => {
        const cs = new CipherState(AESCCM, K)
        const pt = Buffer.from("hello")
        const ad = Buffer.from("ad")
        expect(hex(cs.encryptWithAd(EMPTY, pt))).toBe(hex(aeadEncrypt(K, 0, EMPTY, pt)))
        expect(hex(cs.encryptWithAd(ad, pt))).toBe(hex(aeadEncrypt(K, 1, ad, pt)))
        expect(cs.n).toBe(2)
    })
    test("a failed decrypt leaves n alone; a good one advances it", () => {
        const cs = new CipherState(AESCCM, K)
        const ct = aeadEncrypt(K, 0, EMPTY, Buffer.from("x"))
        const bad = ct.slice(0)
        bad[0] ^= 1
        expect(cs.decryptWithAd(EMPTY, bad)).toBe(undefined)
        expect(cs.n).toBe(0)
        expect(cs.decryptWithAd(EMPTY, ct).toString()).toBe("x")
        expect(cs.n).toBe(1)
        expect(cs.decryptWithAd(EMPTY, ct)).toBe(undefined) // replay: wrong nonce
    })
    test("nonce limit 2^32 - 1: last usable nonce, then refusal", () => {
        const cs = new CipherState(AESCCM, K)
        cs.setNonce(NONCE_LIMIT - 1)
        const ct = cs.encryptWithAd(EMPTY, Buffer.from("z"))
        expect(hex(ct)).toBe(hex(aeadEncrypt(K, 4294967294, EMPTY, Buffer.from("z"))))
        expect(cs.n).toBe(NONCE_LIMIT)
        expect(() => cs.encryptWithAd(EMPTY, Buffer.from("z"))).toThrow()
        const rx = new CipherState(AESCCM, K)
        rx.setNonce(NONCE_LIMIT)
        expect(() => rx.decryptWithAd(EMPTY, ct)).toThrow()
        expect(rx.n).toBe(NONCE_LIMIT)
    })
    test('keyUpdate: CCM under HMAC(k, "") with nonce 00*5 || ff*8, n reset to 0', () => {
        const cs = new CipherState(AESCCM, K)
        cs.setNonce(7)
        cs.keyUpdate()
        const want = ccmEncrypt(hmacSha256(K, EMPTY), h("0000000000ffffffffffffffff"), Buffer.alloc(32)).slice(0, 32)
        expect(hex(cs.k)).toBe(hex(want))
        expect(cs.n).toBe(0)
        const ct = cs.encryptWithAd(EMPTY, Buffer.from("after"))
        expect(aeadDecrypt(want, 0, EMPTY, ct).toString()).toBe("after")
    })
    test("rekey: k = REKEY(k), n unchanged, as Noise's Rekey()", () => {
        const cs = new CipherState(AESCCM, K)
        cs.setNonce(7)
        cs.rekey()
        const want = ccmEncrypt(hmacSha256(K, EMPTY), h("0000000000ffffffffffffffff"), Buffer.alloc(32)).slice(0, 32)
        expect(hex(cs.k)).toBe(hex(want))
        expect(cs.n).toBe(7)
        const ct = cs.encryptWithAd(EMPTY, Buffer.from("after"))
        expect(aeadDecrypt(want, 7, EMPTY, ct).toString()).toBe("after")
        let threw = false
        try {
            new CipherState(AESCCM).rekey()
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
    })
    test("empty key: plaintext passes through", () => {
        const cs = new CipherState(AESCCM)
        expect(cs.hasKey()).toBe(false)
        expect(hex(cs.encryptWithAd(EMPTY, h("0102")))).toBe("0102")
    })
})

describe("AESCCM, the cipher function", () => {
    test('the prepared path gives the bytes of ENCRYPT/DECRYPT with ad = ""; destroy zeroes it', () => {
        const pk = AESCCM.prepare(K)
        expect(hex(pk)).toBe(hex(hmacSha256(K, EMPTY)))
        const pt = Buffer.from("record")
        const ct = AESCCM.encryptPrepared(pk, 5, pt)
        expect(hex(ct)).toBe(hex(AESCCM.encrypt(K, 5, EMPTY, pt)))
        expect(hex(AESCCM.decryptPrepared(pk, 5, ct))).toBe(hex(pt))
        expect(AESCCM.decryptPrepared(pk, 6, ct)).toBe(undefined)
        expect(AESCCM.name).toBe("AESCCM")
        const cs = new CipherState(AESCCM, K)
        cs.rekey()
        expect(hex(AESCCM.rekey(pk))).toBe(hex(cs.k))
        AESCCM.destroy(pk)
        expect(hex(pk)).toBe(hex(Buffer.alloc(32)))
    })
})

describe("SymmetricState", () => {
    test("short names are padded, long names hashed; ck = h", () => {
        const a = new SymmetricState(AESCCM, "Tether_Resume2_AESCCM_SHA256")
        expect(hex(a.h)).toBe(hex(Buffer.from("Tether_Resume2_AESCCM_SHA256")) + "00000000")
        expect(hex(a.ck)).toBe(hex(a.h))
        const long = "Noise_KKpsk2_25519_AESCCM_SHA256x"
        expect(hex(new SymmetricState(AESCCM, long).h)).toBe(hex(sha256(Buffer.from(long))))
    })
    test("a clone is independent", () => {
        const a = new SymmetricState(AESCCM, "X")
        a.mixKey(K)
        const b = a.clone()
        b.encryptAndHash(Buffer.from("p"))
        expect(b.cs.n).toBe(1)
        expect(a.cs.n).toBe(0)
        expect(hex(a.h) === hex(b.h)).toBe(false)
    })
})

// A test-local KKpsk2 responder (toy DH), token by token.
async function respond(sI: Buffer, sR: Buffer, psk: Buffer, eR: Buffer, prologue: Buffer, msg1: Buffer) {
    const sym = new SymmetricState(AESCCM, "Noise_KKpsk2_25519_AESCCM_SHA256")
    sym.mixHash(prologue)
    sym.mixHash(sI)
    sym.mixHash(sR)
    const re = msg1.slice(0, 32)
    sym.mixHash(re) // e
    sym.mixKey(re)
    sym.mixKey(await TOY.x25519(sR, re)) // es
    sym.mixKey(await TOY.x25519(sR, sI)) // ss
    const p1 = sym.decryptAndHash(msg1.slice(32))
    sym.mixHash(eR) // e
    sym.mixKey(eR)
    sym.mixKey(await TOY.x25519(eR, re)) // ee
    sym.mixKey(await TOY.x25519(eR, sI)) // se
    sym.mixKeyAndHash(psk) // psk
    const ct = sym.encryptAndHash(EMPTY)
    const msg2 = Buffer.alloc(32 + ct.length)
    msg2.blitAt(0, eR, 0, 32)
    msg2.blitAt(32, ct, 0, ct.length)
    return { p1, msg2, cs: sym.split(), h: sym.h }
}

/** ck, h, k and n of a HandshakeState's SymmetricState (a private field, read for the test). */
function stateOf(hs: HandshakeState): string {
    const sym: SymmetricState = (hs as any).sym
    return hex(sym.ck) + " " + hex(sym.h) + " " + (sym.cs.k === undefined ? "-" : hex(sym.cs.k)) + " " + sym.cs.n
}

describe("HandshakeState (KKpsk2 initiator)", () => {
    test("agrees with a responder; 2 DH with es and ss prepared; failed message 2 changes nothing", async () => {
        const sI = kp(1)
        const sR = kp(2)
        const psk = filled(9)
        const pro = Buffer.from("prologue")
        const ss = await TOY.x25519(sI.privateKey, sR.publicKey)
        const es = await TOY.x25519(kp(3).privateKey, sR.publicKey)
        dhCalls = 0
        const hs = new HandshakeState({
            cipher: AESCCM,
            protocolName: "Noise_KKpsk2_25519_AESCCM_SHA256",
            prologue: pro,
            s: sI,
            rs: sR.publicKey,
            psk,
            e: kp(3),
            es,
            ss,
            dh: TOY,
        })
        const msg1 = await hs.writeMessage(EMPTY)
        expect(msg1.length).toBe(48)
        expect(dhCalls).toBe(0) // es and ss were prepared
        expect(hex(es)).toBe(hex(Buffer.alloc(32))) // the prepared es is wiped once used
        const r = await respond(sI.publicKey, sR.publicKey, psk, filled(4), pro, msg1)
        expect(hex(r.p1)).toBe("")
        // tamper each region of message 2: rejected, ck, h, k and n exactly as they were
        const before = stateOf(hs)
        for (const i of [0, 31, 32, 47]) {
            const bad = r.msg2.slice(0)
            bad[i] ^= 0x80
            expect(await hs.readMessage(bad)).toBe(undefined)
            expect(stateOf(hs)).toBe(before)
        }
        expect(await hs.readMessage(r.msg2.slice(0, 47))).toBe(undefined)
        expect(await hs.readMessage(Buffer.concat(Buffer.alloc(32), r.msg2.slice(32)))).toBe(undefined) // zero DH
        expect(hs.isComplete()).toBe(false)
        expect(stateOf(hs)).toBe(before)
        dhCalls = 0
        expect(hex((await hs.readMessage(r.msg2)) as Buffer)).toBe("")
        expect(dhCalls).toBe(2) // ee, se
        expect(hs.isComplete()).toBe(true)
        const cs = hs.split()
        expect(hex(hs.getHandshakeHash())).toBe(hex(r.h))
        const rec = cs[0].encryptWithAd(EMPTY, Buffer.from("up"))
        expect(r.cs[0].decryptWithAd(EMPTY, rec).toString()).toBe("up")
        const down = r.cs[1].encryptWithAd(EMPTY, Buffer.from("down"))
        expect(cs[1].decryptWithAd(EMPTY, down).toString()).toBe("down")
    })
    test("without a prepared es and ss it computes them (two more DH); out-of-turn calls throw", async () => {
        dhCalls = 0
        const hs = new HandshakeState({
            cipher: AESCCM,
            protocolName: "Noise_KKpsk2_25519_AESCCM_SHA256",
            prologue: EMPTY,
            s: kp(1),
            rs: kp(2).publicKey,
            psk: Buffer.alloc(32),
            e: kp(3),
            dh: TOY,
        })
        let threw = false
        try {
            await hs.readMessage(Buffer.alloc(48))
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
        await hs.writeMessage(EMPTY)
        expect(dhCalls).toBe(2)
        threw = false
        try {
            await hs.writeMessage(EMPTY)
        } catch (e) {
            threw = true
        }
        expect(threw).toBe(true)
    })
})
