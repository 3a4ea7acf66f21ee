// The two-slot ticket store (PROTOCOL.md 6.6, version 2 slots of 87 bytes with the pseudonym
// and the resumed count): newest valid slot wins, a torn write of the newer slot falls back to
// the older one, a corrupt check byte is ignored, a version 1 slot (77 bytes) is not valid;
// the ticket's age is known only for a ticket saved in this boot; the out-of-band ticket is
// offered only while no slot is valid (no pseudonym, resumed 0) and never written; and the
// real settings service stores a slot as bytes.
// @timeout 30000
import * as ds from "@devicescript/core"
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

function ticketN(i: number, resumed?: number) {
    const ticket = Buffer.alloc(33)
    ticket.fillAt(0, 33, i)
    const secret = sha256(ticket)
    const pseudonym = sha256(secret).slice(0, 8)
    return { ticket, secret, pseudonym, resumed: resumed === undefined ? i : resumed }
}

async function reboot(mem: MemoryStorage) {
    return await TicketStore.open(mem)
}

describe("slot format", () => {
    test("87 bytes: seq, ticket, secret, pseudonym, resumed big-endian, check over the label and the rest", () => {
        const t = ticketN(1, 0x0102)
        const s = encodeSlot(0x01020304, t)
        expect(SLOT_LEN).toBe(87)
        expect(s.length).toBe(87)
        expect(hex(s.slice(0, 4))).toBe("01020304")
        expect(hex(s.slice(4, 37))).toBe(hex(t.ticket))
        expect(hex(s.slice(37, 69))).toBe(hex(t.secret))
        expect(hex(s.slice(69, 77))).toBe(hex(t.pseudonym))
        expect(hex(s.slice(77, 79))).toBe("0102")
        expect(hex(s.slice(79))).toBe(hex(sha256(Buffer.from("tether/2 slot"), s.slice(0, 79)).slice(0, 8)))
        const d = decodeSlot(s)
        expect(d.seq).toBe(0x01020304)
        expect(hex(d.t.ticket)).toBe(hex(t.ticket))
        expect(hex(d.t.secret)).toBe(hex(t.secret))
        expect(hex(d.t.pseudonym)).toBe(hex(t.pseudonym))
        expect(d.t.resumed).toBe(0x0102)
        expect(decodeSlot(encodeSlot(4294967295, t)).seq).toBe(4294967295)
        expect(decodeSlot(encodeSlot(1, ticketN(1, 65535))).t.resumed).toBe(65535)
        expect(decodeSlot(encodeSlot(1, ticketN(1, 0))).t.resumed).toBe(0)
        expect(() => encodeSlot(4294967296, t)).toThrow()
        expect(() => encodeSlot(1, ticketN(1, 65536))).toThrow()
        expect(() => encodeSlot(1, ticketN(1, -1))).toThrow()
        expect(() => encodeSlot(1, { ticket: t.ticket, secret: t.secret, pseudonym: undefined, resumed: 0 })).toThrow()
        expect(() => encodeSlot(1, { ticket: t.ticket, secret: t.secret, pseudonym: t.pseudonym.slice(1), resumed: 0 })).toThrow()
    })
    test("any flipped byte, a short or long value is rejected", async () => {
        const s = encodeSlot(7, ticketN(2))
        for (const i of [0, 3, 4, 40, 68, 69, 76, 77, 78, 79, 86]) {
            const bad = s.slice(0)
            bad[i] ^= 0x01
            expect(decodeSlot(bad)).toBe(undefined)
        }
        expect(decodeSlot(s.slice(0, 86))).toBe(undefined)
        expect(decodeSlot(Buffer.concat(s, Buffer.alloc(1)))).toBe(undefined)
        expect(decodeSlot(undefined)).toBe(undefined)
        await ds.sleep(0)
    })
    test("a version 1 slot (77 bytes, a valid version 1 check) is not valid", async () => {
        // seq || ticket || secret || SHA-256("tether/1 slot" || ...)[0..8], as version 1 wrote it
        const t = ticketN(3)
        const v1 = Buffer.alloc(77)
        v1[3] = 5
        v1.blitAt(4, t.ticket, 0, 33)
        v1.blitAt(37, t.secret, 0, 32)
        v1.blitAt(69, sha256(Buffer.from("tether/1 slot"), v1.slice(0, 69)), 0, 8)
        expect(decodeSlot(v1)).toBe(undefined)
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, v1)
        const st = await TicketStore.open(mem)
        expect(st.current()).toBe(undefined)
        expect(st.seq()).toBe(0)
        // a version 2 slot in the other key wins; the old one is overwritten by the next save
        await mem.write(SLOT_B, encodeSlot(1, ticketN(4)))
        const st2 = await TicketStore.open(mem)
        expect(st2.seq()).toBe(1)
        await st2.save(ticketN(5))
        expect((await mem.read(SLOT_A)).length).toBe(87)
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
        for (const keep of [0, 1, 4, 40, 76, 77, 86]) {
            await ds.sleep(0)
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
            expect(st.current().resumed).toBe(2)
            st = await reboot(mem)
            expect(st.seq()).toBe(2)
            expect(hex(st.current().pseudonym)).toBe(hex(ticketN(2).pseudonym))
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
        newer[86] ^= 0x40
        await mem.write(SLOT_B, newer)
        const st = await reboot(mem)
        expect(st.seq()).toBe(5)
        expect(hex(st.current().secret)).toBe(hex(ticketN(5).secret))
    })
    test("both slots bad: no ticket (full handshake), and the next save starts over", async () => {
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, Buffer.alloc(87))
        await mem.write(SLOT_B, Buffer.alloc(3))
        const st = await reboot(mem)
        expect(st.current()).toBe(undefined)
        await st.save(ticketN(1))
        expect((await reboot(mem)).seq()).toBe(1)
    })
})

describe("the ticket's age and the out-of-band ticket", () => {
    test("the age is known for a ticket saved in this boot, unknown after a reboot", async () => {
        const mem = new MemoryStorage()
        const st = await reboot(mem)
        expect(st.ageMs()).toBe(undefined)
        await st.save(ticketN(1))
        const a0 = st.ageMs()
        expect(a0 >= 0 && a0 < 100).toBe(true)
        await ds.sleep(120)
        expect(st.ageMs() >= 120).toBe(true)
        // a failed write keeps the previous ticket and its age
        mem.tearNext = 5
        let cut = false
        try {
            await st.save(ticketN(2))
        } catch (e) {
            cut = true
        }
        expect(cut).toBe(true)
        expect(st.ageMs() >= 120).toBe(true)
        const after = await reboot(mem)
        expect(hex(after.current().ticket)).toBe(hex(ticketN(1).ticket))
        expect(after.ageMs()).toBe(undefined)
        await after.save(ticketN(3))
        expect(after.ageMs() < 100).toBe(true)
    })
    test("the out-of-band ticket: only while no slot is valid, pseudonym undefined, resumed 0, never written", async () => {
        const mem = new MemoryStorage()
        const oob = { ticket: ticketN(9).ticket, secret: ticketN(9).secret }
        const st = await TicketStore.open(mem, oob)
        expect(hex(st.current().ticket)).toBe(hex(oob.ticket))
        expect(hex(st.current().secret)).toBe(hex(oob.secret))
        expect(st.current().pseudonym).toBe(undefined)
        expect(st.current().resumed).toBe(0)
        expect(st.pseudonym()).toBe(undefined)
        expect(st.ageMs()).toBe(undefined)
        expect(st.seq()).toBe(0)
        expect(mem.writes).toBe(0)
        await st.save(ticketN(1))
        expect(hex(st.current().ticket)).toBe(hex(ticketN(1).ticket))
        expect(hex(st.pseudonym())).toBe(hex(ticketN(1).pseudonym))
        // a valid slot wins over the out-of-band ticket at the next boot too
        const again = await TicketStore.open(mem, oob)
        expect(hex(again.current().ticket)).toBe(hex(ticketN(1).ticket))
        // both slots torn: the out-of-band ticket again
        await mem.write(SLOT_A, Buffer.alloc(10))
        expect(hex((await TicketStore.open(mem, oob)).current().ticket)).toBe(hex(oob.ticket))
        let bad = false
        try {
            await TicketStore.open(mem, { ticket: oob.ticket.slice(1), secret: oob.secret })
        } catch (e) {
            bad = true
        }
        expect(bad).toBe(true)
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
