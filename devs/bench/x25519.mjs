// X25519 figures for `npm run bench`:
//   - device X25519 and the straight 16x16-bit reference port, ms per scalar multiplication
//     in the simulator (devs/bench-x25519.ts, interleaved, yields included), median over runs;
//   - node:crypto X25519 on this machine in the same run, and the device/node ratio;
//   - bytecode instructions per scalar multiplication, counted from the compiled image.
//
// Instruction count method. The VM's InfiniteLoop guard counts one step per opcode
// (runtime vm_main.c: one devs_vm_exec_opcode per step), so "instructions" means opcodes.
// The build of devs/bench-x25519.ts is disassembled (`devs disasm -d`, which prints each
// statement's bytes); every statement is decoded opcode by opcode with the opcode table of
// the installed compiler (OP_PROPS in the CLI bundle: an opcode byte >= 0x80 is a one-byte
// constant; an opcode whose props have TAKES_NUMBER (0x20) is followed by a varint). The
// generated field code is straight-line except one counted loop in `ladder` and in `fsqrn`,
// whose body lies between the loop head (the target of the only backward jump) and that
// jump; its condition runs n + 1 times, the rest n times. The ladder and inversion are
// data-independent, so instructions = sum over these functions of (ops per call for the
// call's n) x (calls per scalar multiplication), a fixed schedule mirrored below from
// src/crypto/x25519.ts. Not counted: the glue in x25519.ts (unpack, freeze, pack, the
// yield loop, ds.sleep): a few thousand instructions, well under 1%.
// Cross-check against the VM's own counter: ladder() with 7 steps and no yield (7 x 17,331
// plus load/store = 122K) runs; with 8 steps (139K) it panics with InfiniteLoop at 131,072.
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto"

const ENTRY = "devs/bench-x25519.ts"
const RUNS = 3

// Call schedule of one x25519(): ladder(st, k, t, n) for t = 254, 252, ..., 0 with n = 2
// except the last (n = 1); fsqrn chunks of at most 20 squarings along the inversion chain;
// 11 + 1 fmul.
const LADDER_CALLS = [...Array(127).fill(2), 1]
const SQR_RUNS = [1, 2, 1, 5, 10, 20, 10, 50, 100, 50, 5].flatMap(n => {
    const out = []
    for (; n > 0; n -= 20) out.push(Math.min(n, 20))
    return out
})
const FMUL_CALLS = 12

function opTable(root) {
    const cli = readFileSync(join(root, "node_modules", "@devicescript", "cli", "built", "devicescript-cli.cjs"), "utf8")
    const m = /OP_PROPS = ("(?:[^"\\]|\\.)*")/.exec(cli)
    if (!m) throw new Error("OP_PROPS not found in the DeviceScript CLI bundle")
    // decode the JS string literal (raw control characters, hex and NUL escapes)
    const lit = m[1].slice(1, -1)
    const simple = { n: "\n", t: "\t", r: "\r", b: "\b", f: "\f", v: "\v", 0: "\0" }
    let out = ""
    for (let i = 0; i < lit.length; i++) {
        const c = lit[i]
        if (c !== "\\") out += c
        else {
            const e = lit[++i]
            if (e === "x") {
                out += String.fromCharCode(parseInt(lit.slice(i + 1, i + 3), 16))
                i += 2
            } else out += simple[e] ?? e
        }
    }
    return out
}

function countOps(hex, props) {
    const b = Buffer.from(hex, "hex")
    let n = 0
    for (let pc = 0; pc < b.length; ) {
        const op = b[pc++]
        n++
        if (op >= 0x80) continue
        if (props.charCodeAt(op) & 0x20) {
            const v = b[pc++]
            if (v >= 0xf8) pc += (v & 3) + 1
        }
    }
    return n
}

// proc name -> [{ pc, ops, text }]
function disassemble(root, props) {
    const devs = join(root, "node_modules", ".bin", "devs")
    const env = { ...process.env, NO_UPDATE_NOTIFIER: "1", FORCE_COLOR: "0" }
    const b = spawnSync(devs, ["build", "--quiet", ENTRY], { cwd: root, env, encoding: "utf8" })
    if (b.status !== 0) throw new Error("devs build failed: " + b.stdout + b.stderr)
    const d = spawnSync(devs, ["disasm", "-d", ".devicescript/bin/bytecode-dbg.json"], {
        cwd: root,
        env,
        encoding: "utf8",
        maxBuffer: 1 << 28,
    })
    if (d.status !== 0) throw new Error("devs disasm failed: " + d.stderr)
    const procs = {}
    let cur
    for (const line of d.stdout.split("\n")) {
        const p = /^proc (\w+?)_F\d+\(/.exec(line)
        if (p) cur = procs[p[1]] = []
        const s = /^\s*(\d+):\s+(.*) \/\/ ([0-9a-f]+)$/.exec(line)
        if (s && cur) cur.push({ pc: +s[1], text: s[2], ops: countOps(s[3], props) })
    }
    return procs
}

// Instructions of one call of a function with at most one counted loop, run n times.
function callOps(stmts, n) {
    const back = stmts.filter(s => {
        const j = /^JMP (\d+)$/.exec(s.text)
        return j && +j[1] < s.pc
    })
    const sum = a => a.reduce((x, s) => x + s.ops, 0)
    if (back.length === 0) return { total: sum(stmts), body: 0 }
    if (back.length > 1) throw new Error("more than one loop")
    const head = +/^JMP (\d+)$/.exec(back[0].text)[1]
    const end = back[0].pc
    const inLoop = stmts.filter(s => s.pc >= head && s.pc <= end)
    const cond = inLoop[0] // the loop condition: runs n + 1 times
    const body = sum(inLoop) - cond.ops
    return { total: sum(stmts) - sum(inLoop) + (n + 1) * cond.ops + n * body, body }
}

function nodeX25519MsPerOp(ctx) {
    const PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex")
    const SPKI = Buffer.from("302a300506032b656e032100", "hex")
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8, randomBytes(32)]), format: "der", type: "pkcs8" })
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI, randomBytes(32)]), format: "der", type: "spki" })
    const batch = 2000
    const times = []
    for (let r = 0; r < 7; r++) {
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < batch; i++) diffieHellman({ privateKey, publicKey })
        times.push(Number(process.hrtime.bigint() - t0) / 1e6 / batch)
    }
    return times
}

export async function run(ctx) {
    const mine = []
    const ref = []
    for (let r = 0; r < RUNS; r++) {
        const { code, out, figures } = await ctx.runDevice(ENTRY, 600000)
        if (code !== 0) throw new Error(`${ENTRY} failed (${code}):\n${out.slice(-3000)}`)
        const get = prefix => figures.find(f => f.name.startsWith(prefix)).value
        mine.push(get("device x25519"))
        ref.push(get("reference"))
    }
    const node = nodeX25519MsPerOp(ctx)

    const props = opTable(ctx.root)
    const procs = disassemble(ctx.root, props)
    for (const f of ["ladder", "fsqrn", "fmul"]) if (!procs[f]) throw new Error(`no proc ${f} in the image`)
    const ladderOps = LADDER_CALLS.reduce((a, n) => a + callOps(procs.ladder, n).total, 0)
    const sqrOps = SQR_RUNS.reduce((a, n) => a + callOps(procs.fsqrn, n).total, 0)
    const mulOps = FMUL_CALLS * callOps(procs.fmul, 0).total
    const total = ladderOps + sqrOps + mulOps
    const stepOps = callOps(procs.ladder, 1).body
    const slice = Math.max(callOps(procs.ladder, 2).total, callOps(procs.fsqrn, 20).total)

    const m = ctx.median(mine)
    const rf = ctx.median(ref)
    const nd = ctx.median(node)
    const runs = `median of ${RUNS} simulator runs (7 interleaved rounds each, test mode)`
    return [
        { name: "x25519 device (simulator)", value: m, unit: "ms/op", note: `${runs}; spread ${ctx.spread(mine)}` },
        {
            name: "x25519 reference 16x16-bit port (simulator)",
            value: rf,
            unit: "ms/op",
            note: `same runs; spread ${ctx.spread(ref)}`,
        },
        { name: "x25519 device speed-up over the reference port", value: rf / m, unit: "x" },
        { name: "x25519 device bytecode instructions", value: total, unit: "instr/op", note: "static count from the compiled image" },
        { name: "x25519 ladder step", value: stepOps, unit: "instr" },
        { name: "x25519 field squaring (fsqrn loop body)", value: callOps(procs.fsqrn, 1).body, unit: "instr" },
        { name: "x25519 field multiplication (fmul call)", value: callOps(procs.fmul, 0).total, unit: "instr" },
        { name: "x25519 longest slice between yields", value: slice, unit: "instr", note: "VM limit 131072" },
        { name: "x25519 node:crypto", value: nd, unit: "ms/op", note: `median of 7 batches of 2000; spread ${ctx.spread(node)}` },
        { name: "x25519 device (simulator) / node:crypto", value: m / nd, unit: "x" },
    ]
}
