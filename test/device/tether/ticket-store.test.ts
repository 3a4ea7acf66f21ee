// The two-slot ticket store (PROTOCOL.md 6.6): newest valid slot wins, a torn write of the
// newer slot falls back to the older one, a corrupt check byte is ignored; and the real
// settings service stores a slot as bytes.
// @timeout 30000
import { describe, test, expect } from "@devicescript/test"
import { sha256 } from "../../../src/crypto/hash"
import {
    decodeSlot,
    encodeSlot,
    MemoryStorage,
    SettingsStorage,
    SLOT_A,
    SLOT_B,
    SLOT_LEN,
    TicketStore,
} from "../../../src/tether/ticket-store"

const hex = (b: Buffer) => b.toString("hex")

function ticketN(i: number) {
    const ticket = Buffer.alloc(33)
    ticket.fillAt(0, 33, i)
    const secret = sha256(ticket)
    return { ticket, secret }
}

async function reboot(mem: MemoryStorage) {
    return await TicketStore.open(mem)
}

describe("slot format", () => {
    test("77 bytes, seq big-endian, check over the label and the rest", () => {
        const t = ticketN(1)
        const s = encodeSlot(0x01020304, t)
        expect(SLOT_LEN).toBe(77)
        expect(s.length).toBe(77)
        expect(hex(s.slice(0, 4))).toBe("01020304")
        expect(hex(s.slice(69))).toBe(hex(sha256(Buffer.from("tether/1 slot"), s.slice(0, 69)).slice(0, 8)))
        const d = decodeSlot(s)
        expect(d.seq).toBe(0x01020304)
        expect(hex(d.t.ticket)).toBe(hex(t.ticket))
        expect(hex(d.t.secret)).toBe(hex(t.secret))
        expect(decodeSlot(encodeSlot(4294967295, t)).seq).toBe(4294967295)
        expect(() => encodeSlot(4294967296, t)).toThrow()
    })
    test("any flipped byte, a short or long value is rejected", () => {
        const s = encodeSlot(7, ticketN(2))
        for (const i of [0, 3, 4, 40, 68, 69, 76]) {
            const bad = s.slice(0)
            bad[i] ^= 0x01
            expect(decodeSlot(bad)).toBe(undefined)
        }
        expect(decodeSlot(s.slice(0, 76))).toBe(undefined)
        expect(decodeSlot(Buffer.concat(s, Buffer.alloc(1)))).toBe(undefined)
        expect(decodeSlot(undefined)).toBe(undefined)
    })
})

describe("TicketStore", () => {
    test("empty store; saves alternate slots; the newest wins after a reboot", async () => {
        const mem = new MemoryStorage()
        let st = await reboot(mem)
        expect(st.current()).toBe(undefined)
        await st.save(ticketN(1))
        expect(hex(await mem.read(SLOT_A))).toBe(hex(encodeSlot(1, ticketN(1))))
        expect(await mem.read(SLOT_B)).toBe(undefined)
        await st.save(ticketN(2))
        expect(decodeSlot(await mem.read(SLOT_B)).seq).toBe(2)
        await st.save(ticketN(3))
        expect(decodeSlot(await mem.read(SLOT_A)).seq).toBe(3)
        st = await reboot(mem)
        expect(st.seq()).toBe(3)
        expect(hex(st.current().ticket)).toBe(hex(ticketN(3).ticket))
        await st.save(ticketN(4)) // goes to B, the slot not holding the current ticket
        expect(decodeSlot(await mem.read(SLOT_B)).seq).toBe(4)
        st = await reboot(mem)
        expect(hex(st.current().ticket)).toBe(hex(ticketN(4).ticket))
    })
    test("newest slot wins whichever key holds it", async () => {
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, encodeSlot(9, ticketN(9)))
        await mem.write(SLOT_B, encodeSlot(8, ticketN(8)))
        let st = await reboot(mem)
        expect(st.seq()).toBe(9)
        const mem2 = new MemoryStorage()
        await mem2.write(SLOT_A, encodeSlot(8, ticketN(8)))
        await mem2.write(SLOT_B, encodeSlot(9, ticketN(9)))
        st = await reboot(mem2)
        expect(hex(st.current().ticket)).toBe(hex(ticketN(9).ticket))
    })
    test("torn write of the newer slot: the older ticket survives, at every tear point", async () => {
        for (const keep of [0, 1, 4, 40, 76]) {
            const mem = new MemoryStorage()
            let st = await reboot(mem)
            await st.save(ticketN(1))
            await st.save(ticketN(2)) // B, seq 2
            mem.tearNext = keep
            let cut = false
            try {
                await st.save(ticketN(3)) // to A, torn
            } catch (e) {
                cut = true
            }
            expect(cut).toBe(true)
            // the live store did not adopt the torn ticket
            expect(hex(st.current().ticket)).toBe(hex(ticketN(2).ticket))
            st = await reboot(mem)
            expect(st.seq()).toBe(2)
            expect(hex(st.current().ticket)).toBe(hex(ticketN(2).ticket))
            // and the next save overwrites the torn slot, not the good one
            await st.save(ticketN(4))
            st = await reboot(mem)
            expect(st.seq()).toBe(3)
            expect(hex(st.current().ticket)).toBe(hex(ticketN(4).ticket))
            expect(decodeSlot(await mem.read(SLOT_B)).seq).toBe(2)
        }
    })
    test("a corrupt check byte in the newer slot is ignored", async () => {
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, encodeSlot(5, ticketN(5)))
        const newer = encodeSlot(6, ticketN(6))
        newer[76] ^= 0x40
        await mem.write(SLOT_B, newer)
        const st = await reboot(mem)
        expect(st.seq()).toBe(5)
        expect(hex(st.current().secret)).toBe(hex(ticketN(5).secret))
    })
    test("both slots bad: no ticket (full handshake), and the next save starts over", async () => {
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, Buffer.alloc(77))
        await mem.write(SLOT_B, Buffer.alloc(3))
        const st = await reboot(mem)
        expect(st.current()).toBe(undefined)
        await st.save(ticketN(1))
        expect((await reboot(mem)).seq()).toBe(1)
    })
})

describe("SettingsStorage", () => {
    test("a slot round-trips through the settings service as bytes", async () => {
        const s = new SettingsStorage()
        const slot = encodeSlot(3, ticketN(3))
        await s.write("tt_test_slot", slot)
        expect(hex(await s.read("tt_test_slot"))).toBe(hex(slot))
        expect(await s.read("tt_none")).toBe(undefined)
        const st = await TicketStore.open(s)
        await st.save(ticketN(4))
        expect((await TicketStore.open(s)).seq()).toBe(st.seq())
    })
})
