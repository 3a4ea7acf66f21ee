// Resumption tickets, the compact sealed shape (PROTOCOL.md 6.1):
//
//     fields = device_id (8) || generation (uint32_be) || issued_at (uint32_be)
//     sealed = AES-256-Encrypt(enc_key[key_id], fields)            one block, no mode
//     mac    = HMAC-SHA-256(mac_key[key_id], "tether/2 ticket" || key_id || sealed || uint32_be(chain_origin))[0..16]
//     ticket = key_id (1) || sealed (16) || mac (16)
//     resumption_secret = HMAC-SHA-256(secret_key[key_id], "tether/2 resumption" || ticket)
//     mac_key, secret_key, enc_key = HKDF(ticket_key[key_id], "", 3)
//
// and the gateway's ticket key set: of each kind (session, out-of-band) the newest key is
// current and signs, older ones keep opening their tickets until they retire; and the content
// of the TICKET record that carries a ticket to the device (6.3), `ticket || resumption_secret
// || next_pseudonym`. Time is always passed in (seconds since the Unix epoch).
import { createCipheriv, createDecipheriv } from "node:crypto"
import { constantTimeEqual, hkdf3, hmacSha256 } from "./crypto/hash.js"
import { randomBytes, type RandomSource } from "./crypto/random.js"
import {
    AGE_LABEL,
    DEVICE_ID_LEN,
    FIELDS_DEVICE_ID_OFFSET,
    FIELDS_GENERATION_OFFSET,
    FIELDS_ISSUED_AT_OFFSET,
    OOB_TICKET_LIFETIME,
    PSEUDONYM_LEN,
    RESUMPTION_LABEL,
    RESUMPTION_SECRET_LEN,
    TICKET_BODY_LEN,
    TICKET_CONTENT_LEN,
    TICKET_FIELDS_LEN,
    TICKET_KEY_ID_OFFSET,
    TICKET_KEY_LEN,
    TICKET_LEN,
    TICKET_LIFETIME,
    TICKET_MAC_LABEL,
    TICKET_MAC_LEN,
    TICKET_MAC_OFFSET,
    TICKET_SEALED_OFFSET,
    UINT32_MAX,
} from "./wire.js"

/**
 * The highest generation a ticket can carry (uint32 on the wire). A device whose
 * issued_generation reached it can be issued no ticket, so both handshakes are refused before
 * any work (PROTOCOL.md 6.4).
 */
export const MAX_GENERATION = UINT32_MAX

/**
 * A ticket key's kind (6.1): session keys sign the tickets of confirmed sessions, out-of-band
 * keys only those that pairing mints, so that a session key retires with its 7-day tickets.
 */
export type TicketKeyKind = "session" | "oob"
export const TICKET_KEY_KINDS: readonly TicketKeyKind[] = ["session", "oob"]

/** The default lifetime of a kind's tickets, seconds (6.5). */
export function defaultLifetime(kind: TicketKeyKind): number {
    return kind === "oob" ? OOB_TICKET_LIFETIME : TICKET_LIFETIME
}

/** One ticket key. `key` is secret. */
export interface TicketKey {
    readonly id: number
    readonly kind: TicketKeyKind
    readonly key: Buffer
    /** seconds */
    readonly createdAt: number
    /** seconds; undefined for a current key. At and after it the key opens nothing. */
    retireAt: number | undefined
}

interface Derived {
    readonly macKey: Buffer
    readonly secretKey: Buffer
    readonly encKey: Buffer
}

/** The serialised form kept in the state directory. */
export interface TicketKeySetJson {
    readonly version: 2
    readonly keys: { id: number; kind: TicketKeyKind; key: string; created_at: number; retire_at: number | null }[]
}

const isUint = (x: unknown, max: number): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max

/**
 * The gateway's ticket keys: of each kind the newest is current and signs; older ones open
 * tickets until `retireAt`. "a gateway MUST NOT hold two keys with the same id".
 */
export class TicketKeySet {
    readonly #keys: TicketKey[]
    readonly #derived = new Map<number, Derived>()

    private constructor(keys: TicketKey[]) {
        const ids = new Set(keys.map(k => k.id))
        if (ids.size !== keys.length) throw new Error("tickets: two keys with the same id")
        for (const kind of TICKET_KEY_KINDS)
            if (keys.filter(k => k.kind === kind && k.retireAt === undefined).length !== 1)
                throw new Error(`tickets: a key set needs exactly one current ${kind} key`)
        this.#keys = keys
    }

    /** A fresh set: a session key (id 0) and an out-of-band key (id 1). */
    static create(now: number, rng: RandomSource = randomBytes): TicketKeySet {
        return new TicketKeySet([
            { id: 0, kind: "session", key: rng(TICKET_KEY_LEN), createdAt: now, retireAt: undefined },
            { id: 1, kind: "oob", key: rng(TICKET_KEY_LEN), createdAt: now, retireAt: undefined },
        ])
    }

    /**
     * A set with given keys (tests, vectors): of each kind the last one given is current (kind
     * default "session"). Without an out-of-band key the set gets one with id 0xff and the
     * session key's bytes reversed, so that a test that only cares about sessions can still pair.
     */
    static fromKeys(keys: { id: number; key: Buffer; kind?: TicketKeyKind; createdAt?: number; retireAt?: number }[]): TicketKeySet {
        const out: TicketKey[] = keys.map(k => {
            if (!isUint(k.id, 0xff) || k.key.length !== TICKET_KEY_LEN) throw new Error("tickets: bad key")
            return { id: k.id, kind: k.kind ?? "session", key: Buffer.from(k.key), createdAt: k.createdAt ?? 0, retireAt: k.retireAt }
        })
        for (const kind of TICKET_KEY_KINDS) {
            const last = out.filter(k => k.kind === kind).pop()
            if (last !== undefined) last.retireAt = undefined
        }
        const session = out.filter(k => k.kind === "session").pop()
        if (session !== undefined && !out.some(k => k.kind === "oob") && !out.some(k => k.id === 0xff))
            out.push({ id: 0xff, kind: "oob", key: Buffer.from(session.key).reverse(), createdAt: session.createdAt, retireAt: undefined })
        return new TicketKeySet(out)
    }

    /**
     * Parses the state directory's form. A version 1 file (keys without kinds, from PROTOCOL.md
     * version 1) is read as session keys, and gets a fresh out-of-band key from `upgrade`.
     * @throws Error with a clear message when malformed
     */
    static fromJSON(json: unknown, upgrade?: { now: number; rng?: RandomSource }): TicketKeySet {
        const j = json as { version?: unknown; keys?: unknown } | null
        if (j === null || typeof j !== "object" || (j.version !== 1 && j.version !== 2) || !Array.isArray(j.keys))
            throw new Error("tickets: the ticket key file is not a version 2 key set")
        const keys: TicketKey[] = (j.keys as Record<string, unknown>[]).map((k, i) => {
            const key = typeof k?.key === "string" && /^[0-9a-f]{64}$/.test(k.key) ? Buffer.from(k.key, "hex") : undefined
            const kind = j.version === 1 ? "session" : k?.kind
            if (
                key === undefined ||
                !isUint(k.id, 0xff) ||
                !isUint(k.created_at, Number.MAX_SAFE_INTEGER) ||
                (kind !== "session" && kind !== "oob")
            )
                throw new Error(`tickets: ticket key ${i} is malformed`)
            const retireAt = k.retire_at === null ? undefined : k.retire_at
            if (retireAt !== undefined && !isUint(retireAt, Number.MAX_SAFE_INTEGER))
                throw new Error(`tickets: ticket key ${i} is malformed`)
            return { id: k.id, kind, key, createdAt: k.created_at, retireAt }
        })
        if (j.version === 1) {
            // version 1: the last key is current, and there is no out-of-band key yet
            const last = keys[keys.length - 1]
            if (last === undefined || last.retireAt !== undefined) throw new Error("tickets: the current key is retired")
            if (upgrade === undefined) throw new Error("tickets: a version 1 key file needs an upgrade")
            const used = new Set(keys.map(k => k.id))
            let id = (last.id + 1) & 0xff
            while (used.has(id)) id = (id + 1) & 0xff
            keys.push({ id, kind: "oob", key: (upgrade.rng ?? randomBytes)(TICKET_KEY_LEN), createdAt: upgrade.now, retireAt: undefined })
        }
        return new TicketKeySet(keys)
    }

    /** The state directory's form (contains the secret keys: write it with mode 0600). */
    toJSON(): TicketKeySetJson {
        return {
            version: 2,
            keys: this.#keys.map(k => ({
                id: k.id,
                kind: k.kind,
                key: k.key.toString("hex"),
                created_at: k.createdAt,
                retire_at: k.retireAt ?? null,
            })),
        }
    }

    /** The key that signs new tickets of `kind`. */
    currentOf(kind: TicketKeyKind): TicketKey {
        const k = this.#keys.find(x => x.kind === kind && x.retireAt === undefined)
        if (k === undefined) throw new Error(`tickets: no current ${kind} key`)
        return k
    }

    /** The current session key. */
    get current(): TicketKey {
        return this.currentOf("session")
    }

    /** Every key held, oldest first (ids, kinds and times only are meant for display). */
    get keys(): readonly TicketKey[] {
        return this.#keys
    }

    /** The key with `id` if it is live at `now`. */
    live(id: number, now: number): TicketKey | undefined {
        const k = this.#keys.find(x => x.id === id)
        return k !== undefined && (k.retireAt === undefined || now < k.retireAt) ? k : undefined
    }

    /**
     * Makes a new current key of `kind` (default session). The old current key of that kind
     * keeps opening its tickets until `now + lifetime` (the longest lifetime it may have
     * signed: the kind's default unless given), then is dropped by prune(). The new id is the
     * next one after the highest held, skipping held ids.
     * @throws if all 256 ids are held
     */
    rotate(now: number, opts: { kind?: TicketKeyKind; lifetime?: number; rng?: RandomSource } = {}): TicketKey {
        this.prune(now)
        const kind = opts.kind ?? "session"
        const old = this.currentOf(kind)
        const used = new Set(this.#keys.map(k => k.id))
        if (used.size >= 256) throw new Error("tickets: every key id is held; retire a key first")
        let id = (Math.max(...used) + 1) & 0xff
        while (used.has(id)) id = (id + 1) & 0xff
        return this.install({ id, kind, key: (opts.rng ?? randomBytes)(TICKET_KEY_LEN) }, now, opts.lifetime)
    }

    /**
     * Makes the given key the current one of its kind (rotate's last step; `serve` uses it to
     * take up a rotation another process wrote to the key file). The old current key of that
     * kind retires at `now + lifetime`.
     * @throws if the id is held
     */
    install(k: { id: number; kind: TicketKeyKind; key: Buffer }, now: number, lifetime?: number): TicketKey {
        if (!isUint(k.id, 0xff) || k.key.length !== TICKET_KEY_LEN) throw new Error("tickets: bad key")
        if (this.#keys.some(x => x.id === k.id)) throw new Error(`tickets: key id ${k.id} is held`)
        const old = this.currentOf(k.kind)
        old.retireAt = now + (lifetime ?? defaultLifetime(k.kind))
        const fresh: TicketKey = { id: k.id, kind: k.kind, key: Buffer.from(k.key), createdAt: now, retireAt: undefined }
        this.#keys.push(fresh)
        return fresh
    }

    /**
     * Deletes key `id` now (`retire-ticket-key --now`, PROTOCOL.md 6.1): every ticket it signed
     * is refused from then on.
     * @throws if it is a current key (rotate its kind first) or not held
     */
    retire(id: number): TicketKey {
        const i = this.#keys.findIndex(k => k.id === id)
        const k = this.#keys[i]
        if (k === undefined) throw new Error(`tickets: no ticket key ${id}`)
        if (k.retireAt === undefined) throw new Error(`tickets: key ${id} is the current ${k.kind} key: rotate it first`)
        this.#remove(i)
        return k
    }

    /** Deletes every key that is not current now; returns them, oldest first. */
    retireAll(): TicketKey[] {
        const out: TicketKey[] = []
        for (let i = this.#keys.length - 1; i >= 0; i--) {
            const k = this.#keys[i] as TicketKey
            if (k.retireAt !== undefined) {
                out.unshift(k)
                this.#remove(i)
            }
        }
        return out
    }

    /** Deletes the keys retired at `now`; returns how many. */
    prune(now: number): number {
        let n = 0
        for (let i = this.#keys.length - 1; i >= 0; i--) {
            const k = this.#keys[i]
            if (k?.retireAt !== undefined && now >= k.retireAt) {
                this.#remove(i)
                n++
            }
        }
        return n
    }

    #remove(i: number): void {
        const [k] = this.#keys.splice(i, 1)
        if (k === undefined) return
        this.#derived.delete(k.id)
        k.key.fill(0) // best effort on a garbage-collected VM
    }

    /** mac_key, secret_key, enc_key = HKDF(ticket_key, "", 3), cached per key. */
    derived(k: TicketKey): Derived {
        let d = this.#derived.get(k.id)
        if (d === undefined) {
            const [macKey, secretKey, encKey] = hkdf3(k.key, Buffer.alloc(0))
            d = { macKey, secretKey, encKey }
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

function uint32(x: number): Buffer {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(x)
    return b
}

function ticketMac(macKey: Buffer, body: Buffer, chainOrigin: number): Buffer {
    return hmacSha256(macKey, TICKET_MAC_LABEL, body, uint32(chainOrigin)).subarray(0, TICKET_MAC_LEN)
}

function resumptionSecret(secretKey: Buffer, ticket: Buffer): Buffer {
    return hmacSha256(secretKey, RESUMPTION_LABEL, ticket)
}

/** The raw AES-256 block permutation on one block (FIPS 197): ECB of exactly one block is no mode. */
function seal(encKey: Buffer, fields: Buffer): Buffer {
    const c = createCipheriv("aes-256-ecb", encKey, null).setAutoPadding(false)
    return Buffer.concat([c.update(fields), c.final()])
}

function unseal(encKey: Buffer, sealed: Buffer): Buffer {
    const d = createDecipheriv("aes-256-ecb", encKey, null).setAutoPadding(false)
    return Buffer.concat([d.update(sealed), d.final()])
}

/**
 * `age_add = uint32 of HMAC-SHA-256(resumption_secret, "tether/2 age")[0..4]` (PROTOCOL.md 6.2):
 * what the device adds to the ticket's age, mod 2^32, to obfuscate it.
 */
export function ageAdd(secret: Buffer): number {
    return hmacSha256(secret, AGE_LABEL).readUInt32BE(0)
}

/** The fields a ticket seals. */
export interface TicketFields {
    readonly deviceId: Buffer
    readonly generation: number
    /** seconds since the Unix epoch */
    readonly issuedAt: number
}

/**
 * Mints a ticket under the current key of `kind` (default session); `chainOrigin` is the
 * device's full_generation, bound into the MAC. @throws on out-of-range fields (caller errors)
 */
export function mintTicket(opts: TicketFields & { chainOrigin: number; keySet: TicketKeySet; kind?: TicketKeyKind }): MintedTicket {
    const { deviceId, generation, issuedAt, chainOrigin, keySet } = opts
    if (deviceId.length !== DEVICE_ID_LEN) throw new TypeError("mintTicket: device_id must be 8 bytes")
    if (!isUint(generation, UINT32_MAX) || !isUint(issuedAt, UINT32_MAX) || !isUint(chainOrigin, UINT32_MAX))
        throw new RangeError("mintTicket: generation, issued_at and chain_origin are uint32")
    const key = keySet.currentOf(opts.kind ?? "session")
    const { macKey, secretKey, encKey } = keySet.derived(key)
    const fields = Buffer.alloc(TICKET_FIELDS_LEN)
    deviceId.copy(fields, FIELDS_DEVICE_ID_OFFSET)
    fields.writeUInt32BE(generation, FIELDS_GENERATION_OFFSET)
    fields.writeUInt32BE(issuedAt, FIELDS_ISSUED_AT_OFFSET)
    const ticket = Buffer.alloc(TICKET_LEN)
    ticket[TICKET_KEY_ID_OFFSET] = key.id
    seal(encKey, fields).copy(ticket, TICKET_SEALED_OFFSET)
    ticketMac(macKey, ticket.subarray(0, TICKET_BODY_LEN), chainOrigin).copy(ticket, TICKET_MAC_OFFSET)
    return { ticket, resumptionSecret: resumptionSecret(secretKey, ticket) }
}

/** Why a ticket did not open; logged locally, never sent (the peer gets TICKET_REJECTED). */
export type TicketError = "bad-length" | "unknown-key" | "bad-mac" | "expired"

/** A ticket whose key is live and whose fields were unsealed, but whose MAC is not checked yet. */
export interface UnsealedTicket extends TicketFields {
    readonly key: TicketKey
}

/**
 * The first half of opening a ticket (PROTOCOL.md 6.2 step 2): its length, a live `key_id`,
 * and the fields unsealed. Nothing here is trusted until verifyTicket() checked the MAC with the
 * device's chain origin, which needs the device_id read here.
 */
export function unsealTicket(ticket: Buffer, keySet: TicketKeySet, now: number): UnsealedTicket | { error: TicketError } {
    if (ticket.length !== TICKET_LEN) return { error: "bad-length" }
    const key = keySet.live(ticket[TICKET_KEY_ID_OFFSET] as number, now)
    if (key === undefined) return { error: "unknown-key" }
    const fields = unseal(keySet.derived(key).encKey, ticket.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET))
    return {
        key,
        deviceId: Buffer.from(fields.subarray(FIELDS_DEVICE_ID_OFFSET, FIELDS_GENERATION_OFFSET)),
        generation: fields.readUInt32BE(FIELDS_GENERATION_OFFSET),
        issuedAt: fields.readUInt32BE(FIELDS_ISSUED_AT_OFFSET),
    }
}

/** The lifetimes a ticket's expiry is checked against, by its key's kind (seconds). */
export interface TicketLifetimes {
    readonly ticketLifetime: number
    readonly oobTicketLifetime: number
}

/**
 * The second half: the MAC with `chainOrigin` (constant time), then the expiry
 * (`now < issued_at + lifetime of the key's kind`). Returns the resumption secret.
 */
export function verifyTicket(
    ticket: Buffer,
    t: UnsealedTicket,
    chainOrigin: number,
    keySet: TicketKeySet,
    now: number,
    lifetimes: TicketLifetimes
): { resumptionSecret: Buffer } | { error: TicketError } {
    if (!isUint(chainOrigin, UINT32_MAX)) return { error: "bad-mac" }
    const { macKey, secretKey } = keySet.derived(t.key)
    const mac = ticketMac(macKey, ticket.subarray(0, TICKET_BODY_LEN), chainOrigin)
    if (!constantTimeEqual(mac, ticket.subarray(TICKET_MAC_OFFSET))) return { error: "bad-mac" }
    const lifetime = t.key.kind === "oob" ? lifetimes.oobTicketLifetime : lifetimes.ticketLifetime
    if (!(now < t.issuedAt + lifetime)) return { error: "expired" }
    return { resumptionSecret: resumptionSecret(secretKey, Buffer.from(ticket)) }
}

/** A ticket, its resumption secret and the next pseudonym, as the device holds them (the secret: never log). */
export interface TicketContent {
    readonly ticket: Buffer
    readonly secret: Buffer
    readonly pseudonym: Buffer
}

/**
 * The TICKET record's content: `ticket || resumption_secret || next_pseudonym` (PROTOCOL.md 6.3).
 * @throws TypeError on ill-sized parts (caller errors)
 */
export function encodeTicketContent(ticket: Buffer, secret: Buffer, pseudonym: Buffer): Buffer {
    if (ticket.length !== TICKET_LEN || secret.length !== RESUMPTION_SECRET_LEN || pseudonym.length !== PSEUDONYM_LEN)
        throw new TypeError("tickets: bad ticket, resumption secret or pseudonym length")
    return Buffer.concat([ticket, secret, pseudonym], TICKET_CONTENT_LEN)
}

/**
 * Reads a TICKET record's content into copies of its parts (the record's plaintext may be
 * wiped by its owner). undefined unless it is TICKET_CONTENT_LEN bytes.
 */
export function decodeTicketContent(content: Buffer): TicketContent | undefined {
    if (content.length !== TICKET_CONTENT_LEN) return undefined
    const end = TICKET_LEN + RESUMPTION_SECRET_LEN
    return {
        ticket: Buffer.from(content.subarray(0, TICKET_LEN)),
        secret: Buffer.from(content.subarray(TICKET_LEN, end)),
        pseudonym: Buffer.from(content.subarray(end)),
    }
}

/** An opened ticket: its fields, its key and its resumption secret (secret). */
export interface OpenedTicket extends TicketFields {
    readonly keyId: number
    readonly kind: TicketKeyKind
    readonly resumptionSecret: Buffer
}

/**
 * unsealTicket then verifyTicket, for a caller that knows the chain origin (tests, tools; the
 * responder runs the two halves with the registry lookup between them).
 */
export function openTicket(
    ticket: Buffer,
    keySet: TicketKeySet,
    now: number,
    chainOrigin: number,
    lifetimes: TicketLifetimes = { ticketLifetime: TICKET_LIFETIME, oobTicketLifetime: OOB_TICKET_LIFETIME }
): OpenedTicket | { error: TicketError } {
    const t = unsealTicket(ticket, keySet, now)
    if ("error" in t) return t
    const v = verifyTicket(ticket, t, chainOrigin, keySet, now, lifetimes)
    if ("error" in v) return v
    return {
        deviceId: t.deviceId,
        generation: t.generation,
        issuedAt: t.issuedAt,
        keyId: t.key.id,
        kind: t.key.kind,
        resumptionSecret: v.resumptionSecret,
    }
}
