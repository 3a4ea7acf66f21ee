// X25519 figures for `npm run bench`:
//   - device X25519 and the straight 16x16-bit reference port, ms per scalar multiplication
//     in the simulator (devs/bench/device/x25519.ts, interleaved, yields included), median over runs;
//   - node:crypto X25519 on this machine in the same run, and the device/node ratio;
//   - bytecode instructions per scalar multiplication, counted from the compiled image.
//
// Instruction count method. The VM's InfiniteLoop guard counts one step per opcode
// (runtime vm_main.c: one devs_vm_exec_opcode per step), so "instructions" means opcodes.
// The build of devs/bench/device/x25519.ts is disassembled (`devs disasm -d`, which prints each
// statement with its bytes); every statement is decoded opcode by opcode with the opcode table
// of the installed compiler (OP_PROPS in the CLI bundle: an opcode byte >= 0x80 is a one-byte
// constant; an opcode whose props have TAKES_NUMBER (0x20) is followed by a varint). The
// field code (fengine, src/crypto/field25519.ts) is then EXECUTED statement by statement from
// that disassembly by a small interpreter below (locals, array and buffer indexing, integer
// operators, jumps), summing the opcodes of every executed statement, on the same call
// schedule as x25519() in src/crypto/x25519.ts (mirrored below: the ladder calls, then the
// inversion's squaring chunks and multiplications). The interpreted result is checked against
// node:crypto, and every value the interpreter stores is checked to be an int32. fengine's
// path does not depend on the data, so the count is exact for every input. Not counted: the
// glue in x25519.ts (unpack, freeze, pack, the wrappers, the yield loop, ds.sleep): a few
// thousand instructions, well under 1%.
// Cross-check against the VM's own counter (devs/bench/device/x25519.ts is not involved): the old
// straight-line count of this method agreed with the InfiniteLoop panic at 131,072.
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto"

const ENTRY = "devs/bench/device/x25519.ts"
const RUNS = 3
const P = 2n ** 255n - 19n
// st layout and modes of src/crypto/x25519.ts and field25519.ts
const LADDER_STEPS = 2
const SQR_CHUNK = 20
const CTL = 101
const [X2, Z2, T0, T1, T2, T3, ST_LEN] = [20, 40, 104, 124, 144, 164, 184]
const MODE_SQR = -1
const MODE_MUL = -2
// invert(st, k, Z2, Z2) as in x25519.ts: ["sqr", out, in, n] and ["mul", out, a, b]
const INVERT = (o, z) => [
    ["sqr", T0, z, 1],
    ["sqr", T1, T0, 2],
    ["mul", T1, z, T1],
    ["mul", T0, T0, T1],
    ["sqr", T2, T0, 1],
    ["mul", T1, T1, T2],
    ["sqr", T2, T1, 5],
    ["mul", T1, T2, T1],
    ["sqr", T2, T1, 10],
    ["mul", T2, T2, T1],
    ["sqr", T3, T2, 20],
    ["mul", T2, T3, T2],
    ["sqr", T2, T2, 10],
    ["mul", T1, T2, T1],
    ["sqr", T2, T1, 50],
    ["mul", T2, T2, T1],
    ["sqr", T3, T2, 100],
    ["mul", T2, T3, T2],
    ["sqr", T2, T2, 50],
    ["mul", T1, T2, T1],
    ["sqr", T1, T1, 5],
    ["mul", o, T1, T0],
]

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
    for (let pc = 0; pc < b.length;) {
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
        if (/^[A-Za-z]/.test(line)) {
            const p = /^proc (\w+?)_F\d+\(/.exec(line)
            cur = p ? (procs[p[1]] = []) : undefined
        }
        const s = /^\s*(\d+):\s+(.*) \/\/ ([0-9a-f]+)$/.exec(line)
        if (s && cur) cur.push({ pc: +s[1], text: s[2], ops: countOps(s[3], props) })
    }
    return procs
}

// A minimal interpreter for the disassembled statements of one straight-line-plus-jumps
// function (what the generator emits: assignments to locals and array elements, JMP, JMP IF
// NOT, RETURN). Expressions are the disassembler's infix text with locals and parameters
// (locN{Lm}, parN{Lm}) mapped to a frame array; the operators are JavaScript's.
function interpreter(stmts) {
    const local = t => t.replace(/\b(?:loc|par)\d+\{L(\d+)\}/g, "L[$1]")
    const byPc = new Map()
    const code = stmts.map((s, i) => {
        byPc.set(s.pc, i)
        let m
        if ((m = /^JMP (\d+) IF NOT (.*)$/.exec(s.text))) return { ops: s.ops, jz: +m[1], f: new Function("L", "return " + local(m[2])) }
        if ((m = /^JMP (\d+)$/.exec(s.text))) return { ops: s.ops, jmp: +m[1] }
        if (/^RETURN /.test(s.text)) return { ops: s.ops, ret: true }
        if ((m = /^(?:loc|par)\d+\{L(\d+)\} := (.*)$/.exec(s.text))) {
            const f = new Function("L", "return " + local(m[2]))
            const slot = +m[1]
            return { ops: s.ops, set: slot, f }
        }
        if ((m = /^(.*\]) := (.*)$/.exec(s.text)))
            return { ops: s.ops, f: new Function("L", local(m[1]) + " = " + local(m[2])), store: true }
        throw new Error("interpreter: unsupported statement " + s.text)
    })
    const int32 = v => typeof v === "number" && (v | 0) === v
    return args => {
        const L = [...args]
        let ops = 0
        for (let i = 0; i < code.length;) {
            const c = code[i]
            ops += c.ops
            if (c.ret) break
            if (c.jmp !== undefined) i = byPc.get(c.jmp)
            else if (c.jz !== undefined) i = c.f(L) ? i + 1 : byPc.get(c.jz)
            else {
                if (c.store) c.f(L)
                else {
                    const v = c.f(L)
                    if (!int32(v)) throw new Error(`interpreter: non-int32 value ${v} at ${stmts[i].pc}: ${stmts[i].text}`)
                    L[c.set] = v
                }
                i++
            }
            if (i === undefined) throw new Error("interpreter: jump to a non-statement")
        }
        return ops
    }
}

// One x25519(scalar, u) through the interpreted fengine on the call schedule of x25519.ts;
// returns the result (as a BigInt) and the instruction counts.
function countedX25519(fengine, scalar, u) {
    const k = Buffer.from(scalar)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    const st = new Array(ST_LEN).fill(0)
    const uu = BigInt("0x" + Buffer.from(u).reverse().toString("hex")) & ((1n << 255n) - 1n)
    for (let i = 0; i < 20; i++) st[i] = Number((uu >> BigInt(13 * i)) & 8191n)
    st[20] = 1
    for (let i = 0; i < 20; i++) st[60 + i] = st[i]
    st[80] = 1
    let ladder = 0
    let slice = 0
    for (let t = 254; t >= 0; t -= LADDER_STEPS) {
        const n = fengine([st, k, t, t + 1 < LADDER_STEPS ? t + 1 : LADDER_STEPS])
        ladder += n
        slice = Math.max(slice, n)
    }
    const m = 0 - st[100]
    for (let i = 20; i < 60; i++) {
        const d = m & (st[i] ^ st[i + 40])
        st[i] ^= d
        st[i + 40] ^= d
    }
    let inv = 0
    let sqrs = []
    let muls = []
    for (const [op, o, a, b] of [...INVERT(Z2, Z2), ["mul", X2, X2, Z2]]) {
        if (op === "mul") {
            ;[st[CTL], st[CTL + 1], st[CTL + 2]] = [o, a, b]
            const n = fengine([st, k, MODE_MUL, 1])
            inv += n
            muls.push(n)
        } else {
            let src = a
            for (let left = b; left > 0; left -= SQR_CHUNK) {
                const c = Math.min(left, SQR_CHUNK)
                ;[st[CTL], st[CTL + 1]] = [o, src]
                const n = fengine([st, k, MODE_SQR, c])
                inv += n
                sqrs.push([c, n])
                slice = Math.max(slice, n)
                src = o
            }
        }
    }
    let x = 0n
    for (let i = 19; i >= 0; i--) x = x * 8192n + BigInt(st[X2 + i])
    x = ((x % P) + P) % P
    return { x, ladder, inv, slice, sqrs, muls }
}

function nodeX25519Raw(scalar, u) {
    const PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex")
    const SPKI = Buffer.from("302a300506032b656e032100", "hex")
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8, scalar]), format: "der", type: "pkcs8" })
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI, u]), format: "der", type: "spki" })
    const out = diffieHellman({ privateKey, publicKey })
    return BigInt("0x" + Buffer.from(out).reverse().toString("hex"))
}

/**
 * Instruction count of one scalar multiplication, from executing the compiled fengine
 * (see the method above), checked against node:crypto on a few random inputs.
 */
export function countInstructions(root) {
    const props = opTable(root)
    const procs = disassemble(root, props)
    if (!procs.fengine) throw new Error("no proc fengine in the image")
    const fengine = interpreter(procs.fengine)
    let first
    for (let r = 0; r < 3; r++) {
        const scalar = randomBytes(32)
        const u = randomBytes(32)
        const c = countedX25519(fengine, scalar, u)
        if (c.x !== nodeX25519Raw(scalar, u)) throw new Error("interpreted fengine disagrees with node:crypto")
        if (first && first.ladder + first.inv !== c.ladder + c.inv) throw new Error("instruction count depends on the data")
        first ??= c
    }
    // per-unit figures: one ladder call of 1 step vs 2 steps, one squaring, one multiplication
    const k = Buffer.alloc(32, 0x55)
    const st = new Array(ST_LEN).fill(1)
    const step = fengine([st.slice(), k, 100, 2]) - fengine([st.slice(), k, 100, 1])
    st[CTL] = T0
    st[CTL + 1] = T0
    const sqr = fengine([st.slice(), k, MODE_SQR, 2]) - fengine([st.slice(), k, MODE_SQR, 1])
    const mul = first.muls[0]
    return {
        total: first.ladder + first.inv,
        ladder: first.ladder,
        inversion: first.inv,
        step,
        sqr,
        mul,
        slice: first.slice,
    }
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

    const c = countInstructions(ctx.root)
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
        {
            name: "x25519 device bytecode instructions",
            value: c.total,
            unit: "instr/op",
            note: `compiled image executed statement by statement; ladder ${c.ladder}, inversion ${c.inversion}`,
        },
        { name: "x25519 ladder step", value: c.step, unit: "instr" },
        { name: "x25519 field squaring (in a chain)", value: c.sqr, unit: "instr" },
        { name: "x25519 field multiplication (one engine call)", value: c.mul, unit: "instr" },
        { name: "x25519 longest slice between yields", value: c.slice, unit: "instr", note: "VM limit 131072" },
        { name: "x25519 node:crypto", value: nd, unit: "ms/op", note: `median of 7 batches of 2000; spread ${ctx.spread(node)}` },
        { name: "x25519 device (simulator) / node:crypto", value: m / nd, unit: "x" },
    ]
}
