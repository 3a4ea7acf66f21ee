// Input mutations in the style of libFuzzer's MutationDispatcher: bit flips, byte sets,
// interesting values, arithmetic, inserts, deletes, copies inside the input, splices with another
// corpus entry, dictionary tokens. Deterministic: every choice comes from one seeded PRNG.

/** A small seeded PRNG (splitmix32): the same seed gives the same run. */
export class Rng {
    #s: number

    constructor(seed: number) {
        this.#s = seed >>> 0
    }

    /** A uint32. */
    next(): number {
        let z = (this.#s = (this.#s + 0x9e3779b9) >>> 0)
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
        return (z ^ (z >>> 16)) >>> 0
    }

    /** An integer in 0..n-1 (n >= 1). */
    below(n: number): number {
        return this.next() % n
    }

    bool(): boolean {
        return (this.next() & 1) === 1
    }
}

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x20, 0x40, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff]
const INTERESTING_16 = [0x0000, 0x0001, 0x007f, 0x0080, 0x00ff, 0x0100, 0x3fff, 0x7fff, 0x8000, 0xfffe, 0xffff]
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]

/** What a mutation may use besides the input itself. */
export interface MutationContext {
    /** the corpus, for splices */
    readonly corpus: readonly Buffer[]
    /** tokens (frame headers, type bytes, sizes) inserted or written over */
    readonly dictionary: readonly Buffer[]
    /** inputs longer than this are cut */
    readonly maxLen: number
}

type Mutation = (d: Buffer, r: Rng, c: MutationContext) => Buffer

const pos = (d: Buffer, r: Rng) => r.below(d.length)

const MUTATIONS: Mutation[] = [
    // flip a bit
    (d, r) => {
        if (d.length === 0) return d
        const i = pos(d, r)
        d[i] = (d[i] as number) ^ (1 << r.below(8))
        return d
    },
    // set a random byte
    (d, r) => {
        if (d.length === 0) return d
        d[pos(d, r)] = r.below(256)
        return d
    },
    // an interesting byte
    (d, r) => {
        if (d.length === 0) return d
        d[pos(d, r)] = INTERESTING_8[r.below(INTERESTING_8.length)] as number
        return d
    },
    // add or subtract a small number from a byte
    (d, r) => {
        if (d.length === 0) return d
        const i = pos(d, r)
        d[i] = ((d[i] as number) + (r.bool() ? 1 : -1) * (1 + r.below(16))) & 0xff
        return d
    },
    // an interesting uint16, either byte order
    (d, r) => {
        if (d.length < 2) return d
        const v = INTERESTING_16[r.below(INTERESTING_16.length)] as number
        const i = r.below(d.length - 1)
        if (r.bool()) d.writeUInt16BE(v, i)
        else d.writeUInt16LE(v, i)
        return d
    },
    // an interesting uint32, big-endian (the protocol's order)
    (d, r) => {
        if (d.length < 4) return d
        d.writeUInt32BE(INTERESTING_32[r.below(INTERESTING_32.length)] as number, r.below(d.length - 3))
        return d
    },
    // insert random bytes
    (d, r, c) => {
        const n = 1 + r.below(Math.min(8, Math.max(1, c.maxLen - d.length)))
        const ins = Buffer.alloc(n)
        const same = r.bool()
        const b = r.below(256)
        for (let k = 0; k < n; k++) ins[k] = same ? b : r.below(256)
        const i = r.below(d.length + 1)
        return Buffer.concat([d.subarray(0, i), ins, d.subarray(i)])
    },
    // delete a range
    (d, r) => {
        if (d.length < 2) return d
        const i = pos(d, r)
        const n = 1 + r.below(Math.min(16, d.length - i))
        return Buffer.concat([d.subarray(0, i), d.subarray(i + n)])
    },
    // copy a range of the input over or into another place of it
    (d, r) => {
        if (d.length < 2) return d
        const from = pos(d, r)
        const n = 1 + r.below(Math.min(64, d.length - from))
        const part = Buffer.from(d.subarray(from, from + n))
        const to = r.below(d.length + 1)
        if (r.bool()) return Buffer.concat([d.subarray(0, to), part, d.subarray(to)])
        part.copy(d, Math.min(to, d.length - 1))
        return d
    },
    // splice: this input's head with another entry's tail, or part of another inserted
    (d, r, c) => {
        if (c.corpus.length === 0) return d
        const o = c.corpus[r.below(c.corpus.length)] as Buffer
        if (o.length === 0) return d
        if (r.bool()) return Buffer.concat([d.subarray(0, r.below(d.length + 1)), o.subarray(r.below(o.length))])
        const from = r.below(o.length)
        const part = o.subarray(from, from + 1 + r.below(o.length - from))
        const to = r.below(d.length + 1)
        return Buffer.concat([d.subarray(0, to), part, d.subarray(to)])
    },
    // a dictionary token, inserted or written over
    (d, r, c) => {
        if (c.dictionary.length === 0) return d
        const t = c.dictionary[r.below(c.dictionary.length)] as Buffer
        const i = r.below(d.length + 1)
        if (r.bool() || i + t.length > d.length) return Buffer.concat([d.subarray(0, i), t, d.subarray(i)])
        t.copy(d, i)
        return d
    },
    // shorten or lengthen at the end (truncations find length checks)
    (d, r) => (r.bool() ? d.subarray(0, r.below(d.length + 1)) : Buffer.concat([d, Buffer.alloc(1 + r.below(4), r.below(256))])),
]

/** Mutates a copy of `input` with 1, 2, 4 ... up to 16 stacked mutations (libFuzzer's scheme). */
export function mutate(input: Buffer, r: Rng, c: MutationContext): Buffer {
    let d: Buffer = Buffer.from(input)
    const stack = 1 << r.below(5)
    for (let k = 0; k < stack; k++) {
        d = (MUTATIONS[r.below(MUTATIONS.length)] as Mutation)(d, r, c)
        if (d.length > c.maxLen) d = d.subarray(0, c.maxLen)
    }
    return Buffer.from(d)
}
