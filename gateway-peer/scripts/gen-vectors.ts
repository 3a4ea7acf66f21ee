// Generates Tether's own test vectors (the ones no RFC publishes) from the gateway's
// node:crypto implementation, into test/vectors/generated/. The device reproduces them byte
// for byte (test/vectors/to-device.mjs turns them into TypeScript modules). Never edit the
// output by hand: change this script and run
//
//     npm run build -w gateway-peer && node gateway-peer/dist/scripts/gen-vectors.js [file...]
//
// Every input is derived from SHA-256 of a label, so regenerating gives the same bytes. Each
// vector set is one function in SETS; later sets (tether-kk.json, tether-resume.json) are
// added there.
import { writeFileSync, mkdirSync } from "node:fs"
import { fileURLToPath, pathToFileURL } from "node:url"

import { sha256, hmacSha256 } from "../src/crypto/hash.js"
import { aeadEncrypt, aeadDecrypt, aeadNonce, ccmEncrypt, TAG_LEN } from "../src/crypto/aead.js"

/** Where this script lives, as recorded in every file it writes. */
export const GENERATOR = "gateway-peer/scripts/gen-vectors.ts"

/** `len` deterministic bytes for `label`: SHA-256("tether-vectors/" label "/" i) blocks. */
export function bytesFor(label: string, len: number): Buffer {
    const blocks: Buffer[] = []
    for (let i = 0; blocks.length * 32 < len; i++) blocks.push(sha256(Buffer.from(`tether-vectors/${label}/${i}`)))
    return Buffer.concat(blocks).subarray(0, len)
}

/** One case of tether-aead.json. */
export interface AeadVector {
    comment: string
    k: string
    n: number
    ad: string
    plaintext: string
    ciphertext: string
    result: "valid" | "invalid"
}

/** A generated vector file. */
export interface VectorFile<T> {
    generator: string
    rule: string
    tests: T[]
}

const AEAD_RULE =
    "ENCRYPT(k, n, ad, plaintext) = AES-256-CCM(key = HMAC-SHA-256(k, ad), nonce = 0x00*5 || uint64_be(n), " +
    "plaintext) -> ciphertext || tag16; DECRYPT rejects (result invalid) any ciphertext that does not authenticate"

const hex = (b: Buffer): string => b.toString("hex")

/** tether-aead.json: the AEAD rule over the sizes, ads and counters the protocol meets. */
export function tetherAead(): VectorFile<AeadVector> {
    const tests: AeadVector[] = []
    const valid = (comment: string, n: number, adLen: number, ptLen: number): AeadVector => {
        const k = bytesFor(`aead ${comment} k`, 32)
        const ad = bytesFor(`aead ${comment} ad`, adLen)
        const pt = bytesFor(`aead ${comment} pt`, ptLen)
        const v: AeadVector = {
            comment,
            k: hex(k),
            n,
            ad: hex(ad),
            plaintext: hex(pt),
            ciphertext: hex(aeadEncrypt(k, n, ad, pt)),
            result: "valid",
        }
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
    const invalid = (comment: string, changes: Partial<AeadVector>): void => {
        tests.push({ ...base, ...changes, comment, result: "invalid" })
    }
    const flip = (b: Buffer, i: number): Buffer => {
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
    invalid("CCM under k itself (the HMAC key derivation skipped)", { ciphertext: hex(ccmEncrypt(k, aeadNonce(1), pt)) })
    invalid("ad as CCM associated data instead of through the key", {
        ciphertext: hex(ccmEncrypt(hmacSha256(k, Buffer.alloc(0)), aeadNonce(1), pt, ad)),
    })
    const badNonce = Buffer.concat([Buffer.from([1]), Buffer.alloc(12)])
    invalid("nonce with a non-zero prefix byte", { ciphertext: hex(ccmEncrypt(hmacSha256(k, ad), badNonce, pt)) })
    const emptyPt = tests.find(t => t.plaintext === "" && t.ad === "" && t.result === "valid")
    if (emptyPt !== undefined)
        tests.push({
            ...emptyPt,
            comment: "empty plaintext, tag flipped (a CCM that skips the MAC on empty input accepts it)",
            ciphertext: hex(flip(Buffer.from(emptyPt.ciphertext, "hex"), 0)),
            result: "invalid",
        })
    selfCheck(tests)
    return { generator: GENERATOR, rule: AEAD_RULE, tests }
}

/** Refuses to write a file whose cases the gateway itself does not reproduce. */
function selfCheck(tests: AeadVector[]): void {
    for (const t of tests) {
        const k = Buffer.from(t.k, "hex")
        const out = aeadDecrypt(k, t.n, Buffer.from(t.ad, "hex"), Buffer.from(t.ciphertext, "hex"))
        const ok = t.result === "valid" ? out?.toString("hex") === t.plaintext : out === undefined
        if (!ok) throw new Error(`gen-vectors: self-check failed: ${t.comment}`)
    }
}

/** Every vector set this script writes, by file name under test/vectors/generated/. */
export const SETS: Record<string, () => VectorFile<unknown>> = {
    "tether-aead.json": tetherAead,
}

/** The JSON text of a set, exactly as written (stable key order, trailing newline). */
export function render(file: VectorFile<unknown>): string {
    return JSON.stringify(file, null, 1) + "\n"
}

function main(argv: string[]): void {
    const names = argv.length > 0 ? argv : Object.keys(SETS)
    // dist/scripts/gen-vectors.js -> the repository root is three levels up
    const outDir = fileURLToPath(new URL("../../../test/vectors/generated/", import.meta.url))
    mkdirSync(outDir, { recursive: true })
    for (const name of names) {
        const set = SETS[name]
        if (set === undefined) throw new Error(`gen-vectors: unknown set ${name} (known: ${Object.keys(SETS).join(", ")})`)
        const file = set()
        writeFileSync(outDir + name, render(file))
        console.log(`test/vectors/generated/${name}: ${file.tests.length} cases`)
    }
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main(process.argv.slice(2))

