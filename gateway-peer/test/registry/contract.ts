// The registry contract every implementation passes (memory, SQLite, PostgreSQL): the tests of
// each import it.
import assert from "node:assert/strict"
import { newDevice, pseudonym0, PseudonymTaken, type DeviceRecord, type Registry } from "../../src/registry/registry.js"
import { MAX_GENERATION } from "../../src/tickets.js"

export const dev = (i: number) =>
    newDevice({
        id: i.toString(16).padStart(16, "0"),
        name: `dev${i}`,
        publicKey: Buffer.alloc(32, i),
        psk: Buffer.alloc(32, 0x80 + i),
        now: 1000 + i,
    })
export const P = (b: number) => Buffer.alloc(8, b)

export async function contract(r: Registry): Promise<void> {
    await r.putDevice(dev(1))
    await r.putDevice(dev(2))
    assert.equal((await r.getDevice(dev(1).id))?.name, "dev1")
    assert.deepEqual((await r.getDeviceByName("dev2"))?.psk, Buffer.alloc(32, 0x82))
    assert.equal(await r.getDevice("ffffffffffffffff"), undefined)
    await assert.rejects(r.putDevice({ ...dev(3), name: "dev1" }), /taken/)
    assert.deepEqual(
        (await r.listDevices()).map(d => d.name),
        ["dev1", "dev2"]
    )
    const id = dev(1).id
    const p0 = dev(1).pseudonym0
    assert.deepEqual(await r.getDevice(id), dev(1), "a record comes back as it went in")

    // a confirmed resumption: one more generation, accepted raised to the resumed one, pseudonyms rotate
    assert.deepEqual(await r.confirmSession(id, { full: false, resumedGeneration: 1, nextPseudonym: P(0xa1) }), {
        generation: 2,
        chainOrigin: 1,
    })
    let d = await r.getDevice(id)
    assert.deepEqual(
        [d?.issued_generation, d?.full_generation, d?.accepted_generation, d?.pseudonym, d?.previous_pseudonym, d?.pseudonym0],
        [2, 1, 1, P(0xa1), p0, p0]
    )
    // a confirmed full handshake starts a chain at its ticket
    assert.deepEqual(await r.confirmSession(id, { full: true, nextPseudonym: P(0xa2) }), { generation: 3, chainOrigin: 3 })
    d = await r.getDevice(id)
    assert.deepEqual(
        [d?.issued_generation, d?.full_generation, d?.accepted_generation, d?.pseudonym, d?.previous_pseudonym],
        [3, 3, 1, P(0xa2), P(0xa1)]
    )
    // accepted_generation = max(accepted, resumed): an older resumed ticket does not lower it
    assert.equal(await r.acceptGeneration(id, 3), "newer")
    assert.deepEqual(await r.confirmSession(id, { full: false, resumedGeneration: 2, nextPseudonym: P(0xa3) }), {
        generation: 4,
        chainOrigin: 3,
    })
    d = await r.getDevice(id)
    assert.deepEqual([d?.issued_generation, d?.full_generation, d?.accepted_generation], [4, 3, 3])

    // the compare-and-set (6.4)
    assert.equal(await r.acceptGeneration(id, 4), "newer")
    assert.equal(await r.acceptGeneration(id, 4), "older")
    assert.equal(await r.acceptGeneration(id, 2), "older")
    const { generation: g } = await r.confirmSession(id, { full: false, resumedGeneration: 4, nextPseudonym: P(0xa4) })
    const verdicts = await Promise.all([1, 2, 3, 4].map(() => r.acceptGeneration(id, g)))
    assert.deepEqual(verdicts.filter(v => v === "newer").length, 1, "concurrent uses of one ticket: exactly one sees newer")
    assert.equal((await r.getDevice(id))?.accepted_generation, 5)

    // the three pseudonyms find the device; a rotated-out one does not
    assert.equal((await r.getDeviceByPseudonym(P(0xa4)))?.id, id, "pseudonym")
    assert.equal((await r.getDeviceByPseudonym(P(0xa3)))?.id, id, "previous_pseudonym")
    assert.equal((await r.getDeviceByPseudonym(p0))?.id, id, "pseudonym0")
    assert.equal(await r.getDeviceByPseudonym(P(0xa2)), undefined, "rotated out")
    assert.equal(await r.getDeviceByPseudonym(P(0xa1)), undefined, "rotated out")
    assert.equal((await r.getDeviceByPseudonym(dev(2).pseudonym0))?.id, dev(2).id)
    assert.equal(await r.getDeviceByPseudonym(P(0xee)), undefined)

    // a pseudonym another device holds: PseudonymTaken, and nothing changed
    const before = await r.getDevice(id)
    const other = dev(2).id
    await r.confirmSession(other, { full: true, nextPseudonym: P(0xb1) })
    await r.confirmSession(other, { full: true, nextPseudonym: P(0xb2) })
    for (const taken of [P(0xb2), P(0xb1), dev(2).pseudonym0])
        await assert.rejects(r.confirmSession(id, { full: true, nextPseudonym: taken }), PseudonymTaken)
    assert.deepEqual(await r.getDevice(id), before, "a refused confirmation changes no field")
    await assert.rejects(r.putDevice({ ...dev(3), pseudonym: P(0xb2) }), PseudonymTaken)
    await assert.rejects(r.putDevice({ ...dev(3), previous_pseudonym: p0 }), PseudonymTaken)
    assert.equal(await r.getDevice(dev(3).id), undefined)
    // a device's own pseudonyms are not a collision (a re-put of the same record)
    await r.putDevice((await r.getDevice(id)) as DeviceRecord)
    // replacing a record re-indexes it: its old pseudonyms are free
    await r.putDevice({ ...(before as DeviceRecord), pseudonym: P(0xc1) })
    assert.equal(await r.getDeviceByPseudonym(P(0xa4)), undefined)
    assert.equal((await r.getDeviceByPseudonym(P(0xc1)))?.id, id)
    await r.putDevice(before as DeviceRecord)

    // expire-tickets: every issued ticket below the floor, the device still active
    assert.equal(await r.expireTickets("dev1"), true)
    assert.equal(await r.expireTickets("nope"), false)
    const ex = await r.getDevice(id)
    assert.equal(ex?.min_generation, 6)
    assert.equal(ex?.revoked, false)

    assert.equal(await r.revoke("dev1"), true)
    assert.equal(await r.revoke("nope"), false)
    const rv = await r.getDevice(id)
    assert.equal(rv?.revoked, true)
    assert.equal(rv?.min_generation, 6)
    await assert.rejects(r.confirmSession("00000000000000ff", { full: true, nextPseudonym: P(0xd1) }), /no device/)
    await assert.rejects(r.acceptGeneration("00000000000000ff", 1), /no device/)

    // the counter never passes 2^32 - 1; the refusal rotates no pseudonym either
    await r.putDevice({ ...dev(4), issued_generation: MAX_GENERATION - 1 })
    assert.equal((await r.confirmSession(dev(4).id, { full: true, nextPseudonym: P(0xd2) })).generation, MAX_GENERATION)
    const top = await r.getDevice(dev(4).id)
    await assert.rejects(r.confirmSession(dev(4).id, { full: true, nextPseudonym: P(0xd3) }), RangeError)
    assert.deepEqual(await r.getDevice(dev(4).id), top)

    // remove: the device is gone by id, name and pseudonym; its name can be paired again
    const gone = dev(5)
    await r.putDevice(gone)
    assert.equal(await r.remove("dev5"), gone.id)
    assert.equal(await r.remove("dev5"), undefined)
    assert.equal(await r.remove("nope"), undefined)
    assert.equal(await r.getDevice(gone.id), undefined)
    assert.equal(await r.getDeviceByName("dev5"), undefined)
    assert.equal(await r.getDeviceByPseudonym(gone.pseudonym0), undefined)
    const again = { ...dev(6), name: "dev5" }
    await r.putDevice(again)
    assert.equal((await r.getDeviceByName("dev5"))?.id, again.id)
    assert.ok(!(await r.listDevices()).some(d => d.id === gone.id))
}

/** Concurrent confirmations: distinct generations, and pseudonyms that rotated with them (one atomic update each). */
export async function concurrentConfirmations(r: Registry): Promise<void> {
    const d = { ...dev(9), name: "conc" }
    await r.putDevice(d)
    const issued = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
            r.confirmSession(d.id, { full: i % 2 === 0, resumedGeneration: i % 2 === 0 ? undefined : 1, nextPseudonym: P(0x10 + i) })
        )
    )
    const gens = issued.map(x => x.generation)
    assert.deepEqual(
        [...gens].sort((a, b) => a - b),
        [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    )
    const byGen = new Map(issued.map((x, i) => [x.generation, i]))
    const after = (await r.getDevice(d.id)) as DeviceRecord
    assert.equal(after.issued_generation, 11)
    assert.deepEqual(after.pseudonym, P(0x10 + (byGen.get(11) as number)), "the pseudonym of the last generation issued")
    assert.deepEqual(after.previous_pseudonym, P(0x10 + (byGen.get(10) as number)))
    // each full confirmation returned itself as the chain origin
    for (const [i, x] of issued.entries()) if (i % 2 === 0) assert.equal(x.chainOrigin, x.generation)
}

/**
 * acceptAndConfirm (issue 15: the early-data compare-and-set and the confirmation in one update):
 * newer confirms exactly as confirmSession and raises accepted_generation to the ticket's;
 * older changes nothing; of concurrent uses of one ticket exactly one confirms; a refusal for
 * the pseudonym or the generation bound changes nothing, the compare-and-set included.
 */
export async function acceptAndConfirmContract(r: Registry): Promise<void> {
    if ((await r.getDevice(dev(2).id)) === undefined) await r.putDevice(dev(2))
    const d = { ...dev(10), name: "aac" }
    await r.putDevice(d)
    assert.deepEqual(await r.acceptAndConfirm(d.id, { full: false, resumedGeneration: 1, nextPseudonym: P(0x41) }), {
        generation: 2,
        chainOrigin: 1,
    })
    let now = (await r.getDevice(d.id)) as DeviceRecord
    assert.deepEqual(
        [now.issued_generation, now.accepted_generation, now.full_generation, now.pseudonym, now.previous_pseudonym],
        [2, 1, 1, P(0x41), d.pseudonym0]
    )
    // the same ticket again (a replayed RESUME_INIT): older, nothing written
    assert.equal(await r.acceptAndConfirm(d.id, { full: false, resumedGeneration: 1, nextPseudonym: P(0x42) }), "older")
    assert.deepEqual(await r.getDevice(d.id), now, "an older generation changes no field")
    // concurrent uses of generation 2: exactly one confirms
    const all = await Promise.all(
        [0x43, 0x44, 0x45, 0x46].map(b => r.acceptAndConfirm(d.id, { full: false, resumedGeneration: 2, nextPseudonym: P(b) }))
    )
    assert.equal(all.filter(x => x !== "older").length, 1, "one ticket, one confirmation")
    now = (await r.getDevice(d.id)) as DeviceRecord
    assert.deepEqual([now.issued_generation, now.accepted_generation], [3, 2])
    // a pseudonym another device holds: PseudonymTaken, and the compare-and-set did not happen
    await assert.rejects(r.acceptAndConfirm(d.id, { full: false, resumedGeneration: 3, nextPseudonym: dev(2).pseudonym0 }), PseudonymTaken)
    assert.deepEqual(await r.getDevice(d.id), now, "a refused confirmation leaves accepted_generation as it was")
    assert.notEqual(await r.acceptAndConfirm(d.id, { full: false, resumedGeneration: 3, nextPseudonym: P(0x47) }), "older")
    // the generation bound: RangeError, nothing written
    const top = { ...dev(11), name: "aac-top", issued_generation: MAX_GENERATION }
    await r.putDevice(top)
    await assert.rejects(r.acceptAndConfirm(top.id, { full: false, resumedGeneration: 1, nextPseudonym: P(0x48) }), RangeError)
    assert.equal((await r.getDevice(top.id))?.accepted_generation, 0)
}
