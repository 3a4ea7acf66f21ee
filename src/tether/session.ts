// Transport records (PROTOCOL.md 5): after Split() each direction has its own CipherState;
//
//     RECORD body = ENCRYPT(k, n, "", inner_type (1) || content)      (then n = n + 1)
//
// "Anything that fails to decrypt, or a record whose inner type is unknown, closes the
// connection; no plaintext of it is released": any bad record kills the Session for good.
// Before a sender encrypts with n >= KEY_UPDATE_AT it sends KEY_UPDATE under the current key,
// then CipherState.keyUpdate() (k = REKEY(k), n = 0); the receiver does the same after
// decrypting KEY_UPDATE.
import { CipherState } from "../noise/cipher-state"
import { CLOSE_CONTENT_LEN, INNER_TYPE_LEN, KEY_UPDATE_AT, MAX_RECORD_CONTENT, InnerType, NONCE_LIMIT, TICKET_CONTENT_LEN } from "./wire"

const EMPTY = Buffer.alloc(0)

/** A decrypted record. */
export interface InnerRecord {
    /** the inner type (InnerType) */
    type: number
    /** the content after the inner type byte */
    content: Buffer
}

/** The content length a record of `type` must have, or -1 for "any up to the maximum". */
function fixedLen(type: number): number {
    if (type === InnerType.DATA) return -1
    if (type === InnerType.TICKET) return TICKET_CONTENT_LEN
    if (type === InnerType.CLOSE) return CLOSE_CONTENT_LEN
    if (type === InnerType.KEY_UPDATE) return 0
    return -2 // unknown
}

/** An established Tether session: one CipherState per direction. */
export class Session {
    /** Encrypts what this side sends. */
    send: CipherState
    /** Decrypts what this side receives. */
    recv: CipherState
    /** Set when a record failed or the session was closed: nothing is processed any more. */
    dead = false

    /**
     * @param send the sending CipherState (the device's: Split()'s first)
     * @param recv the receiving CipherState
     */
    constructor(send: CipherState, recv: CipherState) {
        this.send = send
        this.recv = recv
    }

    private seal(type: number, content: Buffer): Buffer {
        const pt = Buffer.alloc(INNER_TYPE_LEN + content.length)
        pt[0] = type
        pt.blitAt(INNER_TYPE_LEN, content, 0, content.length)
        return this.send.encryptWithAd(EMPTY, pt)
    }

    /**
     * Encrypts one record. When the sending n has reached KEY_UPDATE_AT, a KEY_UPDATE record
     * under the current key comes first and the key is updated.
     * @param type the inner type
     * @param content at most MAX_RECORD_CONTENT bytes
     * @returns the RECORD bodies to send, in order (one, or two with a KEY_UPDATE first)
     * @throws on a dead session, an oversized content, or an inner type with a wrong length
     */
    encrypt(type: number, content: Buffer): Buffer[] {
        if (this.dead) throw new Error("session: dead")
        const want = fixedLen(type)
        if (want === -2 || (want >= 0 && content.length !== want) || content.length > MAX_RECORD_CONTENT)
            throw new RangeError("session: bad record")
        const out: Buffer[] = []
        if (this.send.n >= KEY_UPDATE_AT && type !== InnerType.KEY_UPDATE) {
            out.push(this.seal(InnerType.KEY_UPDATE, EMPTY))
            this.send.keyUpdate()
        }
        out.push(this.seal(type, content))
        if (type === InnerType.KEY_UPDATE) this.send.keyUpdate()
        return out
    }

    /**
     * Decrypts one RECORD body. A KEY_UPDATE record updates the receiving key and is returned
     * (content empty) so the caller sees it; the caller just reads on.
     * @returns the record, or undefined when it failed to decrypt, its inner type is unknown
     *     or its length is wrong, or the nonce limit is reached: the session is then dead and
     *     no plaintext is released
     */
    decrypt(body: Buffer): InnerRecord | undefined {
        if (this.dead) return undefined
        if (this.recv.n >= NONCE_LIMIT) return this.kill()
        const pt = this.recv.decryptWithAd(EMPTY, body)
        if (pt === undefined || pt.length < INNER_TYPE_LEN) return this.kill()
        const type = pt[0]
        const want = fixedLen(type)
        const len = pt.length - INNER_TYPE_LEN
        if (want === -2 || (want >= 0 && len !== want)) {
            pt.fillAt(0, pt.length, 0)
            return this.kill()
        }
        if (type === InnerType.KEY_UPDATE) this.recv.keyUpdate()
        return { type, content: pt.slice(INNER_TYPE_LEN) }
    }

    private kill(): undefined {
        this.dead = true
        return undefined
    }

    /** Marks the session dead (after a CLOSE either way, or when the socket is gone). */
    close() {
        this.dead = true
    }
}
