// The device's ticket store (PROTOCOL.md 6.6): two flash slots, `tt_slot_a` and `tt_slot_b`,
//
//     slot  = seq (uint32_be) || ticket (33) || resumption_secret (32) || pseudonym (8)
//             || resumed (uint16_be) || check (8)                                    87 bytes
//     check = SHA-256("tether/2 slot" || seq || ticket || resumption_secret || pseudonym || resumed)[0..8]
//
// `pseudonym` is the next_pseudonym that came with the ticket (4.4); `resumed` counts the
// resumed sessions since the last full handshake (6.9). At boot the slot with a valid check
// and the higher seq wins; a new ticket goes to the other slot with seq + 1. A power cut
// during a write damages at most the slot being written, and the other one still holds the
// previous good ticket. `check` detects torn writes; it is not a MAC (flash is not the
// adversary). A slot of another length (a version 1 slot, 77 bytes) is not valid.
//
// The store also remembers, in RAM, when the current ticket was saved: the start of its age
// (6.2). After a restart the age of a stored ticket is unknown, and so is the age of the
// out-of-band ticket of the settings (6.8), which the store offers only while neither slot is
// valid (with no pseudonym: the device then uses pseudonym0; and resumed = 0).
//
// seq wrap-around is not handled: at one ticket per connection, 2^32 writes outlast the flash
// by orders of magnitude, so save() refuses to go past 2^32 - 1 instead of wrapping.
//
// Storage is injected (SlotStorage): DeviceScript settings on the device, MemoryStorage in
// tests, which can tear a write the way a power cut would.
import { actionReport, millis } from "@devicescript/core"
import { settings } from "@devicescript/settings"
import { sha256 } from "../crypto/hash"
import { ResumeTicket } from "./resume"
import { PSEUDONYM_LEN, RESUMPTION_SECRET_LEN, SLOT_LABEL, TICKET_LEN } from "./wire"

/** Setting keys of the two slots (at most 13 characters). */
export const SLOT_A = "tt_slot_a"
export const SLOT_B = "tt_slot_b"
const SEQ_LEN = 4
const RESUMED_LEN = 2
const CHECK_LEN = 8
const TICKET_OFFSET = SEQ_LEN
const SECRET_OFFSET = TICKET_OFFSET + TICKET_LEN
const PSEUDONYM_OFFSET = SECRET_OFFSET + RESUMPTION_SECRET_LEN
const RESUMED_OFFSET = PSEUDONYM_OFFSET + PSEUDONYM_LEN
const CHECK_OFFSET = RESUMED_OFFSET + RESUMED_LEN
/** A slot: 87 bytes (key + 1 + value = 97, well under the settings limit of 232). */
export const SLOT_LEN = CHECK_OFFSET + CHECK_LEN
const MAX_SEQ = 4294967295
/** The largest `resumed` a slot holds (uint16). */
export const MAX_RESUMED = 65535
const CHECK_LABEL = Buffer.from(SLOT_LABEL)

/** A ticket as the store keeps it. The secret: never log. */
export interface StoredTicket extends ResumeTicket {
    /**
     * 8 bytes: the pseudonym that came with the ticket, for the next HS_INIT; undefined for
     * the out-of-band ticket (the device then uses pseudonym0, PROTOCOL.md 4.4)
     */
    pseudonym?: Buffer
    /** resumed sessions since the last full handshake: 0 after a full handshake, previous + 1 after a resumption */
    resumed: number
}

/** Byte storage under short keys: flash settings, or memory in tests. */
export interface SlotStorage {
    /** The stored bytes, or undefined when the key is absent. */
    read(key: string): Promise<Buffer | undefined>
    /** Stores bytes under key (a power cut may leave a torn value). */
    write(key: string, value: Buffer): Promise<void>
}

/** SlotStorage on the DeviceScript settings service (binary values, no JSON). */
export class SettingsStorage implements SlotStorage {
    async read(key: string): Promise<Buffer | undefined> {
        const pkt = await actionReport(
            settings,
            "get",
            async () => await settings.get(key),
            p => p.decode()[0] === key
        )
        const v = pkt.decode()[1] as Buffer
        return v && v.length ? v : undefined
    }

    async write(key: string, value: Buffer): Promise<void> {
        await settings.set(key, value)
    }
}

/** In-memory SlotStorage with a power-cut simulator, for tests. */
export class MemoryStorage implements SlotStorage {
    private keys: string[] = []
    private values: Buffer[] = []
    /** When >= 0, the next write stores only this many bytes and then throws (a power cut). */
    tearNext = -1
    /** Number of completed or torn writes. */
    writes = 0

    async read(key: string): Promise<Buffer | undefined> {
        const i = this.keys.indexOf(key)
        return i < 0 ? undefined : this.values[i].slice(0)
    }

    async write(key: string, value: Buffer): Promise<void> {
        let v = value.slice(0)
        const tear = this.tearNext
        if (tear >= 0) v = v.slice(0, tear)
        this.writes++
        const i = this.keys.indexOf(key)
        if (i < 0) {
            this.keys.push(key)
            this.values.push(v)
        } else this.values[i] = v
        if (tear >= 0) {
            this.tearNext = -1
            throw new Error("power cut")
        }
    }
}

function check(slot: Buffer): Buffer {
    return sha256(CHECK_LABEL, slot.slice(0, CHECK_OFFSET)).slice(0, CHECK_LEN)
}

/** Encodes a slot. */
export function encodeSlot(seq: number, t: StoredTicket): Buffer {
    if (t.ticket.length !== TICKET_LEN || t.secret.length !== RESUMPTION_SECRET_LEN)
        throw new TypeError("ticket-store: bad ticket or secret length")
    if (!t.pseudonym || t.pseudonym.length !== PSEUDONYM_LEN) throw new TypeError("ticket-store: a slot needs an 8-byte pseudonym")
    if (!(seq >= 0 && seq <= MAX_SEQ) || Math.floor(seq) !== seq) throw new RangeError("ticket-store: bad seq")
    const r = t.resumed
    if (!(r >= 0 && r <= MAX_RESUMED) || Math.floor(r) !== r) throw new RangeError("ticket-store: bad resumed count")
    const slot = Buffer.alloc(SLOT_LEN)
    const hi = Math.floor(seq / 65536)
    const lo = seq - hi * 65536
    slot[0] = hi >> 8
    slot[1] = hi & 0xff
    slot[2] = lo >> 8
    slot[3] = lo & 0xff
    slot.blitAt(TICKET_OFFSET, t.ticket, 0, TICKET_LEN)
    slot.blitAt(SECRET_OFFSET, t.secret, 0, RESUMPTION_SECRET_LEN)
    slot.blitAt(PSEUDONYM_OFFSET, t.pseudonym, 0, PSEUDONYM_LEN)
    slot[RESUMED_OFFSET] = r >> 8
    slot[RESUMED_OFFSET + 1] = r & 0xff
    slot.blitAt(CHECK_OFFSET, check(slot), 0, CHECK_LEN)
    return slot
}

/** A decoded slot. */
export interface Slot {
    seq: number
    t: StoredTicket
}

/** Decodes a slot; undefined when absent, of the wrong length (a version 1 slot), or with a bad check. */
export function decodeSlot(b: Buffer | undefined): Slot | undefined {
    if (b === undefined || b.length !== SLOT_LEN) return undefined
    const want = check(b)
    let diff = 0
    for (let i = 0; i < CHECK_LEN; i++) diff |= want[i] ^ b[CHECK_OFFSET + i]
    if (diff !== 0) return undefined
    // (hi16 * 65536 + lo16): no 32-bit bitwise op, so no sign trouble above 2^31
    const seq = (b[0] * 256 + b[1]) * 65536 + b[2] * 256 + b[3]
    return {
        seq,
        t: {
            ticket: b.slice(TICKET_OFFSET, SECRET_OFFSET),
            secret: b.slice(SECRET_OFFSET, PSEUDONYM_OFFSET),
            pseudonym: b.slice(PSEUDONYM_OFFSET, RESUMED_OFFSET),
            resumed: b[RESUMED_OFFSET] * 256 + b[RESUMED_OFFSET + 1],
        },
    }
}

function copy(t: StoredTicket): StoredTicket {
    return {
        ticket: t.ticket.slice(0),
        secret: t.secret.slice(0),
        pseudonym: t.pseudonym === undefined ? undefined : t.pseudonym.slice(0),
        resumed: t.resumed,
    }
}

/** The ticket store: the newest valid slot, and where the next ticket goes. */
export class TicketStore {
    private storage: SlotStorage
    /** The newest valid slot, and its key. */
    private slot: Slot
    private slotKey: string
    /** The out-of-band ticket (settings), offered while no slot is valid. */
    private outOfBand: StoredTicket
    /** clock() when the current slot was saved in this boot; undefined: its age is unknown. */
    private savedAt: number = undefined
    /** The monotonic clock of ticket ages: ds.millis() (uptime). */
    private clock: () => number

    private constructor(storage: SlotStorage, clock: () => number) {
        this.storage = storage
        this.clock = clock
    }

    /**
     * Reads both slots and keeps the valid one with the higher seq (PROTOCOL.md 6.6).
     * @param storage SettingsStorage on the device
     * @param outOfBand the out-of-band ticket of the settings (TT_TICKET, TT_RSECRET), used
     *     only while neither slot is valid (PROTOCOL.md 6.8); it is never written to a slot
     * @param clock the clock of ticket ages, in milliseconds; default ds.millis (tests set the age)
     */
    static async open(storage: SlotStorage, outOfBand?: ResumeTicket, clock?: () => number): Promise<TicketStore> {
        const store = new TicketStore(storage, clock || (() => millis()))
        if (outOfBand !== undefined) {
            if (outOfBand.ticket.length !== TICKET_LEN || outOfBand.secret.length !== RESUMPTION_SECRET_LEN)
                throw new TypeError("ticket-store: bad out-of-band ticket or secret length")
            store.outOfBand = { ticket: outOfBand.ticket.slice(0), secret: outOfBand.secret.slice(0), pseudonym: undefined, resumed: 0 }
        }
        const a = decodeSlot(await storage.read(SLOT_A))
        const b = decodeSlot(await storage.read(SLOT_B))
        if (a !== undefined && (b === undefined || a.seq >= b.seq)) {
            store.slot = a
            store.slotKey = SLOT_A
        } else if (b !== undefined) {
            store.slot = b
            store.slotKey = SLOT_B
        }
        return store
    }

    /**
     * The ticket to resume with: the newest valid slot's, else the out-of-band one (no
     * pseudonym, resumed 0), else undefined (the full handshake).
     */
    current(): StoredTicket | undefined {
        return this.slot !== undefined ? this.slot.t : this.outOfBand
    }

    /** The pseudonym stored with the current slot, or undefined when there is none (the device uses pseudonym0). */
    pseudonym(): Buffer | undefined {
        return this.slot === undefined ? undefined : this.slot.t.pseudonym
    }

    /**
     * The current ticket's age: milliseconds since it was saved, when that happened in this
     * boot; undefined when unknown (a slot read at boot, the out-of-band ticket, none).
     */
    ageMs(): number | undefined {
        if (this.slot === undefined || this.savedAt === undefined) return undefined
        return this.clock() - this.savedAt
    }

    /** The seq of the current slot (0 when there is none). */
    seq(): number {
        return this.slot === undefined ? 0 : this.slot.seq
    }

    /**
     * Stores a new ticket (with its pseudonym and `resumed`) in the slot that does not hold
     * the current one, with seq + 1, and only then makes it current; its age starts at the
     * call. If the write fails (a power cut), the current slot is untouched and stays current.
     */
    async save(t: StoredTicket): Promise<void> {
        const at = this.clock() // received just now: the start of the ticket's age (6.2)
        const seq = this.seq() + 1
        const slot = encodeSlot(seq, t) // throws past 2^32 - 1 (see the header)
        const key = this.slotKey === SLOT_A ? SLOT_B : SLOT_A
        await this.storage.write(key, slot)
        this.slot = { seq, t: copy(t) }
        this.slotKey = key
        this.savedAt = at
    }
}
