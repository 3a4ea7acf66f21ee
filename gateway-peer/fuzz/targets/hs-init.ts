// readHsInit: an HS_INIT body of any bytes. It returns fields or one of its three errors, in
// PROTOCOL.md 4.1 step 1's order, and never throws. The fields are views of the body at the
// offsets of wire.ts.
import { readHsInit } from "../../src/session/handshake.js"
import { HS_INIT_BODY_LEN, HS_INIT_MESSAGE_OFFSET, HS_INIT_PSEUDONYM_OFFSET, MAX_BODY_LEN, PSEUDONYM_LEN, VERSION } from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { FRAME_DICTIONARY } from "./common.js"

export async function create(): Promise<Target> {
    return {
        name: "hs-init",
        maxLen: MAX_BODY_LEN,
        dictionary: FRAME_DICTIONARY,
        run(body) {
            const r = readHsInit(body)
            check(r !== undefined && r !== null, "readHsInit returned nothing")
            if ("error" in r) {
                if (r.error === "empty") check(body.length === 0, "empty for a non-empty body")
                else if (r.error === "version") check(body.length > 0 && body[0] !== VERSION && r.version === body[0], "version error")
                else
                    check(
                        r.error === "short" && body[0] === VERSION && body.length < HS_INIT_BODY_LEN && r.length === body.length,
                        `unexpected error ${JSON.stringify(r)}`
                    )
                return
            }
            check(body.length >= HS_INIT_BODY_LEN && r.version === VERSION, "accepted a short body or another version")
            check(
                r.pseudonym.length === PSEUDONYM_LEN && r.pseudonym.equals(body.subarray(HS_INIT_PSEUDONYM_OFFSET, HS_INIT_MESSAGE_OFFSET)),
                "pseudonym"
            )
            check(r.message.equals(body.subarray(HS_INIT_MESSAGE_OFFSET)), "message")
            check(r.hasPayload === body.length > HS_INIT_BODY_LEN, "hasPayload")
        },
    }
}
