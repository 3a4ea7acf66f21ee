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
