// The committed vectors and generated modules are exactly what their generators in devs/gen/
// write now: nobody edited them by hand, and no generator drifted from its output. Each
// generator runs into a temporary folder (or in --check mode) and is compared byte for byte.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import { fileURLToPath } from "node:url"

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..")
const GENERATED = join(ROOT, "test", "vectors", "generated")
const out = mkdtempSync(join(tmpdir(), "tether-gen-"))
after(() => rmSync(out, { recursive: true, force: true }))

function generator(script, ...args) {
    const r = spawnSync(process.execPath, [join(ROOT, "devs", "gen", script), ...args], { cwd: ROOT, encoding: "utf8" })
    return { code: r.status, text: r.stdout + r.stderr }
}

function sameAsCommitted(name) {
    assert.equal(
        readFileSync(join(out, name), "utf8"),
        readFileSync(join(GENERATED, name), "utf8"),
        `${name} differs from what its generator writes`
    )
}

describe("the vector generators reproduce the committed files", () => {
    test("aead-vectors.mjs writes tether-aead.json", () => {
        const r = generator("aead-vectors.mjs", "--out", out)
        assert.equal(r.code, 0, r.text)
        sameAsCommitted("tether-aead.json")
        assert.equal(JSON.parse(readFileSync(join(GENERATED, "tether-aead.json"), "utf8")).generator, "devs/gen/aead-vectors.mjs")
    })
    test("protocol-vectors.mjs writes tether-kk.json and tether-resume.json", () => {
        const r = generator("protocol-vectors.mjs", "--out", out)
        assert.equal(r.code, 0, r.text)
        sameAsCommitted("tether-kk.json")
        sameAsCommitted("tether-resume.json")
    })
    test("pairing-vectors.mjs writes tether-pairing.json", () => {
        const r = generator("pairing-vectors.mjs", "--out", out)
        assert.equal(r.code, 0, r.text)
        sameAsCommitted("tether-pairing.json")
    })
    test("x25519-random.mjs writes x25519-random.json", () => {
        const r = generator("x25519-random.mjs", "--out", out)
        assert.equal(r.code, 0, r.text)
        sameAsCommitted("x25519-random.json")
    })
    test("vectors-to-device.mjs: the device's vector modules are up to date", () => {
        const r = generator("vectors-to-device.mjs", "--check")
        assert.equal(r.code, 0, r.text)
    })
    test("x25519-field.mjs: src/crypto/field25519.ts is up to date", () => {
        const r = generator("x25519-field.mjs", "--check")
        assert.equal(r.code, 0, r.text)
    })
    test("a generator fails loudly on a bad argument", () => {
        const r = generator("aead-vectors.mjs", "--out")
        assert.notEqual(r.code, 0)
        assert.match(r.text, /--out needs a folder/)
    })
})
