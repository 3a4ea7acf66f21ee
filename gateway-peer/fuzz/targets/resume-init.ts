// readResumeInit: a RESUME_INIT body of any bytes. Fields or one of its three errors, never a
// throw; the fields are views at wire.ts's offsets and the ciphertext holds at least a tag.
import { readResumeInit } from "../../src/session/resume.js"
import {
    AGE_LEN,
    MAX_BODY_LEN,
    NONCE_I_LEN,
    RESUME_INIT_AGE_OFFSET,
    RESUME_INIT_MIN_BODY_LEN,
    RESUME_INIT_NONCE_OFFSET,
    RESUME_INIT_PAYLOAD_OFFSET,
    RESUME_INIT_TICKET_OFFSET,
    TAG_LEN,
    TICKET_LEN,
    VERSION,
} from "../../src/wire.js"
import { check, type Target } from "../engine.js"
import { FRAME_DICTIONARY } from "./common.js"

export async function create(): Promise<Target> {
    return {
        name: "resume-init",
        maxLen: MAX_BODY_LEN,
        dictionary: FRAME_DICTIONARY,
        run(body) {
            const r = readResumeInit(body)
            check(r !== undefined && r !== null, "readResumeInit returned nothing")
            if ("error" in r) {
                if (r.error === "empty") check(body.length === 0, "empty for a non-empty body")
                else if (r.error === "version") check(body.length > 0 && body[0] !== VERSION && r.version === body[0], "version error")
                else
                    check(
                        r.error === "short" && body[0] === VERSION && body.length < RESUME_INIT_MIN_BODY_LEN && r.length === body.length,
                        `unexpected error ${JSON.stringify(r)}`
                    )
                return
            }
            check(body.length >= RESUME_INIT_MIN_BODY_LEN && r.version === VERSION, "accepted a short body or another version")
            check(
                r.ticket.length === TICKET_LEN && r.ticket.equals(body.subarray(RESUME_INIT_TICKET_OFFSET, RESUME_INIT_AGE_OFFSET)),
                "ticket"
            )
            check(
                r.obfuscatedAge.length === AGE_LEN &&
                    r.obfuscatedAge.equals(body.subarray(RESUME_INIT_AGE_OFFSET, RESUME_INIT_NONCE_OFFSET)),
                "obfuscated_age"
            )
            check(
                r.nonceI.length === NONCE_I_LEN && r.nonceI.equals(body.subarray(RESUME_INIT_NONCE_OFFSET, RESUME_INIT_PAYLOAD_OFFSET)),
                "nonce_i"
            )
            check(r.ciphertext.length >= TAG_LEN && r.ciphertext.equals(body.subarray(RESUME_INIT_PAYLOAD_OFFSET)), "ciphertext")
        },
    }
}
