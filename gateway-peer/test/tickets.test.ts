// Tickets of PROTOCOL.md 6.1 (the compact, sealed shape) and the gateway's ticket key set: key
// kinds, rotation, retirement, the key file's versions; the TICKET record's content (6.3).
import { test } from "node:test"
import assert from "node:assert/strict"
import {
    ageAdd,
    decodeTicketContent,
    encodeTicketContent,
    mintTicket,
    openTicket,
    TicketKeySet,
    unsealTicket,
    verifyTicket,
    type TicketKeySetJson,
} from "../src/tickets.js"
import {
    DAY,
    OOB_TICKET_LIFETIME,
    TICKET_CONTENT_LEN,
    TICKET_LEN,
    TICKET_LIFETIME,
    TICKET_MAC_OFFSET,
    TICKET_SEALED_OFFSET,
} from "../src/wire.js"
import { h, readVectors } from "./vectors.js"

const T0 = 1_700_000_000
const deviceId = Buffer.from("0102030405060708", "hex")
const fixed = (b: number) => (n: number) => Buffer.alloc(n, b)
const LIFETIMES = { ticketLifetime: TICKET_LIFETIME, oobTicketLifetime: OOB_TICKET_LIFETIME }
const u32 = (x: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(x)
    return b
}
const opens = (o: object) => !("error" in o)

test("mint then open returns the fields, the key and the same resumption secret", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x11))
    const m = mintTicket({ deviceId, generation: 5, issuedAt: T0, chainOrigin: 3, keySet })
    assert.equal(m.ticket.length, TICKET_LEN)
    assert.equal(m.resumptionSecret.length, 32)
    const o = openTicket(m.ticket, keySet, T0 + 10, 3)
    assert.ok(!("error" in o))
    assert.deepEqual(o.deviceId, deviceId)
    assert.equal(o.generation, 5)
    assert.equal(o.issuedAt, T0)
    assert.equal(o.keyId, 0)
    assert.equal(o.kind, "session")
    assert.deepEqual(o.resumptionSecret, m.resumptionSecret)
    // the out-of-band kind signs with its own key
    const oob = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet, kind: "oob" })
    assert.equal(oob.ticket[0], keySet.currentOf("oob").id)
    assert.notEqual(oob.ticket[0], m.ticket[0])
    const oo = openTicket(oob.ticket, keySet, T0, 1)
    assert.ok(!("error" in oo))
    assert.equal(oo.kind, "oob")
})

test("the committed vectors' tickets: mintTicket reproduces them byte for byte", () => {
    const v = readVectors<{ tests: Record<string, string | number>[] }>("generated", "tether-resume.json").tests[0]!
    const keySet = TicketKeySet.fromKeys([{ id: v.ticket_key_id as number, key: h(v.ticket_key as string) }])
    const m = mintTicket({
        deviceId: h(v.device_id as string),
        generation: v.generation as number,
        issuedAt: v.issued_at as number,
        chainOrigin: v.chain_origin as number,
        keySet,
    })
    assert.equal(m.ticket.toString("hex"), v.ticket)
    assert.equal(m.resumptionSecret.toString("hex"), v.resumption_secret)
    assert.equal(ageAdd(m.resumptionSecret), v.age_add)
})

test("every tampered byte of a ticket is rejected", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x22))
    const { ticket } = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet })
    for (let i = 0; i < TICKET_LEN; i++) {
        const t = Buffer.from(ticket)
        t[i] = (t[i] as number) ^ 0x80
        const o = openTicket(t, keySet, T0, 1)
        assert.ok("error" in o, `byte ${i}`)
        assert.equal(o.error, i === 0 ? "unknown-key" : "bad-mac", `byte ${i}`)
    }
    // key id 0 -> 1 names the other live key (the out-of-band one): the MAC fails under it
    const other = Buffer.from(ticket)
    other[0] = 1
    assert.deepEqual(openTicket(other, keySet, T0, 1), { error: "bad-mac" })
    assert.deepEqual(openTicket(ticket.subarray(0, 32), keySet, T0, 1), { error: "bad-length" })
    assert.deepEqual(openTicket(Buffer.concat([ticket, Buffer.alloc(1)]), keySet, T0, 1), { error: "bad-length" })
})

test("sealed fields: two tickets of one device share no field bytes, and no field appears in clear", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x5e))
    const a = mintTicket({ deviceId, generation: 7, issuedAt: T0, chainOrigin: 7, keySet }).ticket
    const b = mintTicket({ deviceId, generation: 8, issuedAt: T0, chainOrigin: 7, keySet }).ticket
    // the key id is shared (it is the key's epoch). In clear the two would share 12 of their 16
    // field bytes (the device id and issued_at); sealed, they agree no more than random blocks do
    assert.equal(a[0], b[0])
    const sa = a.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET)
    const sb = b.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET)
    const same = [...sa].filter((x, i) => x === sb[i]).length
    assert.ok(same <= 3, `${same} of 16 sealed bytes equal`)
    assert.notDeepEqual(sa.subarray(0, 8), sb.subarray(0, 8), "no shared device id field")
    assert.notDeepEqual(sa.subarray(12), sb.subarray(12), "no shared issued_at field")
    assert.notDeepEqual(a.subarray(TICKET_MAC_OFFSET), b.subarray(TICKET_MAC_OFFSET))
    // over many tickets of one device, the sealed block looks random: few equal positions
    // between consecutive tickets (16/256 expected per pair), never the device id's 8 bytes
    let equal = 0
    let prev: Buffer | undefined
    for (let g = 1; g <= 64; g++) {
        const issuedAt = T0 + g * 3600
        const t = mintTicket({ deviceId, generation: g, issuedAt, chainOrigin: 1, keySet }).ticket
        const sealed = t.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET)
        for (const field of [deviceId, deviceId.subarray(0, 4), deviceId.subarray(4), u32(g), u32(issuedAt)])
            assert.equal(t.indexOf(field), -1, `generation ${g}: ${field.toString("hex")} appears in the ticket`)
        if (prev !== undefined) for (let i = 0; i < 16; i++) if (prev[i] === sealed[i]) equal++
        prev = Buffer.from(sealed)
    }
    assert.ok(equal < 20, `${equal} equal sealed bytes over 63 pairs of tickets`)
    // and two devices with the same generation and time
    const c = mintTicket({ deviceId: Buffer.from("0102030405060709", "hex"), generation: 7, issuedAt: T0, chainOrigin: 7, keySet }).ticket
    assert.notDeepEqual(c.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET), a.subarray(TICKET_SEALED_OFFSET, TICKET_MAC_OFFSET))
    // unsealing recovers the fields before the MAC is checked
    const u = unsealTicket(a, keySet, T0)
    assert.ok(!("error" in u))
    assert.deepEqual([u.deviceId, u.generation, u.issuedAt], [deviceId, 7, T0])
})

test("chain_origin is bound into the MAC: a ticket of an older chain fails it", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x23))
    const { ticket } = mintTicket({ deviceId, generation: 9, issuedAt: T0, chainOrigin: 4, keySet })
    assert.ok(opens(openTicket(ticket, keySet, T0, 4)))
    // the device's next full handshake moved full_generation: the chain's tickets no longer verify
    for (const origin of [0, 3, 5, 9, 10])
        assert.deepEqual(openTicket(ticket, keySet, T0, origin), { error: "bad-mac" }, `origin ${origin}`)
    const u = unsealTicket(ticket, keySet, T0)
    assert.ok(!("error" in u))
    assert.deepEqual(verifyTicket(ticket, u, 2 ** 32, keySet, T0, LIFETIMES), { error: "bad-mac" }, "an origin beyond uint32")
})

test("expiry by key kind: a session ticket after ticketLifetime, an out-of-band one after oobTicketLifetime", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x33))
    const s = mintTicket({ deviceId, generation: 2, issuedAt: T0, chainOrigin: 2, keySet }).ticket
    const o = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet, kind: "oob" }).ticket
    assert.ok(opens(openTicket(s, keySet, T0 + TICKET_LIFETIME - 1, 2)))
    assert.deepEqual(openTicket(s, keySet, T0 + TICKET_LIFETIME, 2), { error: "expired" })
    assert.ok(opens(openTicket(o, keySet, T0 + TICKET_LIFETIME, 1)), "an out-of-band ticket outlives 7 days")
    assert.ok(opens(openTicket(o, keySet, T0 + OOB_TICKET_LIFETIME - 1, 1)))
    assert.deepEqual(openTicket(o, keySet, T0 + OOB_TICKET_LIFETIME, 1), { error: "expired" })
    // the lifetimes are the caller's policy, each applied to its kind only
    const short = { ticketLifetime: 100, oobTicketLifetime: 1000 }
    assert.ok(opens(openTicket(s, keySet, T0 + 99, 2, short)))
    assert.deepEqual(openTicket(s, keySet, T0 + 100, 2, short), { error: "expired" })
    assert.ok(opens(openTicket(o, keySet, T0 + 999, 1, short)), "the oob ticket is not cut to ticketLifetime")
    assert.deepEqual(openTicket(o, keySet, T0 + 1000, 1, short), { error: "expired" })
    const long = { ticketLifetime: 5000, oobTicketLifetime: 10 }
    assert.ok(opens(openTicket(s, keySet, T0 + 4999, 2, long)), "the session ticket is not cut to oobTicketLifetime")
    assert.deepEqual(openTicket(o, keySet, T0 + 10, 1, long), { error: "expired" })
})

test("a ticket from another key set (another gateway) does not open", () => {
    const a = TicketKeySet.create(T0, fixed(0x44))
    const b = TicketKeySet.create(T0, fixed(0x55))
    const { ticket } = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet: a })
    assert.deepEqual(openTicket(ticket, b, T0, 1), { error: "bad-mac" })
})

test("rotating a session key: the old one opens its tickets for 7 days, not 365; an oob rotation keeps 365", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x66))
    const oldSession = keySet.current
    const R = T0 + 10
    // the last ticket the old session key signs, at the moment of the rotation
    const old = mintTicket({ deviceId, generation: 1, issuedAt: R, chainOrigin: 1, keySet })
    const oldOob = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet, kind: "oob" })
    const fresh = keySet.rotate(R, { rng: fixed(0x77) })
    assert.equal(fresh.id, 2, "the next id after the highest held")
    assert.equal(fresh.kind, "session")
    assert.equal(oldSession.retireAt, R + 7 * DAY)
    assert.equal(keySet.currentOf("oob").retireAt, undefined, "rotating one kind leaves the other's current key")
    const neu = mintTicket({ deviceId, generation: 2, issuedAt: R, chainOrigin: 1, keySet })
    assert.equal(neu.ticket[0], 2)
    assert.ok(opens(openTicket(old.ticket, keySet, R + 7 * DAY - 1, 1)), "within the overlap")
    // then the old session key is gone (the last ticket it can have signed has expired)
    assert.deepEqual(openTicket(old.ticket, keySet, R + 7 * DAY, 1), { error: "unknown-key" })
    assert.equal(keySet.prune(R + 7 * DAY), 1)
    assert.equal(keySet.keys.length, 2)
    assert.ok(opens(openTicket(neu.ticket, keySet, R + 7 * DAY - 1, 1)))
    assert.ok(opens(openTicket(oldOob.ticket, keySet, R + 7 * DAY, 1)), "the oob key was not rotated")

    // rotating the out-of-band key: its old key opens the long-lived pairing tickets for 365 days
    const oobKey = keySet.currentOf("oob")
    const R2 = R + 8 * DAY
    const freshOob = keySet.rotate(R2, { kind: "oob", rng: fixed(0x78) })
    assert.equal(freshOob.kind, "oob")
    assert.equal(oobKey.retireAt, R2 + 365 * DAY)
    assert.equal(keySet.current.id, fresh.id, "the session key stays current")
    assert.ok(opens(openTicket(oldOob.ticket, keySet, T0 + OOB_TICKET_LIFETIME - 1, 1)))
    const paired = mintTicket({ deviceId, generation: 1, issuedAt: R2, chainOrigin: 1, keySet, kind: "oob" })
    assert.equal(paired.ticket[0], freshOob.id)
})

test("rotation picks the next free id, wrapping, and refuses when all 256 are held; install refuses a held id", () => {
    const keySet = TicketKeySet.fromKeys([
        { id: 0xfe, key: Buffer.alloc(32, 1) },
        { id: 0xff, key: Buffer.alloc(32, 2), kind: "oob" },
    ])
    assert.equal(keySet.rotate(T0).id, 0, "0xff + 1 wraps to 0")
    assert.equal(keySet.current.id, 0)
    assert.throws(() => keySet.install({ id: 0xfe, kind: "session", key: Buffer.alloc(32, 3) }, T0), /held/)
    const full = TicketKeySet.fromKeys(
        Array.from(
            { length: 256 },
            (_, i) => ({ id: i, key: Buffer.alloc(32, i), retireAt: T0 + 1000, kind: i === 0 ? "oob" : "session" }) as const
        )
    )
    assert.throws(() => full.rotate(T0), /every key id is held/)
    // fromKeys without an out-of-band key gives the set one (id 0xff), so that pairing works
    const only = TicketKeySet.fromKeys([{ id: 3, key: Buffer.alloc(32, 9) }])
    assert.equal(only.currentOf("oob").id, 0xff)
    assert.equal(only.current.id, 3)
})

test("retire and retireAll delete at once: the retired keys' tickets are refused; current keys cannot be retired", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x81))
    const t0 = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet })
    const o0 = mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet, kind: "oob" })
    keySet.rotate(T0 + 1, { rng: fixed(0x82) }) // session 0 -> 2
    const t2 = mintTicket({ deviceId, generation: 2, issuedAt: T0 + 1, chainOrigin: 1, keySet })
    keySet.rotate(T0 + 2, { rng: fixed(0x83) }) // session 2 -> 3
    const t3 = mintTicket({ deviceId, generation: 3, issuedAt: T0 + 2, chainOrigin: 1, keySet })
    keySet.rotate(T0 + 3, { kind: "oob", rng: fixed(0x84) }) // oob 1 -> 4
    assert.deepEqual(
        keySet.keys.map(k => [k.id, k.kind, k.retireAt === undefined]),
        [
            [0, "session", false],
            [1, "oob", false],
            [2, "session", false],
            [3, "session", true],
            [4, "oob", true],
        ]
    )
    for (const t of [t0, t2, o0]) assert.ok(opens(openTicket(t.ticket, keySet, T0 + 10, 1)), "before retirement, within the overlap")

    // one key by id
    assert.equal(keySet.retire(2).id, 2)
    assert.deepEqual(openTicket(t2.ticket, keySet, T0 + 10, 1), { error: "unknown-key" })
    assert.ok(opens(openTicket(t0.ticket, keySet, T0 + 10, 1)), "the other old key still opens")
    assert.throws(() => keySet.retire(2), /no ticket key 2/)
    // current keys: rotate first
    assert.throws(() => keySet.retire(3), /current session key/)
    assert.throws(() => keySet.retire(4), /current oob key/)
    assert.ok(opens(openTicket(t3.ticket, keySet, T0 + 10, 1)))

    // every key that is not current, oldest first
    assert.deepEqual(
        keySet.retireAll().map(k => k.id),
        [0, 1]
    )
    assert.deepEqual(
        keySet.keys.map(k => k.id),
        [3, 4]
    )
    assert.deepEqual(openTicket(t0.ticket, keySet, T0 + 10, 1), { error: "unknown-key" })
    assert.deepEqual(openTicket(o0.ticket, keySet, T0 + 10, 1), { error: "unknown-key" })
    assert.ok(opens(openTicket(t3.ticket, keySet, T0 + 10, 1)), "the current key's tickets still open")
    assert.deepEqual(keySet.retireAll(), [], "nothing left to retire")
})

test("a key set survives JSON (version 2, with kinds) and rejects malformed files", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x12))
    keySet.rotate(T0 + 5, { rng: fixed(0x13) })
    const { ticket } = mintTicket({ deviceId, generation: 9, issuedAt: T0, chainOrigin: 9, keySet })
    const json = JSON.parse(JSON.stringify(keySet.toJSON())) as TicketKeySetJson
    assert.equal(json.version, 2)
    assert.deepEqual(
        json.keys.map(k => [k.id, k.kind, k.retire_at]),
        [
            [0, "session", T0 + 5 + 7 * DAY],
            [1, "oob", null],
            [2, "session", null],
        ]
    )
    const again = TicketKeySet.fromJSON(json)
    assert.ok(opens(openTicket(ticket, again, T0, 9)))
    assert.equal(again.keys.length, 3)
    assert.equal(again.currentOf("oob").id, 1)
    const key = "ab".repeat(32)
    assert.throws(
        () => TicketKeySet.fromJSON({ version: 2, keys: [{ id: 0, kind: "session", key: "zz", created_at: 0, retire_at: null }] }),
        /malformed/
    )
    assert.throws(
        () => TicketKeySet.fromJSON({ version: 2, keys: [{ id: 0, kind: "other", key, created_at: 0, retire_at: null }] }),
        /malformed/
    )
    assert.throws(() => TicketKeySet.fromJSON({ version: 3, keys: [] }), /version 2/)
    assert.throws(() => TicketKeySet.fromJSON(null), /version 2/)
    assert.throws(() => TicketKeySet.fromJSON({ version: 2, keys: [] }), /current session key/)
    assert.throws(
        () => TicketKeySet.fromJSON({ version: 2, keys: [{ id: 0, kind: "session", key, created_at: 0, retire_at: null }] }),
        /current oob key/
    )
    assert.throws(
        () =>
            TicketKeySet.fromJSON({
                version: 2,
                keys: [
                    { id: 0, kind: "session", key, created_at: 0, retire_at: null },
                    { id: 0, kind: "oob", key, created_at: 0, retire_at: null },
                ],
            }),
        /same id/
    )
})

test("a version 1 key file is read as session keys and upgraded with a fresh out-of-band key", () => {
    const v1 = {
        version: 1,
        keys: [
            { id: 4, key: "11".repeat(32), created_at: T0, retire_at: T0 + 7 * DAY },
            { id: 5, key: "22".repeat(32), created_at: T0 + 5, retire_at: null },
        ],
    }
    assert.throws(() => TicketKeySet.fromJSON(v1), /needs an upgrade/)
    const up = TicketKeySet.fromJSON(v1, { now: T0 + 100, rng: fixed(0x99) })
    assert.deepEqual(
        up.keys.map(k => [k.id, k.kind, k.retireAt, k.createdAt]),
        [
            [4, "session", T0 + 7 * DAY, T0],
            [5, "session", undefined, T0 + 5],
            [6, "oob", undefined, T0 + 100],
        ]
    )
    assert.deepEqual(up.currentOf("oob").key, Buffer.alloc(32, 0x99))
    assert.equal(up.current.id, 5, "the version 1 current key stays current")
    const json = up.toJSON()
    assert.equal(json.version, 2, "written back as version 2")
    assert.deepEqual(TicketKeySet.fromJSON(JSON.parse(JSON.stringify(json))).toJSON(), json)
    // the next free id, skipping held ones
    const wrap = TicketKeySet.fromJSON(
        {
            version: 1,
            keys: [
                { id: 0, key: "33".repeat(32), created_at: 0, retire_at: 10 },
                { id: 0xff, key: "44".repeat(32), created_at: 0, retire_at: null },
            ],
        },
        { now: 1 }
    )
    assert.equal(wrap.currentOf("oob").id, 1)
    assert.throws(() => TicketKeySet.fromJSON({ version: 1, keys: [] }, { now: 0 }), /current key/)
    assert.throws(
        () => TicketKeySet.fromJSON({ version: 1, keys: [{ id: 0, key: "zz", created_at: 0, retire_at: null }] }, { now: 0 }),
        /malformed/
    )
})

test("the TICKET record's content: ticket || resumption_secret || next_pseudonym, one encoder and one decoder", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x33))
    const m = mintTicket({ deviceId, generation: 7, issuedAt: T0, chainOrigin: 7, keySet })
    const pseudonym = Buffer.from("b1b2b3b4b5b6b7b8", "hex")
    const content = encodeTicketContent(m.ticket, m.resumptionSecret, pseudonym)
    assert.equal(content.length, TICKET_CONTENT_LEN)
    assert.deepEqual(content, Buffer.concat([m.ticket, m.resumptionSecret, pseudonym]), "the layout of PROTOCOL.md 6.3")
    const back = decodeTicketContent(content)
    assert.deepEqual(back, { ticket: m.ticket, secret: m.resumptionSecret, pseudonym })
    content.fill(0)
    assert.deepEqual(back?.ticket, m.ticket, "the decoded parts are copies: wiping the record leaves them")
    assert.deepEqual(back?.pseudonym, pseudonym)
    assert.equal(decodeTicketContent(Buffer.alloc(TICKET_CONTENT_LEN - 1)), undefined)
    assert.equal(decodeTicketContent(Buffer.alloc(TICKET_CONTENT_LEN + 1)), undefined)
    assert.throws(() => encodeTicketContent(m.ticket, m.resumptionSecret.subarray(1), pseudonym), TypeError)
    assert.throws(() => encodeTicketContent(m.ticket, m.resumptionSecret, pseudonym.subarray(1)), TypeError)
})

test("mintTicket refuses out-of-range fields", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x34))
    assert.throws(() => mintTicket({ deviceId: deviceId.subarray(1), generation: 1, issuedAt: T0, chainOrigin: 1, keySet }), TypeError)
    for (const bad of [{ generation: 2 ** 32 }, { issuedAt: -1 }, { chainOrigin: 1.5 }])
        assert.throws(() => mintTicket({ deviceId, generation: 1, issuedAt: T0, chainOrigin: 1, keySet, ...bad }), RangeError)
})
