// Resumption tickets, the compact shape (PROTOCOL.md 6.1):
//
//     ticket = key_id (1) || device_id (8) || generation (uint32_be) || expires_at (uint32_be) || mac (16)
//     mac    = HMAC-SHA-256(mac_key[key_id], "tether/1 ticket" || body)[0..16]
//     resumption_secret = HMAC-SHA-256(secret_key[key_id], "tether/1 resumption" || ticket)
//     mac_key, secret_key = HKDF(ticket_key[key_id], "")
//
// and the gateway's ticket key set: the current key signs, older keys keep opening their
// tickets until they retire; and the content of the TICKET record that carries both to the
// device (6.3), `ticket || resumption_secret`. Time is always passed in (seconds since the Unix
// epoch).
import { constantTimeEqual, hkdf2, hmacSha256 } from "./crypto/hash.js"
import { randomBytes, type RandomSource } from "./crypto/random.js"
import {
    DEVICE_ID_LEN,
    OOB_TICKET_LIFETIME,
    RESUMPTION_LABEL,
    RESUMPTION_SECRET_LEN,
    TICKET_BODY_LEN,
    TICKET_CONTENT_LEN,
    TICKET_DEVICE_ID_OFFSET,
    TICKET_EXPIRES_AT_OFFSET,
    TICKET_GENERATION_OFFSET,
    TICKET_KEY_ID_OFFSET,
    TICKET_KEY_LEN,
    TICKET_LEN,
    TICKET_MAC_LABEL,
    TICKET_MAC_LEN,
    TICKET_MAC_OFFSET,
    UINT32_MAX,
} from "./wire.js"

/**
 * The highest generation a ticket can carry (uint32 on the wire). A device whose
 * issued_generation reached it can be issued no ticket, so both handshakes are refused before
 * any work (PROTOCOL.md 6.4).
 */
export const MAX_GENERATION = UINT32_MAX

/** One ticket key. `key` is secret. */
export interface TicketKey {
    readonly id: number
    readonly key: Buffer
    /** seconds */
    readonly createdAt: number
    /** seconds; undefined for the current key. At and after it the key opens nothing. */
    retireAt: number | undefined
}

interface Derived {
    readonly macKey: Buffer
    readonly secretKey: Buffer
}

/** The serialised form kept in the state directory. */
export interface TicketKeySetJson {
    readonly version: 1
    readonly keys: { id: number; key: string; created_at: number; retire_at: number | null }[]
}

const isUint = (x: unknown, max: number): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max

/**
 * The gateway's ticket keys: the newest is current and signs; older ones open tickets until
 * `retireAt`. "a gateway MUST NOT keep two live keys with the same id".
 */
export class TicketKeySet {
    readonly #keys: TicketKey[]
    readonly #derived = new Map<number, Derived>()

    private constructor(keys: TicketKey[]) {
        if (keys.length === 0) throw new Error("tickets: a key set needs a current key")
        const ids = new Set(keys.map(k => k.id))
        if (ids.size !== keys.length) throw new Error("tickets: two keys with the same id")
        this.#keys = keys
    }

    /** A fresh set with one key, id 0. */
    static create(now: number, rng: RandomSource = randomBytes): TicketKeySet {
        return new TicketKeySet([{ id: 0, key: rng(TICKET_KEY_LEN), createdAt: now, retireAt: undefined }])
    }

    /** A set with given keys (tests, vectors); the last one is current. */
    static fromKeys(keys: { id: number; key: Buffer; createdAt?: number; retireAt?: number }[]): TicketKeySet {
        return new TicketKeySet(
            keys.map((k, i) => {
                if (!isUint(k.id, 0xff) || k.key.length !== TICKET_KEY_LEN) throw new Error("tickets: bad key")
                const retireAt = i === keys.length - 1 ? undefined : k.retireAt
                return { id: k.id, key: Buffer.from(k.key), createdAt: k.createdAt ?? 0, retireAt }
            })
        )
    }

    /** Parses the state directory's form. @throws Error with a clear message when malformed */
    static fromJSON(json: unknown): TicketKeySet {
        const j = json as Partial<TicketKeySetJson> | null
        if (j === null || typeof j !== "object" || j.version !== 1 || !Array.isArray(j.keys))
            throw new Error("tickets: the ticket key file is not a version 1 key set")
        const keys = j.keys.map((k, i) => {
            const key = typeof k?.key === "string" && /^[0-9a-f]{64}$/.test(k.key) ? Buffer.from(k.key, "hex") : undefined
            if (key === undefined || !isUint(k.id, 0xff) || !isUint(k.created_at, Number.MAX_SAFE_INTEGER))
                throw new Error(`tickets: ticket key ${i} is malformed`)
            const retireAt = k.retire_at === null ? undefined : k.retire_at
            if (retireAt !== undefined && !isUint(retireAt, Number.MAX_SAFE_INTEGER))
                throw new Error(`tickets: ticket key ${i} is malformed`)
            return { id: k.id, key, createdAt: k.created_at, retireAt }
        })
        if (keys.length > 0 && keys[keys.length - 1]?.retireAt !== undefined) throw new Error("tickets: the current key is retired")
        return new TicketKeySet(keys)
    }

    /** The state directory's form (contains the secret keys: write it with mode 0600). */
    toJSON(): TicketKeySetJson {
        return {
            version: 1,
            keys: this.#keys.map(k => ({ id: k.id, key: k.key.toString("hex"), created_at: k.createdAt, retire_at: k.retireAt ?? null })),
        }
    }

    /** The key that signs new tickets. */
    get current(): TicketKey {
        const k = this.#keys[this.#keys.length - 1]
        if (k === undefined) throw new Error("tickets: empty key set")
        return k
    }

    /** Every key held, oldest first (ids and times only are meant for display). */
    get keys(): readonly TicketKey[] {
        return this.#keys
    }

    /** The key with `id` if it is live at `now`. */
    live(id: number, now: number): TicketKey | undefined {
        const k = this.#keys.find(x => x.id === id)
        return k !== undefined && (k.retireAt === undefined || now < k.retireAt) ? k : undefined
    }

    /**
     * Makes a new current key. The old current key keeps opening its tickets until
     * `now + maxLifetime` (the longest lifetime it may have signed: the out-of-band one by
     * default), then is dropped by prune().
     * @throws if the next id (a one-byte counter) still names a live key
     */
    rotate(now: number, opts: { maxLifetime?: number; rng?: RandomSource } = {}): TicketKey {
        this.prune(now)
        const old = this.current
        const id = (old.id + 1) & 0xff
        if (this.#keys.some(k => k.id === id)) throw new Error(`tickets: key id ${id} is still live; wait until it retires`)
        old.retireAt = now + (opts.maxLifetime ?? OOB_TICKET_LIFETIME)
        const fresh: TicketKey = { id, key: (opts.rng ?? randomBytes)(TICKET_KEY_LEN), createdAt: now, retireAt: undefined }
        this.#keys.push(fresh)
        return fresh
    }

    /** Deletes the keys retired at `now`; returns how many. */
    prune(now: number): number {
        let n = 0
        for (let i = this.#keys.length - 2; i >= 0; i--) {
            const k = this.#keys[i]
            if (k?.retireAt !== undefined && now >= k.retireAt) {
                this.#keys.splice(i, 1)
                this.#derived.delete(k.id)
                k.key.fill(0) // best effort on a garbage-collected VM
                n++
            }
        }
        return n
    }

    /** mac_key, secret_key = HKDF(ticket_key, ""), cached per key. */
    derived(k: TicketKey): Derived {
        let d = this.#derived.get(k.id)
        if (d === undefined) {
            const [macKey, secretKey] = hkdf2(k.key, Buffer.alloc(0))
            d = { macKey, secretKey }
            this.#derived.set(k.id, d)
        }
        return d
    }
}

/** What minting yields: the ticket (not secret) and its resumption secret (secret). */
export interface MintedTicket {
    readonly ticket: Buffer
    readonly resumptionSecret: Buffer
}

function ticketMac(macKey: Buffer, body: Buffer): Buffer {
    return hmacSha256(macKey, TICKET_MAC_LABEL, body).subarray(0, TICKET_MAC_LEN)
}

function resumptionSecret(secretKey: Buffer, ticket: Buffer): Buffer {
    return hmacSha256(secretKey, RESUMPTION_LABEL, ticket)
}

/** Mints a ticket under the set's current key. @throws on out-of-range fields (caller errors) */
export function mintTicket(opts: { deviceId: Buffer; generation: number; expiresAt: number; keySet: TicketKeySet }): MintedTicket {
    const { deviceId, generation, expiresAt, keySet } = opts
    if (deviceId.length !== DEVICE_ID_LEN) throw new TypeError("mintTicket: device_id must be 8 bytes")
    if (!isUint(generation, UINT32_MAX) || !isUint(expiresAt, UINT32_MAX))
        throw new RangeError("mintTicket: generation and expires_at are uint32")
    const key = keySet.current
    const { macKey, secretKey } = keySet.derived(key)
    const ticket = Buffer.alloc(TICKET_LEN)
    ticket[TICKET_KEY_ID_OFFSET] = key.id
    deviceId.copy(ticket, TICKET_DEVICE_ID_OFFSET)
    ticket.writeUInt32BE(generation, TICKET_GENERATION_OFFSET)
    ticket.writeUInt32BE(expiresAt, TICKET_EXPIRES_AT_OFFSET)
    ticketMac(macKey, ticket.subarray(0, TICKET_BODY_LEN)).copy(ticket, TICKET_MAC_OFFSET)
    return { ticket, resumptionSecret: resumptionSecret(secretKey, ticket) }
}

/** Why a ticket did not open; logged locally, never sent (the peer gets TICKET_REJECTED). */
export type TicketError = "bad-length" | "unknown-key" | "bad-mac" | "expired"

/** An opened ticket. */
export interface OpenedTicket {
    readonly deviceId: Buffer
    readonly generation: number
    readonly expiresAt: number
    readonly keyId: number
    readonly resumptionSecret: Buffer
}

/** Reads the fields of a ticket without verifying it (logging, tests). undefined if not 33 bytes. */
export function peekTicket(ticket: Buffer): { keyId: number; deviceId: Buffer; generation: number; expiresAt: number } | undefined {
    if (ticket.length !== TICKET_LEN) return undefined
    return {
        keyId: ticket[TICKET_KEY_ID_OFFSET] as number,
        deviceId: Buffer.from(ticket.subarray(TICKET_DEVICE_ID_OFFSET, TICKET_GENERATION_OFFSET)),
        generation: ticket.readUInt32BE(TICKET_GENERATION_OFFSET),
        expiresAt: ticket.readUInt32BE(TICKET_EXPIRES_AT_OFFSET),
    }
}

/**
 * Opens a ticket, checking in PROTOCOL.md 6.2's order: length, live key_id, mac (constant
 * time), `expires_at` in the future. The registry checks (paired, revoked, min_generation,
 * chain limit) are the session's.
 */
export function openTicket(ticket: Buffer, keySet: TicketKeySet, now: number): OpenedTicket | { error: TicketError } {
    const f = peekTicket(ticket)
    if (f === undefined) return { error: "bad-length" }
    const key = keySet.live(f.keyId, now)
    if (key === undefined) return { error: "unknown-key" }
    const { macKey, secretKey } = keySet.derived(key)
    const mac = ticketMac(macKey, ticket.subarray(0, TICKET_BODY_LEN))
    if (!constantTimeEqual(mac, ticket.subarray(TICKET_MAC_OFFSET))) return { error: "bad-mac" }
    if (!(now < f.expiresAt)) return { error: "expired" }
    return { ...f, resumptionSecret: resumptionSecret(secretKey, Buffer.from(ticket)) }
}

/** A ticket and its resumption secret as the device holds them (the secret: never log). */
export interface TicketContent {
    readonly ticket: Buffer
    readonly secret: Buffer
}

/**
 * The TICKET record's content: `ticket || resumption_secret` (PROTOCOL.md 6.3).
 * @throws TypeError on ill-sized parts (caller errors)
 */
export function encodeTicketContent(ticket: Buffer, resumptionSecret: Buffer): Buffer {
    if (ticket.length !== TICKET_LEN || resumptionSecret.length !== RESUMPTION_SECRET_LEN)
        throw new TypeError("tickets: bad ticket or resumption secret length")
    return Buffer.concat([ticket, resumptionSecret], TICKET_CONTENT_LEN)
}

/**
 * Reads a TICKET record's content into copies of its two parts (the record's plaintext may be
 * wiped by its owner). undefined unless it is TICKET_CONTENT_LEN bytes.
 */
export function decodeTicketContent(content: Buffer): TicketContent | undefined {
    if (content.length !== TICKET_CONTENT_LEN) return undefined
    return { ticket: Buffer.from(content.subarray(0, TICKET_LEN)), secret: Buffer.from(content.subarray(TICKET_LEN)) }
}
