#!/usr/bin/env node
// Writes test/vectors/generated/tether-aead.json: Tether's AEAD rule (PROTOCOL.md 3.1) over the
// sizes, ads and counters the protocol meets, and the mistakes an implementation could make.
// A second implementation's opinion: SHA-256 and HMAC come from @noble/hashes and AES-256-CCM
// from raw node:crypto, not from the gateway's crypto modules, which the tests then hold to
// these bytes (gateway-peer/test/crypto/tether-aead.test.ts, test/device/crypto tests).
//
//     node devs/gen/aead-vectors.mjs [--out DIR]      (default test/vectors/generated)
//     node devs/gen/vectors-to-device.mjs              (then refresh the device's modules)
//
// Every input is derived from SHA-256 of a label, so a rerun writes the same bytes. Never edit
// the output by hand.
import { createCipheriv } from "node:crypto"
import { hmac } from "@noble/hashes/hmac.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { outDir, runAsMain, writeVectorFile } from "./common.mjs"

/** Where this generator lives, as recorded in the file it writes. */
export const GENERATOR = "devs/gen/aead-vectors.mjs"
export const FILE = "tether-aead.json"

const KEY_LEN = 32
const NONCE_LEN = 13
const TAG_LEN = 16

const AEAD_RULE =
    "ENCRYPT(k, n, ad, plaintext) = AES-256-CCM(key = HMAC-SHA-256(k, ad), nonce = 0x00*5 || uint64_be(n), " +
    "plaintext) -> ciphertext || tag16; DECRYPT rejects (result invalid) any ciphertext that does not authenticate"

const hex = b => Buffer.from(b).toString("hex")

/** `len` deterministic bytes for `label`: SHA-256("tether-vectors/" label "/" i) blocks. */
export function bytesFor(label, len) {
    const blocks = []
    for (let i = 0; blocks.length * 32 < len; i++) blocks.push(Buffer.from(sha256(Buffer.from(`tether-vectors/${label}/${i}`))))
    return Buffer.concat(blocks).subarray(0, len)
}

/** The 13-byte nonce: five zero bytes, then n as a big-endian uint64. */
function nonceOf(n) {
    const nonce = Buffer.alloc(NONCE_LEN)
    nonce.writeBigUInt64BE(BigInt(n), NONCE_LEN - 8)
    return nonce
}

// node:crypto's CCM fails ("tag not set") on an empty Buffer whose memory is a null pointer,
// which Buffer.alloc(0) is: an empty view of a real allocation is not.
const nonNull = b => (b.length > 0 ? b : Buffer.alloc(1).subarray(0, 0))

/** Raw AES-256-CCM, 16-byte tag, `aad` as CCM associated data (empty: the Adata flag clear). */
function ccm(key, nonce, pt, aad = Buffer.alloc(0)) {
    if (key.length !== KEY_LEN || nonce.length !== NONCE_LEN) throw new TypeError("ccm: bad key or nonce length")
    const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_LEN })
    c.setAAD(nonNull(aad), { plaintextLength: pt.length })
    const ct = Buffer.concat([c.update(nonNull(pt)), c.final()])
    return Buffer.concat([ct, c.getAuthTag()])
}

const hmacKey = (k, ad) => Buffer.from(hmac(sha256, k, ad))
const encrypt = (k, n, ad, pt) => ccm(hmacKey(k, ad), nonceOf(n), pt)

/** The whole file: { generator, rule, tests }. */
export function tetherAead() {
    const tests = []
    const valid = (comment, n, adLen, ptLen) => {
        const k = bytesFor(`aead ${comment} k`, 32)
        const ad = bytesFor(`aead ${comment} ad`, adLen)
        const pt = bytesFor(`aead ${comment} pt`, ptLen)
        const v = { comment, k: hex(k), n, ad: hex(ad), plaintext: hex(pt), ciphertext: hex(encrypt(k, n, ad, pt)), result: "valid" }
        tests.push(v)
        return v
    }
    // Transport records: empty ad (the derived key HMAC(k, "") may be cached by implementations).
    valid("transport, empty plaintext, n = 0", 0, 0, 0)
    valid("transport, 1 byte, n = 1", 1, 0, 1)
    valid("transport, 15 bytes, n = 255", 255, 0, 15)
    valid("transport, 16 bytes, n = 256", 256, 0, 16)
    valid("transport, 17 bytes, n = 65535", 65535, 0, 17)
    valid("transport, 100 bytes, n = 2^32 - 2 (the last nonce a CipherState uses)", 2 ** 32 - 2, 0, 100)
    valid("transport, 300 bytes, n = 2^32 - 1", 2 ** 32 - 1, 0, 300)
    // Handshake payloads: ad is h, a 32-byte handshake hash.
    valid("handshake, ad = h, empty payload, n = 0", 0, 32, 0)
    valid("handshake, ad = h, 32-byte static key, n = 0", 0, 32, 32)
    valid("handshake, ad = h, 1 byte, n = 1", 1, 32, 1)
    valid("handshake, ad = h, 16 bytes, n = 0", 0, 32, 16)
    valid("handshake, ad = h, 17 bytes, n = 1", 1, 32, 17)
    valid("handshake, ad = h, 100 bytes, n = 0", 0, 32, 100)
    // The cipher function itself takes any n below 2^53 (the nonce-limit is CipherState's).
    valid("n = 2^32: the high word of the counter", 2 ** 32, 32, 16)
    valid("n = 2^53 - 1: the largest counter a double holds", 2 ** 53 - 1, 0, 15)
    // Longer ad: HMAC keys the CCM whatever the ad length (here above a SHA-256 block).
    valid("ad of 100 bytes, 300-byte plaintext, n = 7", 7, 100, 300)
    valid("ad of 1 byte, 15-byte plaintext, n = 2", 2, 1, 15)

    // Invalid: each must be rejected, no plaintext released.
    const base = valid("base for the invalid cases: ad = h, 20 bytes, n = 1", 1, 32, 20)
    const ct = Buffer.from(base.ciphertext, "hex")
    const invalid = (comment, changes) => tests.push({ ...base, ...changes, comment, result: "invalid" })
    const flip = (b, i) => {
        const c = Buffer.from(b)
        c[i] = (c[i] ?? 0) ^ 0x01
        return c
    }
    invalid("first ciphertext byte flipped", { ciphertext: hex(flip(ct, 0)) })
    invalid("last tag byte flipped", { ciphertext: hex(flip(ct, ct.length - 1)) })
    invalid("first tag byte flipped", { ciphertext: hex(flip(ct, ct.length - TAG_LEN)) })
    invalid("wrong n (encrypted with n = 1)", { n: 2 })
    invalid("wrong ad (last byte flipped)", { ad: hex(flip(Buffer.from(base.ad, "hex"), 31)) })
    invalid("wrong ad (empty)", { ad: "" })
    invalid("wrong key (last byte flipped)", { k: hex(flip(Buffer.from(base.k, "hex"), 31)) })
    invalid("truncated by one byte", { ciphertext: hex(ct.subarray(0, ct.length - 1)) })
    invalid("one byte appended", { ciphertext: hex(Buffer.concat([ct, Buffer.from([0])])) })
    invalid("shorter than a tag (15 bytes)", { ciphertext: hex(ct.subarray(0, TAG_LEN - 1)) })
    invalid("empty ciphertext", { ciphertext: "" })
    const k = Buffer.from(base.k, "hex")
    const ad = Buffer.from(base.ad, "hex")
    const pt = Buffer.from(base.plaintext, "hex")
    invalid("CCM under k itself (the HMAC key derivation skipped)", { ciphertext: hex(ccm(k, nonceOf(1), pt)) })
    invalid("ad as CCM associated data instead of through the key", {
        ciphertext: hex(ccm(hmacKey(k, Buffer.alloc(0)), nonceOf(1), pt, ad)),
    })
    const badNonce = Buffer.concat([Buffer.from([1]), Buffer.alloc(12)])
    invalid("nonce with a non-zero prefix byte", { ciphertext: hex(ccm(hmacKey(k, ad), badNonce, pt)) })
    const emptyPt = tests.find(t => t.plaintext === "" && t.ad === "" && t.result === "valid")
    if (emptyPt !== undefined)
        tests.push({
            ...emptyPt,
            comment: "empty plaintext, tag flipped (a CCM that skips the MAC on empty input accepts it)",
            ciphertext: hex(flip(Buffer.from(emptyPt.ciphertext, "hex"), 0)),
            result: "invalid",
        })
    return { generator: GENERATOR, rule: AEAD_RULE, tests }
}

/** The JSON text, exactly as written (stable key order, one-space indent, trailing newline). */
export function render(file) {
    return JSON.stringify(file, null, 1) + "\n"
}

/** Writes the file into `dir`; returns its path. */
export function generate(dir = outDir()) {
    const file = tetherAead()
    return writeVectorFile(dir, FILE, render(file), `${file.tests.length} cases`)
}

runAsMain(import.meta.url, argv => generate(outDir(argv)))
