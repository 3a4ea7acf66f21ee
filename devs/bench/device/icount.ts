// Bytecode instruction counts on the counting simulator (devs/bench/device/counting-vm.mjs): the
// VM's opcode counter, read through the patched Math.random().
import * as ds from "@devicescript/core"
import { Dh } from "../../../src/noise/dh"

/**
 * Opcodes the VM has executed since it started. Throws under the stock VM (whose Math.random()
 * is below 1), so a count is never taken from a VM that does not count.
 */
export function icount(): number {
    const n = Math.random()
    if (n < 1) throw new Error("icount: not the counting VM (devs/bench/device/counting-vm.mjs)")
    return n
}

/** The cost of reading the counter itself (two reads in a row differ by this much). */
export function icountCost(): number {
    const a = icount()
    const b = icount()
    return b - a
}

/** A Dh that counts its calls and the instructions spent inside them (other fibers included). */
export class MeteredDh implements Dh {
    calls = 0
    instr = 0
    private inner: Dh
    constructor(inner: Dh) {
        this.inner = inner
    }
    async x25519(scalar: Buffer, u: Buffer): Promise<Buffer> {
        const t = icount()
        const r = await this.inner.x25519(scalar, u)
        this.instr += icount() - t
        this.calls++
        return r
    }
    async x25519Base(scalar: Buffer): Promise<Buffer> {
        const t = icount()
        const r = await this.inner.x25519Base(scalar)
        this.instr += icount() - t
        this.calls++
        return r
    }
    reset() {
        this.calls = 0
        this.instr = 0
    }
}

/**
 * The longest run of instructions between two yields (one entry into the VM's interpreter loop,
 * what its InfiniteLoop guard limits to 131072) while f runs, as the counting VM keeps it.
 */
export async function longestSlice(f: () => Promise<void>): Promise<number> {
    await ds.sleep(1)
    Math.randomInt(2) // resets the VM's maximum
    await f()
    return Math.randomInt(2)
}

/**
 * The VM's heap in use, in bytes, right after one small allocation: under the counting VM in test
 * mode (GC stress: a full collection before every allocation) that is the live data now, plus
 * the 16 bytes or so of that allocation. Throws unless GC stress is on, where the figure would
 * include garbage.
 */
export function heapLive(): number {
    icount() // the counting VM, or throw
    if ((Math.randomInt(5) & 1) === 0) throw new Error("heapLive: no GC stress (run with devs run --test)")
    const b = Buffer.alloc(1)
    b[0] = 1
    return Math.randomInt(4)
}

/** The VM's heap size in bytes (all its chunks). */
export function heapSize(): number {
    icount()
    return Math.randomInt(6)
}

/**
 * The peak heap in use (bytes) while f runs, as the counting VM keeps it (the highest heap in
 * use after any allocation, i.e. under GC stress the peak live data), and the live heap right
 * before f: { before, peak }.
 */
export async function peakHeap(f: () => Promise<void>): Promise<{ before: number; peak: number }> {
    const before = heapLive()
    Math.randomInt(3) // resets the peak to the heap in use now
    await f()
    return { before, peak: Math.randomInt(3) }
}
