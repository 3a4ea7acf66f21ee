// The Noise layers with Noise's AESGCM plugged in reproduce the cacophony vectors byte for
// byte: every handshake message, the handshake hash on both sides, and the transport messages
// that follow. One test per vector; unsupported patterns are skipped and counted.
import { test, describe } from "node:test"
import assert from "node:assert/strict"
import { runCacophony, runCacophonyVector, type CacophonyFile, type CacophonyVector } from "../../reference/cacophony.js"
import { readVectors } from "../vectors.js"

const file = readVectors<CacophonyFile>("published", "noise-cacophony-25519-aesgcm-sha256.json")
/** The patterns Tether needs; they must never be skipped. */
const REQUIRED = ["KK", "KKpsk0", "KKpsk2", "NN", "NNpsk0"]

describe("cacophony 25519/AESGCM/SHA256", () => {
    for (const v of file.vectors)
        test(v.protocol_name, t => {
            const r = runCacophonyVector(v)
            if (r.status === "skipped") t.skip(r.reason)
            else assert.deepEqual(r, { status: "passed" })
        })

    test("the required patterns are all present and pass; the skip list is only deferred patterns", () => {
        const report = runCacophony(file)
        for (const p of REQUIRED) {
            const name = `Noise_${p}_25519_AESGCM_SHA256`
            assert.ok(
                file.vectors.some(v => v.protocol_name === name),
                `${name} is in the file`
            )
            assert.ok(!report.skipped.includes(name), `${name} not skipped`)
        }
        assert.equal(report.failed, 0, JSON.stringify(report.failures))
        assert.equal(report.passed + report.skipped.length, file.vectors.length)
        // Deferred patterns (section 7.6) carry a "1" in their name; nothing else is skipped.
        for (const name of report.skipped) assert.match(name, /^Noise_[A-Z]*1[A-Z1]*_/)
        assert.equal(report.passed, 36)
        assert.equal(report.skipped.length, 23)
    })

    test("a vector with one wrong byte fails (the runner really compares)", () => {
        const v = file.vectors.find(x => x.protocol_name === "Noise_KKpsk2_25519_AESGCM_SHA256")
        assert.ok(v !== undefined)
        const corrupt = (s: string): string => (s[0] === "0" ? "1" : "0") + s.slice(1)
        const msgs = v.messages.map((m, i) => (i === 4 ? { ...m, ciphertext: corrupt(m.ciphertext) } : m))
        const badTransport: CacophonyVector = { ...v, messages: msgs }
        assert.equal(runCacophonyVector(badTransport).status, "failed")
        assert.equal(runCacophonyVector({ ...v, handshake_hash: corrupt(v.handshake_hash) }).status, "failed")
        assert.equal(runCacophonyVector({ ...v, resp_prologue: "00" }).status, "failed")
        const badPsk: CacophonyVector = { ...v, resp_psks: [corrupt(v.resp_psks?.[0] ?? "")] }
        assert.equal(runCacophonyVector(badPsk).status, "failed")
    })

    test("other suites are skipped, not failed", () => {
        const v = file.vectors[0]
        assert.ok(v !== undefined)
        const r = runCacophonyVector({ ...v, protocol_name: v.protocol_name.replace("AESGCM", "ChaChaPoly") })
        assert.equal(r.status, "skipped")
    })
})
