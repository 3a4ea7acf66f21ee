// TetherClient over many connections against a test-local version 2 gateway
// (./mini-gateway.ts): what the device decides and remembers between connections.
//
//   - the full handshake after prepare(): exactly two X25519 on the critical path (ee, se;
//     the runtime's X25519, counted), HS_INIT named by pseudonym0 when nothing is stored;
//     connect() returns at Established, the TICKET follows the device's first record and is
//     stored with its pseudonym and resumed = 0; one ephemeral (and es) per attempt;
//   - the fallback cap (PROTOCOL.md 6.9): ten connections answered TICKET_REJECTED fall back
//     to HS_INIT on r = 1, 2 and 8 only; a successful full handshake does not reset the
//     count, a successful resumption does;
//   - the resumption cap: 32 resumptions from a resumed = 0 ticket, then a full handshake;
//   - the ticket's age (6.2): unknown (out-of-band ticket, after a reboot) means no early
//     data, the content going as the first DATA record; known, it rides as early data with an
//     age the gateway decodes; refused early data is sent again as the first record;
//   - pseudonyms (4.4): the stored one in HS_INIT, pseudonym0 for one attempt after
//     REJECT(UNKNOWN_DEVICE).
// @timeout 120000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { hmacSha256, sha256 } from "../../../src/crypto/hash"
import { Dh } from "../../../src/noise/dh"
import { Connection, CountingDh, RejectedError, TetherClient, X25519 } from "../../../src/tether/client"
import { Pairing, pseudonym0 } from "../../../src/tether/handshake"
import { encodeSlot, MemoryStorage, SLOT_A, TicketStore } from "../../../src/tether/ticket-store"
import { Code, RESUME_CAP } from "../../../src/tether/wire"
import { MiniGateway, TOY_DH, until } from "./mini-gateway"

const hex = (b: Buffer) => b.toString("hex")

function filled(n: number, b: number): Buffer {
    const k = Buffer.alloc(n)
    k.fillAt(0, n, b)
    return k
}

interface Rig {
    gw: MiniGateway
    dh: CountingDh
    mem: MemoryStorage
    store: TicketStore
    client: TetherClient
    pairing: Pairing
}

/**
 * A device and its gateway.
 * @param inner the DH of both sides (TOY_DH: no cost; X25519: the real thing)
 * @param oob give the device an out-of-band ticket the gateway minted
 * @param mem the device's flash (a reboot: the same flash, a new store and client)
 */
async function rig(inner: Dh, oob: boolean, mem?: MemoryStorage, gw?: MiniGateway): Promise<Rig> {
    const devPriv = sha256(Buffer.from("device static"))
    const gwPriv = sha256(Buffer.from("gateway static"))
    const pairing: Pairing = {
        deviceId: filled(8, 0xd1),
        s: { privateKey: devPriv, publicKey: await inner.x25519Base(devPriv) },
        gatewayPublic: await inner.x25519Base(gwPriv),
        psk: sha256(Buffer.from("psk")),
    }
    const g = gw || (await new MiniGateway(pairing, gwPriv, inner).init())
    const m = mem || new MemoryStorage()
    const store = await TicketStore.open(m, oob ? g.mint() : undefined)
    const dh = new CountingDh(inner)
    const client = new TetherClient({ pairing, store, host: "gw.test", port: 1, dh, timeoutMs: 3000, connect: g.connector() })
    return { gw: g, dh, mem: m, store, client, pairing }
}

/** The device's first record, then the TICKET it brings is stored. */
async function confirm(r: Rig, c: Connection): Promise<void> {
    const seq = r.store.seq()
    await c.send(Buffer.from("hi"))
    for (let i = 0; i < 100 && r.store.seq() === seq; i++) await c.receive(10)
    expect(r.store.seq()).toBe(seq + 1)
}

/** connect(): "R" resumed, "H" full handshake, or "rejected N". */
async function attempt(r: Rig, early?: Buffer): Promise<{ how: string; c: Connection }> {
    try {
        const c = await r.client.connect(early)
        return { how: c.resumed ? "R" : "H", c }
    } catch (e) {
        if (e instanceof RejectedError) return { how: "rejected " + (e as RejectedError).code, c: undefined }
        return { how: "error " + (e as Error).message, c: undefined }
    }
}

describe("the full handshake's critical path", () => {
    test("after prepare(): 2 X25519 (ee, se), pseudonym0, TICKET stored in Established", async () => {
        const r = await rig(X25519, false)
        await r.client.prepare()
        expect(r.client.prepared()).toBe(true)
        r.dh.reset()
        const c = await r.client.connect()
        expect(r.dh.x + " " + r.dh.base).toBe("2 0") // ee, se: es and ss were prepared
        expect(c.resumed || c.fellBack).toBe(false)
        expect(r.gw.seen.first.join("")).toBe("H")
        expect(r.gw.seen.pseudonyms[0]).toBe(hex(pseudonym0(r.pairing.psk)))
        // Established without a TICKET: it follows the device's first record
        expect(r.store.current() === undefined).toBe(true)
        await confirm(r, c)
        const t = r.store.current()
        expect(hex(t.pseudonym)).toBe(r.gw.pseudonyms[1])
        expect(t.resumed).toBe(0)
        expect(r.store.ageMs() >= 0).toBe(true)
        await c.close()
        // the idle work for the next attempt: a key pair and its es (ss is cached)
        r.dh.reset()
        await r.client.prepare()
        expect(r.dh.x + " " + r.dh.base).toBe("1 1")
        await r.client.prepare() // nothing left to do
        expect(r.dh.x + " " + r.dh.base).toBe("1 1")
        // a full handshake on the next connection (the ticket refused, first fallback): the
        // stored pseudonym, 2 X25519 again
        r.gw.rejectTickets = true
        r.dh.reset()
        const f = await attempt(r)
        expect(f.how).toBe("H")
        expect(f.c.fellBack).toBe(true)
        expect(r.dh.x + " " + r.dh.base).toBe("2 0")
        expect(r.gw.seen.pseudonyms[1]).toBe(hex(t.pseudonym))
        expect(r.gw.seen.ephemerals[0] === r.gw.seen.ephemerals[1]).toBe(false)
        await f.c.close()
    })
    test("without prepare(): the handshake prepares first; one ephemeral per attempt", async () => {
        await ds.sleep(0)
        const r = await rig(TOY_DH, false)
        r.pairing.s.publicKey = undefined // as the link leaves it at boot
        r.gw.forgetPseudonyms()
        r.gw.pseudonyms = ["0000000000000000"] // pseudonym0 refused too: the attempts fail
        const a = await attempt(r)
        expect(a.how).toBe("rejected " + Code.UNKNOWN_DEVICE)
        expect(r.client.lastAttemptFull).toBe(true) // its ephemeral is spent: the link prepares during the backoff
        expect(r.client.prepared()).toBe(false)
        // public key, ss, the ephemeral and its es: then nothing, since HS_RESP never came
        expect(r.dh.x + " " + r.dh.base).toBe("2 2")
        const b = await attempt(r)
        expect(b.how).toBe("rejected " + Code.UNKNOWN_DEVICE)
        expect(r.dh.x + " " + r.dh.base).toBe("3 3") // a new ephemeral and its es
        expect(r.gw.seen.ephemerals.length).toBe(2)
        expect(r.gw.seen.ephemerals[0] === r.gw.seen.ephemerals[1]).toBe(false)
    })
})

describe("the fallback cap (PROTOCOL.md 6.9)", () => {
    test("10 connections answered TICKET_REJECTED: full handshakes on r = 1, 2, 8 only", async () => {
        const r = await rig(TOY_DH, true)
        r.gw.rejectTickets = true
        const got: string[] = []
        for (let i = 1; i <= 10; i++) {
            const a = await attempt(r)
            got.push(a.how)
            expect(r.client.lastAttemptFull).toBe(a.how === "H")
            if (a.c) {
                expect(a.c.fellBack).toBe(true)
                await confirm(r, a.c) // a confirmed full handshake, a new ticket: the count goes on
                await a.c.close()
            }
            expect(r.client.rejections).toBe(i)
            await ds.sleep(0)
        }
        const R = "rejected " + Code.TICKET_REJECTED
        expect(got.join(",")).toBe(["H", "H", R, R, R, R, R, "H", R, R].join(","))
        // every connection tried its ticket first; HS_INIT only on the same connection
        expect(r.gw.seen.first.join("")).toBe("RHRHRRRRRRHRR")
        // a successful resumption resets the count: the next rejection falls back again
        r.gw.rejectTickets = false
        const ok = await attempt(r)
        expect(ok.how).toBe("R")
        expect(r.client.rejections).toBe(0)
        await ok.c.close()
        r.gw.rejectTickets = true
        expect((await attempt(r)).how).toBe("H")
        expect(r.client.rejections).toBe(1)
    })
})

describe("the resumption cap (PROTOCOL.md 6.9)", () => {
    test("32 resumptions from a resumed = 0 ticket, the 33rd connection is a full handshake", async () => {
        const r = await rig(TOY_DH, true)
        let hows = ""
        const counts: number[] = []
        for (let i = 1; i <= RESUME_CAP + 2; i++) {
            const a = await attempt(r)
            hows += a.how
            await confirm(r, a.c)
            counts.push(r.store.current().resumed)
            expect(hex(r.store.current().pseudonym)).toBe(r.gw.pseudonyms[1])
            await a.c.close()
            await ds.sleep(0)
        }
        expect(hows).toBe("RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRHR")
        expect(counts.join(",")).toBe("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,0,1")
        // the count survives a reboot: it is in the slot
        const again = await rig(TOY_DH, false, r.mem, r.gw)
        expect(again.store.current().resumed).toBe(1)
    })
    test("a slot at the cap runs the full handshake even with a valid ticket", async () => {
        await ds.sleep(0)
        const r0 = await rig(TOY_DH, false)
        const t = r0.gw.mint()
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, encodeSlot(1, { ticket: t.ticket, secret: t.secret, pseudonym: filled(8, 7), resumed: RESUME_CAP }))
        r0.gw.pseudonyms.push(hex(filled(8, 7)))
        const r = await rig(TOY_DH, false, mem, r0.gw)
        const a = await attempt(r)
        expect(a.how).toBe("H")
        expect(a.c.fellBack).toBe(false)
        expect(r.gw.seen.pseudonyms[0]).toBe(hex(filled(8, 7)))
        await a.c.close()
    })
})

describe("the ticket's age and early data (PROTOCOL.md 6.2)", () => {
    test("unknown age (out-of-band ticket, after a reboot): no early data, the content goes first as a record", async () => {
        const r = await rig(TOY_DH, true)
        const early = Buffer.from("stream+queued")
        const a = await attempt(r, early)
        expect(a.how).toBe("R")
        expect(a.c.earlyAccepted).toBe(false)
        expect(r.gw.seen.early.join()).toBe("false")
        // the first DATA record is the content; the TICKET follows it
        expect(await until(() => r.store.seq() === 1 || r.gw.seen.data.length > 0, 2000)).toBe(true)
        expect(r.gw.seen.data.join()).toBe(hex(early))
        for (let i = 0; i < 50 && r.store.seq() === 0; i++) await a.c.receive(10)
        expect(r.store.seq()).toBe(1)
        await a.c.close()
        // known age now: early data, accepted, the age as the gateway decodes it
        await ds.sleep(300)
        const b = await attempt(r, early)
        expect(b.how + " " + b.c.earlyAccepted).toBe("R true")
        expect(r.gw.seen.early.join()).toBe("false,true")
        const age = r.gw.seen.ages[1]
        expect(age >= 300 && age < 5000).toBe(true)
        expect(r.gw.seen.data.join()).toBe(hex(early) + ",e:" + hex(early))
        // the TICKET came right after RESUME_RESP, without a record of the device
        for (let i = 0; i < 50 && r.store.seq() === 1; i++) await b.c.receive(10)
        expect(r.store.seq()).toBe(2)
        expect(r.store.current().resumed).toBe(2)
        await b.c.close()
        // a reboot: the same flash, the age unknown again
        const boot = await rig(TOY_DH, false, r.mem, r.gw)
        expect(boot.store.ageMs() === undefined).toBe(true)
        const c = await attempt(boot, early)
        expect(c.how + " " + c.c.earlyAccepted).toBe("R false")
        expect(r.gw.seen.early.join()).toBe("false,true,false")
        await c.c.close()
    })
    test("early data refused: sent again as the first DATA record", async () => {
        await ds.sleep(0)
        const r = await rig(TOY_DH, true)
        const a = await attempt(r, Buffer.from("one"))
        await confirm(r, a.c)
        await a.c.close()
        r.gw.refuseEarly = true
        const b = await attempt(r, Buffer.from("two"))
        expect(b.how + " " + b.c.earlyAccepted).toBe("R false")
        expect(r.gw.seen.early.join()).toBe("false,true")
        expect(await until(() => r.gw.seen.data.length === 3, 2000)).toBe(true)
        expect(r.gw.seen.data[2]).toBe(hex(Buffer.from("two")))
        await b.c.close()
    })
})

describe("pseudonyms (PROTOCOL.md 4.4)", () => {
    test('pseudonym0 = HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8]', () => {
        const psk = sha256(Buffer.from("psk"))
        expect(hex(pseudonym0(psk))).toBe(hex(hmacSha256(psk, Buffer.from("tether/2 pseudonym")).slice(0, 8)))
        expect(pseudonym0(psk).length).toBe(8)
        expect(() => pseudonym0(psk.slice(1))).toThrow()
    })
    test("REJECT(UNKNOWN_DEVICE) to the stored pseudonym: pseudonym0 for the next attempt only", async () => {
        const r0 = await rig(TOY_DH, false)
        const t = r0.gw.mint()
        const stale = filled(8, 0x55)
        const mem = new MemoryStorage()
        // a slot at the resumption cap: every connection is a full handshake
        await mem.write(SLOT_A, encodeSlot(1, { ticket: t.ticket, secret: t.secret, pseudonym: stale, resumed: RESUME_CAP }))
        const r = await rig(TOY_DH, false, mem, r0.gw) // the gateway does not know `stale`
        const p0 = hex(pseudonym0(r.pairing.psk))
        expect((await attempt(r)).how).toBe("rejected " + Code.UNKNOWN_DEVICE)
        const a = await attempt(r)
        expect(a.how).toBe("H")
        await a.c.close() // no record: no TICKET, the stale pseudonym is still the stored one
        expect((await attempt(r)).how).toBe("rejected " + Code.UNKNOWN_DEVICE)
        const b = await attempt(r)
        expect(b.how).toBe("H")
        await confirm(r, b.c) // a TICKET: a new pseudonym, resumed 0
        await b.c.close()
        expect(r.gw.seen.pseudonyms.join(",")).toBe([hex(stale), p0, hex(stale), p0].join(","))
        expect(hex(r.store.current().pseudonym)).toBe(r.gw.pseudonyms[1])
        expect(r.store.current().resumed).toBe(0)
        // any other REJECT keeps the stored pseudonym; the one rejected is not the stored one any more
        r.gw.rejectTickets = true
        expect((await attempt(r)).how).toBe("H") // r = 1: falls back with the new pseudonym
        expect(r.gw.seen.pseudonyms[4]).toBe(hex(r.store.current().pseudonym))
    })
    test("a newer stored pseudonym cancels the fallback to pseudonym0", async () => {
        await ds.sleep(0)
        const r0 = await rig(TOY_DH, false)
        const t = r0.gw.mint()
        const stale = filled(8, 0x66)
        const mem = new MemoryStorage()
        await mem.write(SLOT_A, encodeSlot(1, { ticket: t.ticket, secret: t.secret, pseudonym: stale, resumed: 0 }))
        const r = await rig(TOY_DH, false, mem, r0.gw)
        r.gw.rejectTickets = true
        expect((await attempt(r)).how).toBe("rejected " + Code.UNKNOWN_DEVICE) // R, then HS_INIT(stale)
        r.gw.rejectTickets = false
        const a = await attempt(r)
        expect(a.how).toBe("R")
        await confirm(r, a.c) // a new ticket and pseudonym
        await a.c.close()
        const fresh = hex(r.store.current().pseudonym)
        r.gw.rejectTickets = true
        expect((await attempt(r)).how).toBe("H") // rejections reset by the resumption: r = 1
        expect(r.gw.seen.pseudonyms.join(",")).toBe(hex(stale) + "," + fresh)
    })
})
