#!/usr/bin/env node
// Turns JSON vectors (published ones in test/vectors/published/, generated ones in
// test/vectors/generated/) into TypeScript modules the DeviceScript test programs import:
// a device program cannot read files. The output in test/device/vectors/ and
// test/slow/vectors/ is generated: never edit it by hand, run `node devs/gen/vectors-to-device.mjs`.
//
// `--check` writes nothing and fails when a committed module differs from what it would write.
//
// Each job picks the cases a device run can afford (the simulator has about 64 KB of heap
// and every test file pays for its vectors at start-up) and flattens them to objects of
// strings, numbers and booleans.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs"
import { join, dirname, relative } from "node:path"
import { ROOT as root } from "./common.mjs"

const pub = f => join(root, "test", "vectors", "published", f)
const gen = f => join(root, "test", "vectors", "generated", f)

// The Wycheproof subset for the fast device run: every flag at least `perFlag` times, plus
// every invalid/acceptable verdict kind. The slow run takes all of them.
function wycheproofSubset(tests, perFlag) {
    const seen = {}
    const out = []
    for (const t of tests) {
        const keys = (t.flags || []).concat(["result:" + t.result])
        if (keys.some(k => (seen[k] || 0) < perFlag)) {
            for (const k of keys) seen[k] = (seen[k] || 0) + 1
            out.push(t)
        }
    }
    return out
}

function wycheproofCases(json) {
    const groups = json.testGroups || [{ tests: json.tests }]
    const tests = []
    for (const g of groups) for (const t of g.tests) tests.push(t)
    return tests
}

const flatX25519 = t => ({
    tcId: t.tcId,
    private: t.private,
    public: t.public,
    shared: t.shared,
    result: t.result,
    flags: (t.flags || []).join(","),
})

/** Jobs: [input json, output ts, export name, select(json) -> array of flat objects] */
export const jobs = [
    [
        pub("x25519-rfc7748.json"),
        "test/device/vectors/x25519-rfc7748.ts",
        "RFC7748",
        // scalar multiplications as {scalar,u,out}, the ladder after 1 and 1000 iterations as
        // {iterations,start,out}, and the Alice/Bob exchange as {alice_private,...}
        j => [
            ...j.scalarmult,
            { iterations: 1, start: j.iterated.start, out: j.iterated.after_1 },
            { iterations: 1000, start: j.iterated.start, out: j.iterated.after_1000 },
            j.dh,
        ],
    ],
    [
        pub("x25519-wycheproof.json"),
        "test/device/vectors/x25519-wycheproof.ts",
        "WYCHEPROOF_X25519",
        j => wycheproofSubset(wycheproofCases(j), 1).map(flatX25519),
    ],
    [
        pub("x25519-wycheproof.json"),
        "test/slow/vectors/x25519-wycheproof-all.ts",
        "WYCHEPROOF_X25519_ALL",
        j => wycheproofCases(j).map(flatX25519),
        // 518 object literals compile to more function code than the VM's 64 KB image allows
        // next to the unrolled field code, so the rows are packed one string per case; and the
        // simulator refuses an image much above 100 KB (78 KB loads, 113 KB does not), so they
        // are split into parts (x25519-wycheproof-all-1.ts ... -4.ts), one test program each
        { packed: true, parts: 4 },
    ],
    [gen("x25519-random.json"), "test/device/vectors/x25519-random.ts", "X25519_RANDOM", j => j.tests || j],
    [pub("hmac-sha256.json"), "test/device/vectors/hmac-sha256.ts", "HMAC_SHA256", j => j.tests || j],
    [pub("hkdf-sha256.json"), "test/device/vectors/hkdf-sha256.ts", "HKDF_SHA256", j => j.tests || j],
    [pub("aes256ccm.json"), "test/device/vectors/aes256ccm.ts", "AES256CCM", j => j.tests.filter(t => t.aad === "")],
    [gen("tether-aead.json"), "test/device/vectors/tether-aead.ts", "TETHER_AEAD", j => j.tests || j],
    [gen("tether-kk.json"), "test/device/vectors/tether-kk.ts", "TETHER_KK", j => j.tests || j],
    [gen("tether-resume.json"), "test/device/vectors/tether-resume.ts", "TETHER_RESUME", j => j.tests || j],
    // the settings flattened as set_<NAME> (the .env text is the gateway's side of the contract)
    [
        gen("tether-pairing.json"),
        "test/device/vectors/tether-pairing.ts",
        "TETHER_PAIRING",
        j =>
            j.tests.map(({ settings, env_text, ...rest }) => ({
                ...Object.fromEntries(Object.entries(settings).map(([k, v]) => ["set_" + k, v])),
                ...rest,
            })),
    ],
]

// A packed job emits `NAME_FIELDS` (the field names, space-separated) and `NAME`, one string
// per case with the fields space-separated in that order ("-" for an empty field). The device
// test splits a row with `row.split(" ")`.
function packedModule(name, rows) {
    const fields = Object.keys(rows[0])
    const body = rows.map(r => "    " + JSON.stringify(fields.map(f => (r[f] === "" ? "-" : String(r[f]))).join(" "))).join(",\n")
    return `export const ${name}_FIELDS = ${JSON.stringify(fields.join(" "))}\nexport const ${name}: string[] = [\n${body},\n]\n`
}

function emit([input, output, name, select, options]) {
    if (!existsSync(input)) return false
    const json = JSON.parse(readFileSync(input, "utf8"))
    const all = select(json)
    const parts = (options && options.parts) || 1
    const size = Math.ceil(all.length / parts)
    for (let p = 0; p < parts; p++) {
        const rows = all.slice(p * size, (p + 1) * size)
        emitOne(input, parts > 1 ? output.replace(/\.ts$/, `-${p + 1}.ts`) : output, name, rows, options)
    }
    return true
}

function emitOne(input, output, name, rows, options) {
    const module =
        options && options.packed
            ? packedModule(name, rows)
            : `export const ${name}: any[] = [\n${rows.map(r => "    " + JSON.stringify(r)).join(",\n")},\n]\n`
    const text =
        `// GENERATED by devs/gen/vectors-to-device.mjs from ${relative(root, input)}: do not edit.\n` +
        `// ${rows.length} cases.\n` +
        module
    const out = join(root, output)
    if (CHECK) {
        const same = existsSync(out) && readFileSync(out, "utf8") === text
        if (!same) stale.push(relative(root, out))
        return true
    }
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(out, text)
    console.log(`${relative(root, out)}: ${rows.length} cases`)
    return true
}

// --check: write nothing; exit 1 when a committed module is not what this script would write
const CHECK = process.argv.includes("--check")
const stale = []
for (const job of jobs) emit(job)
if (CHECK) {
    if (stale.length > 0) {
        console.error(`stale generated modules (run node devs/gen/vectors-to-device.mjs):\n  ${stale.join("\n  ")}`)
        process.exitCode = 1
    } else console.log(`${jobs.length} jobs: every generated module is up to date`)
}
