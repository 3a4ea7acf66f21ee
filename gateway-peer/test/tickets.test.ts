import { test } from "node:test"
import assert from "node:assert/strict"
import { decodeTicketContent, encodeTicketContent, mintTicket, openTicket, TicketKeySet } from "../src/tickets.js"
import { DAY, TICKET_CONTENT_LEN, TICKET_LEN } from "../src/wire.js"

const T0 = 1_700_000_000
const deviceId = Buffer.from("0102030405060708", "hex")
const fixed = (b: number) => (n: number) => Buffer.alloc(n, b)

test("mint then open returns the fields and the same resumption secret", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x11))
    const m = mintTicket({ deviceId, generation: 5, expiresAt: T0 + DAY, keySet })
    assert.equal(m.ticket.length, TICKET_LEN)
    assert.equal(m.resumptionSecret.length, 32)
    const o = openTicket(m.ticket, keySet, T0 + 10)
    assert.ok(!("error" in o))
    assert.deepEqual(o.deviceId, deviceId)
    assert.equal(o.generation, 5)
    assert.equal(o.expiresAt, T0 + DAY)
    assert.equal(o.keyId, 0)
    assert.deepEqual(o.resumptionSecret, m.resumptionSecret)
})

test("every tampered byte of a ticket is rejected", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x22))
    const { ticket } = mintTicket({ deviceId, generation: 1, expiresAt: T0 + DAY, keySet })
    for (let i = 0; i < TICKET_LEN; i++) {
        const t = Buffer.from(ticket)
        t[i] = (t[i] as number) ^ 0x01
        const o = openTicket(t, keySet, T0)
        assert.ok("error" in o, `byte ${i}`)
        assert.equal(o.error, i === 0 ? "unknown-key" : "bad-mac", `byte ${i}`)
    }
    assert.deepEqual(openTicket(ticket.subarray(0, 32), keySet, T0), { error: "bad-length" })
    assert.deepEqual(openTicket(Buffer.concat([ticket, Buffer.alloc(1)]), keySet, T0), { error: "bad-length" })
})

test("a ticket expires at expires_at", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x33))
    const { ticket } = mintTicket({ deviceId, generation: 1, expiresAt: T0 + 100, keySet })
    assert.ok(!("error" in openTicket(ticket, keySet, T0 + 99)))
    assert.deepEqual(openTicket(ticket, keySet, T0 + 100), { error: "expired" })
})

test("a ticket from another key set (another gateway) does not open", () => {
    const a = TicketKeySet.create(T0, fixed(0x44))
    const b = TicketKeySet.create(T0, fixed(0x55))
    const { ticket } = mintTicket({ deviceId, generation: 1, expiresAt: T0 + DAY, keySet: a })
    assert.deepEqual(openTicket(ticket, b, T0), { error: "bad-mac" })
})

test("rotation with overlap: the old key opens its tickets until it retires", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x66))
    const old = mintTicket({ deviceId, generation: 1, expiresAt: T0 + 7 * DAY, keySet })
    const fresh = keySet.rotate(T0 + 10, { maxLifetime: 7 * DAY, rng: fixed(0x77) })
    assert.equal(fresh.id, 1)
    const neu = mintTicket({ deviceId, generation: 2, expiresAt: T0 + 8 * DAY, keySet })
    assert.equal(neu.ticket[0], 1)
    assert.ok(!("error" in openTicket(old.ticket, keySet, T0 + 6 * DAY)))
    assert.ok(!("error" in openTicket(neu.ticket, keySet, T0 + 6 * DAY)))
    // after the overlap the old key is gone: its ticket names an unknown key
    assert.deepEqual(openTicket(old.ticket, keySet, T0 + 10 + 7 * DAY), { error: "unknown-key" })
    assert.equal(keySet.prune(T0 + 10 + 7 * DAY), 1)
    assert.equal(keySet.keys.length, 1)
    assert.ok(!("error" in openTicket(neu.ticket, keySet, T0 + 7 * DAY + 20)))
})

test("rotation refuses to reuse a live key id", () => {
    const keySet = TicketKeySet.fromKeys([{ id: 0xff, key: Buffer.alloc(32, 1) }])
    keySet.rotate(T0) // 0xff -> 0x00
    assert.equal(keySet.current.id, 0)
    const ks = TicketKeySet.fromKeys([
        { id: 1, key: Buffer.alloc(32, 1), retireAt: T0 + 100 },
        { id: 0, key: Buffer.alloc(32, 2) },
    ])
    assert.throws(() => ks.rotate(T0), /still live/)
})

test("a key set survives JSON and rejects malformed files", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x12))
    keySet.rotate(T0 + 5, { rng: fixed(0x13) })
    const { ticket } = mintTicket({ deviceId, generation: 9, expiresAt: T0 + DAY, keySet })
    const again = TicketKeySet.fromJSON(JSON.parse(JSON.stringify(keySet.toJSON())))
    assert.ok(!("error" in openTicket(ticket, again, T0)))
    assert.equal(again.keys.length, 2)
    assert.throws(() => TicketKeySet.fromJSON({ version: 1, keys: [{ id: 0, key: "zz", created_at: 0, retire_at: null }] }), /malformed/)
    assert.throws(() => TicketKeySet.fromJSON({ version: 2, keys: [] }), /version 1/)
    assert.throws(() => TicketKeySet.fromJSON({ version: 1, keys: [] }), /current key/)
})

test("the TICKET record's content: ticket || resumption_secret, one encoder and one decoder", () => {
    const keySet = TicketKeySet.create(T0, fixed(0x33))
    const m = mintTicket({ deviceId, generation: 7, expiresAt: T0 + DAY, keySet })
    const content = encodeTicketContent(m.ticket, m.resumptionSecret)
    assert.equal(content.length, TICKET_CONTENT_LEN)
    assert.deepEqual(content, Buffer.concat([m.ticket, m.resumptionSecret]), "the layout of PROTOCOL.md 6.3")
    const back = decodeTicketContent(content)
    assert.deepEqual(back, { ticket: m.ticket, secret: m.resumptionSecret })
    content.fill(0)
    assert.deepEqual(back?.ticket, m.ticket, "the decoded parts are copies: wiping the record leaves them")
    assert.equal(decodeTicketContent(Buffer.alloc(TICKET_CONTENT_LEN - 1)), undefined)
    assert.equal(decodeTicketContent(Buffer.alloc(TICKET_CONTENT_LEN + 1)), undefined)
    assert.throws(() => encodeTicketContent(m.ticket, m.resumptionSecret.subarray(1)), TypeError)
})
