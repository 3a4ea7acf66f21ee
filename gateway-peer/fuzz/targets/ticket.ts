// openTicket and peekTicket on any bytes, under the vectors' ticket key at the vectors' `now`.
// Neither throws; peekTicket reads 33 bytes only; openTicket's fields agree with peekTicket's,
// it opens only what the key's MAC covers (a ticket re-minted from the fields it opened is the
// same bytes) and only before expires_at.
import { mintTicket, openTicket, peekTicket, TicketKeySet } from "../../src/tickets.js"
import { TICKET_LEN } from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { FRAME_DICTIONARY, hex, vectors } from "./common.js"

export async function create(): Promise<Target> {
    const v = vectors("tether-resume.json")[0]
    const keySet = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: hex(v.ticket_key), createdAt: v.now }])
    const now = v.now as number
    return {
        name: "ticket",
        maxLen: 2 * TICKET_LEN,
        dictionary: [...FRAME_DICTIONARY, Buffer.from([v.ticket_key_id])],
        run(data) {
            // the first byte shifts the clock by -128..127 hours: expiry both ways
            const t = data.subarray(1)
            const at = now + ((data[0] ?? 128) - 128) * 3600
            const p = peekTicket(t)
            check((p === undefined) === (t.length !== TICKET_LEN), "peekTicket and the length disagree")
            const o = openTicket(t, keySet, at)
            check(o !== undefined && o !== null, "openTicket returned nothing")
            if ("error" in o) {
                check(["bad-length", "unknown-key", "bad-mac", "expired"].includes(o.error), `unknown error ${o.error}`)
                check((o.error === "bad-length") === (p === undefined), "bad-length for a 33-byte ticket")
                return
            }
            check(
                p !== undefined &&
                    o.keyId === p.keyId &&
                    o.deviceId.equals(p.deviceId) &&
                    o.generation === p.generation &&
                    o.expiresAt === p.expiresAt,
                "open and peek disagree"
            )
            check(at < o.expiresAt, "opened an expired ticket")
            const again = mintTicket({ deviceId: o.deviceId, generation: o.generation, expiresAt: o.expiresAt, keySet })
            check(again.ticket.equals(t), "opened a ticket that its key did not mint")
            check(again.resumptionSecret.equals(o.resumptionSecret), "resumption secret")
        },
    }
}
