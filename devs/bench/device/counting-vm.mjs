// A counting build of the DeviceScript simulator: the installed CLI's own WASM VM with one
// counter added, so a device program can read how many bytecode instructions it has executed.
//
// What is patched (binary, in the WASM embedded in node_modules/@devicescript/cli/built/
// devicescript-cli.cjs; the VM ships with its function names, which is how the two functions are
// found):
//   - devs_vm_exec_opcodes (runtime vm_main.c): the interpreter loop `while (ctx->curr_fn &&
//     --maxsteps && !ctx->suspension) devs_vm_exec_opcode(ctx, ctx->curr_fn);`. At the head of
//     its loop body (the point the InfiniteLoop guard's `--maxsteps` counts) a new f64 global is
//     incremented: one count per opcode dispatched, exactly the unit of the guard's 128K limit and
//     of the cycles-per-instruction measurements in the notes. (The last test of the loop, the one
//     that exits it, counts one more than the opcodes executed: at most one per entry into the VM,
//     i.e. per resumption of a fiber.)
//     Next to it a second global keeps the longest run of opcodes within one entry into that
//     loop (131072 - maxsteps: the quantity the guard limits, i.e. the longest slice between two
//     yields of any fiber).
//   - jd_gc_any_try_alloc (runtime gc_alloc.c, every allocation on the VM's heap goes through
//     it): after the block is allocated, the heap in use is computed from the GC's own lists (the
//     chunks' sizes less the blocks on its free list, block sizes in words from their headers) and
//     kept in a global, with the highest value since the last reset in another. Test mode
//     (`devs run --test`) runs the VM with GC stress: a full collection before every allocation,
//     so the heap in use right after an allocation is exactly the live data (reachable or pinned)
//     plus that block, and the highest value is the program's peak live heap. (A block freed
//     explicitly with jd_gc_free leaves the list until the next sweep, which under GC stress is
//     the next allocation.) Outside GC stress the value would include garbage: the device code
//     checks the flag (heap.ts).
//   - fun1_Math_randomInt(n) no longer draws a random number; n selects what it returns:
//       2  the longest slice (above) since the previous such call, and resets it
//       3  the peak heap in use (bytes) since the previous such call, and resets it to the heap
//          in use now
//       4  the heap in use (bytes) after the latest allocation
//       5  the VM's global flags (bit 0: GC stress)
//       6  the size of the heap (bytes, all chunks)
//       7  the number of allocations on the heap so far
//   - fun0_Math_random: returns the counter instead of a random number. A program run under this
//     build reads its instruction count as Math.random(); under the stock VM the value is below
//     1, which device code checks (icount() in ./icount.ts throws), so a count can never be taken
//     from the wrong VM.
// The patched CLI is written next to the original (devicescript-cli-icount.cjs: the bundle finds
// its own files relative to itself), and only when missing or older than the original or this file.
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

function leb(buf, pos) {
    let v = 0
    let shift = 0
    let b
    do {
        b = buf[pos++]
        v += (b & 0x7f) * 2 ** shift
        shift += 7
    } while (b & 0x80)
    return [v, pos]
}

function uleb(v) {
    const out = []
    do {
        let b = v & 0x7f
        v = Math.floor(v / 128)
        if (v) b |= 0x80
        out.push(b)
    } while (v)
    return Buffer.from(out)
}

function sections(wasm) {
    const list = []
    let pos = 8
    while (pos < wasm.length) {
        const id = wasm[pos]
        const [size, start] = leb(wasm, pos + 1)
        list.push({ id, start, end: start + size, head: pos })
        pos = start + size
    }
    return list
}

function functionNames(wasm, secs) {
    const names = new Map()
    for (const s of secs.filter(s => s.id === 0)) {
        let [nlen, p] = leb(wasm, s.start)
        if (wasm.toString("latin1", p, p + nlen) !== "name") continue
        p += nlen
        while (p < s.end) {
            const sub = wasm[p]
            const [size, q] = leb(wasm, p + 1)
            if (sub === 1) {
                let [count, r] = leb(wasm, q)
                for (let i = 0; i < count; i++) {
                    let idx, len
                    ;[idx, r] = leb(wasm, r)
                    ;[len, r] = leb(wasm, r)
                    names.set(wasm.toString("utf8", r, r + len), idx)
                    r += len
                }
            }
            p = q + size
        }
    }
    return names
}

function importCounts(wasm, secs) {
    const s = secs.find(s => s.id === 2)
    let funcs = 0
    let globals = 0
    if (!s) return { funcs, globals }
    let [count, p] = leb(wasm, s.start)
    for (let i = 0; i < count; i++) {
        let len
        ;[len, p] = leb(wasm, p)
        p += len
        ;[len, p] = leb(wasm, p)
        p += len
        const kind = wasm[p++]
        if (kind === 0) [, p] = leb(wasm, p)
        else if (kind === 1) {
            p++ // reftype
            const flags = wasm[p++]
            ;[, p] = leb(wasm, p)
            if (flags & 1) [, p] = leb(wasm, p)
        } else if (kind === 2) {
            const flags = wasm[p++]
            ;[, p] = leb(wasm, p)
            if (flags & 1) [, p] = leb(wasm, p)
        } else if (kind === 3) p += 2
        else throw new Error("counting-vm: unknown import kind " + kind)
        if (kind === 0) funcs++
        if (kind === 3) globals++
    }
    return { funcs, globals }
}

/** The stock VM's WASM with the counter added (see the header). */
export function patchWasm(wasm) {
    const secs = sections(wasm)
    const names = functionNames(wasm, secs)
    const { funcs: importedFuncs, globals: importedGlobals } = importCounts(wasm, secs)
    const need = [
        "devs_vm_exec_opcodes",
        "fun0_Math_random",
        "fun1_Math_randomInt",
        "devs_ret_double",
        "devs_ret_int",
        "devs_arg_int",
        "devs_get_global_flags",
        "jd_gc_any_try_alloc",
    ]
    for (const n of need) if (!names.has(n)) throw new Error("counting-vm: no function " + n + " in the VM")

    // a new mutable f64 global at the end of the global section
    const gs = secs.find(s => s.id === 6)
    const [gcount, gbody] = leb(wasm, gs.start)
    const gIndex = importedGlobals + gcount
    const newGlobal = Buffer.from([0x7c, 0x01, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b]) // f64 mut, f64.const 0, end
    const newI32 = Buffer.from([0x7f, 0x01, 0x41, 0x00, 0x0b]) // i32 mut, i32.const 0, end
    // gIndex: opcode count, +1: longest slice (f64); +2: heap in use, +3: its peak, +4: heap size,
    // +5: allocations (i32)
    const globalSec = Buffer.concat([uleb(gcount + 6), wasm.subarray(gbody, gs.end), newGlobal, newGlobal, newI32, newI32, newI32, newI32])

    // code section: rewrite two bodies
    const cs = secs.find(s => s.id === 10)
    const [fcount, cbody] = leb(wasm, cs.start)
    const bodies = []
    let p = cbody
    for (let i = 0; i < fcount; i++) {
        const [size, q] = leb(wasm, p)
        bodies.push(wasm.subarray(q, q + size))
        p = q + size
    }
    const g = uleb(gIndex)
    const g2 = uleb(gIndex + 1)
    const execIdx = names.get("devs_vm_exec_opcodes") - importedFuncs
    const randIdx = names.get("fun0_Math_random") - importedFuncs
    const randIntIdx = names.get("fun1_Math_randomInt") - importedFuncs
    // i32.const 131072; local.set 3; block; loop  -- the maxsteps loop of devs_vm_exec_opcodes
    const pattern = Buffer.from([0x41, 0x80, 0x80, 0x08, 0x21, 0x03, 0x02, 0x40, 0x03, 0x40])
    const exec = bodies[execIdx]
    const at = exec.indexOf(pattern)
    if (at < 0 || exec.indexOf(pattern, at + 1) >= 0) throw new Error("counting-vm: the interpreter loop was not found exactly once")
    const one = Buffer.alloc(8)
    one.writeDoubleLE(1)
    const inc = Buffer.concat([
        Buffer.from([0x23]),
        g,
        Buffer.from([0x44]),
        one,
        Buffer.from([0xa0, 0x24]),
        g,
        // slice = max(slice, 131072 - maxsteps): opcodes run in this entry of the loop so far
        Buffer.from([0x23]),
        g2,
        Buffer.from([0x41, 0x80, 0x80, 0x08, 0x20, 0x03, 0x6b, 0xb7, 0xa5, 0x24]),
        g2,
    ])
    bodies[execIdx] = Buffer.concat([exec.subarray(0, at + pattern.length), inc, exec.subarray(at + pattern.length)])
    // fun0_Math_random(ctx): devs_ret_double(ctx, counter)
    bodies[randIdx] = Buffer.concat([
        Buffer.from([0x00, 0x20, 0x00, 0x23]),
        g,
        Buffer.from([0x10]),
        uleb(names.get("devs_ret_double")),
        Buffer.from([0x0b]),
    ])
    const gUsed = uleb(gIndex + 2)
    const gPeak = uleb(gIndex + 3)
    const gSize = uleb(gIndex + 4)
    const gAllocs = uleb(gIndex + 5)
    const call = name => Buffer.concat([Buffer.from([0x10]), uleb(names.get(name))])
    const B = (...xs) => Buffer.concat(xs.map(x => (Buffer.isBuffer(x) ? x : Buffer.from(x))))
    // jd_gc_any_try_alloc(gc, tag, size): before its epilogue (local 3 = saved stack pointer,
    // local 4 = the result; locals 5..10 are dead there), with gc = local 0 (struct _devs_gc_t:
    // first_free @0, first_chunk @4; a chunk: next @0, end @4, blocks from @8; a block: header @0
    // with its size in words in the low 24 bits, a free block's next @4):
    //   size = 0; for (c = gc->first_chunk; c; c = c->next) size += c->end - (c + 8)
    //   used = size; for (b = gc->first_free; b; b = b->next) used -= (b->header & 0xffffff) * 4
    //   if (used > peak) peak = used; allocs++
    const alloc = bodies[names.get("jd_gc_any_try_alloc") - importedFuncs]
    // local.get 3; i32.const 16; i32.add; global.set SP; local.get 4; end
    const epilogue = Buffer.from([0x20, 0x03, 0x41, 0x10, 0x6a, 0x24])
    const ep = alloc.length - 10
    if (!alloc.subarray(ep, ep + 6).equals(epilogue) || !alloc.subarray(ep + 7).equals(Buffer.from([0x20, 0x04, 0x0b])))
        throw new Error("counting-vm: jd_gc_any_try_alloc does not end as expected")
    const heapWalk = B(
        [0x41, 0x00, 0x21, 0x05], // size = 0
        [0x20, 0x00, 0x28, 0x02, 0x04, 0x21, 0x06], // c = gc->first_chunk
        [0x02, 0x40, 0x03, 0x40], // block loop
        [0x20, 0x06, 0x45, 0x0d, 0x01], // if (!c) break
        [0x20, 0x05, 0x20, 0x06, 0x28, 0x02, 0x04, 0x20, 0x06, 0x41, 0x08, 0x6a, 0x6b, 0x6a, 0x21, 0x05], // size += c->end - (c + 8)
        [0x20, 0x06, 0x28, 0x02, 0x00, 0x21, 0x06], // c = c->next
        [0x0c, 0x00, 0x0b, 0x0b], // continue; end end
        [0x20, 0x05, 0x24],
        gSize,
        [0x20, 0x00, 0x28, 0x02, 0x00, 0x21, 0x06], // b = gc->first_free
        [0x02, 0x40, 0x03, 0x40], // block loop
        [0x20, 0x06, 0x45, 0x0d, 0x01], // if (!b) break
        [0x20, 0x05, 0x20, 0x06, 0x28, 0x02, 0x00, 0x41, 0xff, 0xff, 0xff, 0x07, 0x71, 0x41, 0x02, 0x74, 0x6b, 0x21, 0x05], // used -= (b->header & 0xffffff) << 2
        [0x20, 0x06, 0x28, 0x02, 0x04, 0x21, 0x06], // b = b->next
        [0x0c, 0x00, 0x0b, 0x0b], // continue; end end
        [0x20, 0x05, 0x24],
        gUsed,
        [0x20, 0x05, 0x23],
        gPeak,
        [0x4b, 0x04, 0x40, 0x20, 0x05, 0x24], // if (used > peak) peak = used
        gPeak,
        [0x0b, 0x23],
        gAllocs,
        [0x41, 0x01, 0x6a, 0x24],
        gAllocs
    )
    bodies[names.get("jd_gc_any_try_alloc") - importedFuncs] = B(alloc.subarray(0, ep), heapWalk, alloc.subarray(ep))
    // fun1_Math_randomInt(ctx): n = devs_arg_int(ctx, 0), then the selection of the header
    const zero = Buffer.alloc(8)
    const when = (n, ...body) => B([0x02, 0x40, 0x20, 0x01, 0x41, n, 0x47, 0x0d, 0x00], ...body, [0x0f, 0x0b]) // block; if (n != N) skip; ...; return; end
    bodies[randIntIdx] = B(
        [0x01, 0x01, 0x7f], // one i32 local (1)
        [0x20, 0x00, 0x41, 0x00],
        call("devs_arg_int"),
        [0x21, 0x01],
        when(3, [0x20, 0x00, 0x23], gPeak, call("devs_ret_int"), [0x23], gUsed, [0x24], gPeak),
        when(4, [0x20, 0x00, 0x23], gUsed, call("devs_ret_int")),
        when(5, [0x20, 0x00], call("devs_get_global_flags"), call("devs_ret_int")),
        when(6, [0x20, 0x00, 0x23], gSize, call("devs_ret_int")),
        when(7, [0x20, 0x00, 0x23], gAllocs, call("devs_ret_int")),
        // otherwise (2): devs_ret_double(ctx, slice); slice = 0
        [0x20, 0x00, 0x23],
        g2,
        call("devs_ret_double"),
        [0x44],
        zero,
        [0x24],
        g2,
        [0x0b]
    )
    const codeSec = Buffer.concat([uleb(fcount), ...bodies.flatMap(b => [uleb(b.length), b])])

    const parts = [wasm.subarray(0, 8)]
    for (const s of secs) {
        if (s.id === 6) parts.push(Buffer.from([6]), uleb(globalSec.length), globalSec)
        else if (s.id === 10) parts.push(Buffer.from([10]), uleb(codeSec.length), codeSec)
        else parts.push(wasm.subarray(s.head, s.end))
    }
    return Buffer.concat(parts)
}

/** Path of the counting CLI bundle for the project at root, written if missing or stale. */
export function countingCli(root) {
    const dir = join(root, "node_modules", "@devicescript", "cli", "built")
    const stock = join(dir, "devicescript-cli.cjs")
    const out = join(dir, "devicescript-cli-icount.cjs")
    const self = fileURLToPath(import.meta.url)
    if (existsSync(out) && statSync(out).mtimeMs >= Math.max(statSync(stock).mtimeMs, statSync(self).mtimeMs)) return out
    const src = readFileSync(stock, "utf8")
    const marker = 'wasmBinaryFile = "data:application/octet-stream;base64,'
    const i = src.indexOf(marker)
    if (i < 0 || src.indexOf(marker, i + 1) >= 0) throw new Error("counting-vm: the VM's WASM was not found exactly once in the CLI")
    const b = i + marker.length
    const e = src.indexOf('"', b)
    const wasm = Buffer.from(src.slice(b, e), "base64")
    if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error("counting-vm: not a WASM module")
    const patched = patchWasm(wasm)
    if (typeof WebAssembly !== "undefined" && !WebAssembly.validate(patched))
        throw new Error("counting-vm: the patched VM does not validate")
    writeFileSync(out, src.slice(0, b) + patched.toString("base64") + src.slice(e))
    return out
}
