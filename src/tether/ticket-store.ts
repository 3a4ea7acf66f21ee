// The device's ticket store (PROTOCOL.md 6.6): two flash slots, `tt_slot_a` and `tt_slot_b`,
//
//     slot  = seq (uint32_be) || ticket (33) || resumption_secret (32) || check (8)
//     check = SHA-256("tether/1 slot" || seq || ticket || resumption_secret)[0..8]
//
// At boot the slot with a valid check and the higher seq wins; a new ticket goes to the other
// slot with seq + 1. A power cut during a write damages at most the slot being written, and
// the other one still holds the previous good ticket. `check` detects torn writes; it is not
// a MAC (flash is not the adversary).
//
// seq wrap-around is not handled: at one ticket per connection, 2^32 writes outlast the flash
// by orders of magnitude, so save() refuses to go past 2^32 - 1 instead of wrapping.
//
// Storage is injected (SlotStorage): DeviceScript settings on the device, MemoryStorage in
// tests, which can tear a write the way a power cut would.
import { actionReport } from "@devicescript/core"
import { settings } from "@devicescript/settings"
import { sha256 } from "../crypto/hash"
import { ResumeTicket } from "./resume"
import { RESUMPTION_SECRET_LEN, TICKET_LEN } from "./wire"

/** Setting keys of the two slots (at most 13 characters). */
export const SLOT_A = "tt_slot_a"
export const SLOT_B = "tt_slot_b"
const SEQ_LEN = 4
const CHECK_LEN = 8
const TICKET_OFFSET = SEQ_LEN
const SECRET_OFFSET = TICKET_OFFSET + TICKET_LEN
const CHECK_OFFSET = SECRET_OFFSET + RESUMPTION_SECRET_LEN
/** A slot: 77 bytes (key + 1 + value = 87, well under the settings limit of 232). */
export const SLOT_LEN = CHECK_OFFSET + CHECK_LEN
const MAX_SEQ = 4294967295
const CHECK_LABEL = Buffer.from("tether/1 slot")

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
export function encodeSlot(seq: number, t: ResumeTicket): Buffer {
    if (t.ticket.length !== TICKET_LEN || t.secret.length !== RESUMPTION_SECRET_LEN)
        throw new TypeError("ticket-store: bad ticket or secret length")
    if (!(seq >= 0 && seq <= MAX_SEQ) || Math.floor(seq) !== seq) throw new RangeError("ticket-store: bad seq")
    const slot = Buffer.alloc(SLOT_LEN)
    const hi = Math.floor(seq / 65536)
    const lo = seq - hi * 65536
    slot[0] = hi >> 8
    slot[1] = hi & 0xff
    slot[2] = lo >> 8
    slot[3] = lo & 0xff
    slot.blitAt(TICKET_OFFSET, t.ticket, 0, TICKET_LEN)
    slot.blitAt(SECRET_OFFSET, t.secret, 0, RESUMPTION_SECRET_LEN)
    slot.blitAt(CHECK_OFFSET, check(slot), 0, CHECK_LEN)
    return slot
}

/** A decoded slot. */
export interface Slot {
    seq: number
    t: ResumeTicket
}

/** Decodes a slot; undefined when absent, of the wrong length, or with a bad check. */
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
        t: { ticket: b.slice(TICKET_OFFSET, SECRET_OFFSET), secret: b.slice(SECRET_OFFSET, CHECK_OFFSET) },
    }
}

/** The ticket store: the newest valid slot, and where the next ticket goes. */
export class TicketStore {
    private storage: SlotStorage
    /** The newest valid slot, and its key. */
    private slot: Slot
    private slotKey: string

    private constructor(storage: SlotStorage) {
        this.storage = storage
    }

    /**
     * Reads both slots and keeps the valid one with the higher seq (PROTOCOL.md 6.6).
     * @param storage SettingsStorage on the device
     */
    static async open(storage: SlotStorage): Promise<TicketStore> {
        const store = new TicketStore(storage)
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

    /** The current ticket and secret, or undefined when there is none. */
    current(): ResumeTicket | undefined {
        return this.slot === undefined ? undefined : this.slot.t
    }

    /** The seq of the current slot (0 when there is none). */
    seq(): number {
        return this.slot === undefined ? 0 : this.slot.seq
    }

    /**
     * Stores a new ticket in the slot that does not hold the current one, with seq + 1, and
     * only then makes it current. If the write fails (a power cut), the current slot is
     * untouched and stays current.
     */
    async save(t: ResumeTicket): Promise<void> {
        const seq = this.seq() + 1
        const slot = encodeSlot(seq, t) // throws past 2^32 - 1 (see the header)
        const key = this.slotKey === SLOT_A ? SLOT_B : SLOT_A
        await this.storage.write(key, slot)
        this.slot = { seq, t: { ticket: t.ticket.slice(0), secret: t.secret.slice(0) } }
        this.slotKey = key
    }
}
