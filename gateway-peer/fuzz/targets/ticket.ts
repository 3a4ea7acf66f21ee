// The two halves of opening a ticket (PROTOCOL.md 6.1, 6.2 step 2) on any bytes, under the
// vectors' ticket key at the vectors' `now` shifted by the first byte, with the chain origin
// from the second. Neither throws; unsealTicket reads 33 bytes only; a ticket opens only if
// the key's MAC covers it with that chain origin (a ticket re-minted from the fields it opened
// is the same bytes), and only before issued_at + the lifetime of its key's kind.
import { mintTicket, TicketKeySet, unsealTicket, verifyTicket } from "../../src/tickets.js"
import { OOB_TICKET_LIFETIME, TICKET_LEN, TICKET_LIFETIME } from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { FRAME_DICTIONARY, hex, vectors } from "./common.js"

export async function create(): Promise<Target> {
    const v = vectors("tether-resume.json")[0]
    const keySet = TicketKeySet.fromKeys([{ id: v.ticket_key_id, key: hex(v.ticket_key), createdAt: v.now }])
    const now = v.now as number
    const lifetimes = { ticketLifetime: TICKET_LIFETIME, oobTicketLifetime: OOB_TICKET_LIFETIME }
    return {
        name: "ticket",
        maxLen: 2 + 2 * TICKET_LEN,
        dictionary: [...FRAME_DICTIONARY, Buffer.from([v.ticket_key_id]), Buffer.from([0, 0, 0, v.chain_origin])],
        run(data) {
            // byte 0 shifts the clock by -128..127 days (expiry both ways), byte 1 is the chain origin
            const t = data.subarray(2)
            const at = now + ((data[0] ?? 128) - 128) * 86400
            const origin = data[1] ?? v.chain_origin
            const u = unsealTicket(t, keySet, at)
            check(u !== undefined && u !== null, "unsealTicket returned nothing")
            if ("error" in u) {
                check(["bad-length", "unknown-key"].includes(u.error), `unknown error ${u.error}`)
                check((u.error === "bad-length") === (t.length !== TICKET_LEN), "bad-length and the length disagree")
                return
            }
            check(t.length === TICKET_LEN && u.key.id === t[0], "unsealed a ticket of another length or key")
            const o = verifyTicket(t, u, origin, keySet, at, lifetimes)
            if ("error" in o) {
                check(["bad-mac", "expired"].includes(o.error), `unknown error ${o.error}`)
                return
            }
            check(at < u.issuedAt + (u.key.kind === "oob" ? OOB_TICKET_LIFETIME : TICKET_LIFETIME), "opened an expired ticket")
            const again = mintTicket({ ...u, chainOrigin: origin, keySet, kind: u.key.kind })
            check(again.ticket.equals(t), "opened a ticket that its key did not mint for this chain")
            check(again.resumptionSecret.equals(o.resumptionSecret), "resumption secret")
        },
    }
}
