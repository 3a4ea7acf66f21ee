// Transport records (PROTOCOL.md 5), the gateway's twin of the device's src/tether/session.ts
// (same names): after Split() each direction has its own CipherState;
//
//     RECORD body = ENCRYPT(k, n, "", inner_type (1) || content)      (then n = n + 1)
//
// "Anything that fails to decrypt, or a record whose inner type is unknown, closes the
// connection; no plaintext of it is released": a bad record kills the Session for good.
// Nonce rule (5.1): never use n >= NONCE_LIMIT (2^32 - 1, the CipherState's own guard, checked
// here first so that a receiving session dies rather than throws); before encrypting with n >= KEY_UPDATE_AT
// send KEY_UPDATE under the current key, then CipherState.keyUpdate() (k = REKEY(k), n = 0); the
// receiver does the same after decrypting KEY_UPDATE.
import type { CipherState } from "../noise/cipher-state.js"
import {
    CLOSE_CONTENT_LEN,
    INNER_TYPE_LEN,
    InnerType,
    KEY_UPDATE_AT,
    MAX_RECORD_CONTENT,
    NONCE_LIMIT,
    TICKET_CONTENT_LEN,
} from "../wire.js"

const EMPTY = Buffer.alloc(0)

/** A decrypted record. */
export interface InnerRecord {
    /** the inner type (InnerType) */
    readonly type: number
    /** the content after the inner type byte */
    readonly content: Buffer
}

/** The content length a record of `type` must have; -1 for "any up to the maximum", -2 unknown. */
function fixedLen(type: number): number {
    switch (type) {
        case InnerType.DATA:
            return -1
        case InnerType.TICKET:
            return TICKET_CONTENT_LEN
        case InnerType.CLOSE:
            return CLOSE_CONTENT_LEN
        case InnerType.KEY_UPDATE:
            return 0
        default:
            return -2
    }
}

/** An established session: one CipherState per direction. */
export class Session {
    /** Set when a record failed or the session was closed: nothing is processed any more. */
    dead = false

    /**
     * @param send the sending CipherState
     * @param recv the receiving CipherState
     */
    constructor(
        readonly send: CipherState,
        readonly recv: CipherState
    ) {}

    #seal(type: number, content: Buffer): Buffer {
        if (this.send.n >= NONCE_LIMIT) throw new Error("session: nonce limit")
        // inner_type || content in one buffer (CCM takes the plaintext in one piece)
        const pt = Buffer.allocUnsafe(INNER_TYPE_LEN + content.length)
        pt[0] = type
        content.copy(pt, INNER_TYPE_LEN)
        return this.send.encryptWithAd(EMPTY, pt)
    }

    /**
     * Encrypts one record; when the sending n has reached KEY_UPDATE_AT a KEY_UPDATE record
     * under the current key comes first and the key is updated.
     * @returns the RECORD bodies to send, in order (one, or two with a KEY_UPDATE first)
     * @throws on a dead session, an oversized content, or a wrong length for the inner type
     */
    encrypt(type: number, content: Buffer): Buffer[] {
        if (this.dead) throw new Error("session: dead")
        const want = fixedLen(type)
        if (want === -2 || (want >= 0 && content.length !== want) || content.length > MAX_RECORD_CONTENT)
            throw new RangeError("session: bad record")
        const out: Buffer[] = []
        if (this.send.n >= KEY_UPDATE_AT && type !== InnerType.KEY_UPDATE) {
            out.push(this.#seal(InnerType.KEY_UPDATE, EMPTY))
            this.send.keyUpdate()
        }
        out.push(this.#seal(type, content))
        if (type === InnerType.KEY_UPDATE) this.send.keyUpdate()
        return out
    }

    /**
     * Decrypts one RECORD body. A KEY_UPDATE updates the receiving key and is returned (empty).
     * @returns the record, or undefined when it failed to decrypt, has an unknown inner type or
     *   a wrong length, or the nonce limit is reached: the session is then dead
     */
    decrypt(body: Buffer): InnerRecord | undefined {
        if (this.dead) return undefined
        if (this.recv.n >= NONCE_LIMIT) return this.#kill()
        const pt = this.recv.decryptWithAd(EMPTY, body)
        if (pt === undefined || pt.length < INNER_TYPE_LEN) return this.#kill()
        const type = pt[0] as number
        const want = fixedLen(type)
        const len = pt.length - INNER_TYPE_LEN
        if (want === -2 || (want >= 0 && len !== want)) {
            pt.fill(0)
            return this.#kill()
        }
        if (type === InnerType.KEY_UPDATE) this.recv.keyUpdate()
        return { type, content: pt.subarray(INNER_TYPE_LEN) }
    }

    #kill(): undefined {
        this.dead = true
        return undefined
    }

    /** Marks the session dead (after a CLOSE either way, or when the socket is gone). */
    close(): void {
        this.dead = true
    }
}
