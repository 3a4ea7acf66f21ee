// A second implementation of the version 2 ticket and its companions (PROTOCOL.md 4.4, 6.1,
// 6.2), written from the specification with @noble/hashes for HMAC-SHA-256 and Noise's HKDF and
// node:crypto only for the raw AES-256 block. The vector generators compute every ticket,
// resumption secret, age_add and pseudonym0 here as well as through the gateway's code, and
// refuse to write a file where the two disagree.
import { createCipheriv } from "node:crypto"
import { hmac } from "@noble/hashes/hmac.js"
import { sha256 } from "@noble/hashes/sha2.js"

const mac = (key, ...parts) => Buffer.from(hmac(sha256, key, Buffer.concat(parts)))
const ascii = s => Buffer.from(s, "ascii")
const u32 = x => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(x)
    return b
}

/** Noise's HKDF (Noise section 4.3) with three outputs. */
export function hkdf3(ck, ikm) {
    const temp = mac(ck, ikm)
    const o1 = mac(temp, Buffer.from([1]))
    const o2 = mac(temp, o1, Buffer.from([2]))
    const o3 = mac(temp, o2, Buffer.from([3]))
    return [o1, o2, o3]
}

/** The ticket of PROTOCOL.md 6.1 and its resumption secret. */
export function referenceTicket({ ticketKey, keyId, deviceId, generation, issuedAt, chainOrigin }) {
    const [macKey, secretKey, encKey] = hkdf3(ticketKey, Buffer.alloc(0))
    const fields = Buffer.concat([deviceId, u32(generation), u32(issuedAt)])
    const c = createCipheriv("aes-256-ecb", encKey, null).setAutoPadding(false)
    const sealed = Buffer.concat([c.update(fields), c.final()])
    const head = Buffer.concat([Buffer.from([keyId]), sealed])
    const tag = mac(macKey, ascii("tether/2 ticket"), head, u32(chainOrigin)).subarray(0, 16)
    const ticket = Buffer.concat([head, tag])
    return { ticket, resumptionSecret: mac(secretKey, ascii("tether/2 resumption"), ticket) }
}

/** age_add of PROTOCOL.md 6.2. */
export function referenceAgeAdd(secret) {
    return mac(secret, ascii("tether/2 age")).readUInt32BE(0)
}

/** pseudonym0 of PROTOCOL.md 4.4. */
export function referencePseudonym0(psk) {
    return mac(psk, ascii("tether/2 pseudonym")).subarray(0, 8)
}
