// A second, independent implementation of the DEVICE side of the Tether protocol, version 2,
// written from PROTOCOL.md alone (plus Noise rev 34, RFC 7748, RFC 8446, RFC 8470). It shares
// no code with the project's device (src/) or gateway (gateway-peer/): node:crypto for X25519,
// AES-256-CCM and the raw AES block, @noble/hashes for SHA-256 and HMAC, everything else here.
// Section numbers (§) are PROTOCOL.md's.
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto"
import net from "node:net"
import { performance } from "node:perf_hooks"
import { hmac } from "@noble/hashes/hmac.js"
import { sha256 } from "@noble/hashes/sha2.js"

// ---------------------------------------------------------------- constants (§2, §5, §7, §12)

export const VERSION = 0x02
export const FRAME = { HS_INIT: 0x01, HS_RESP: 0x02, RESUME_INIT: 0x03, RESUME_RESP: 0x04, RECORD: 0x10, REJECT: 0x7f }
export const INNER = { DATA: 0x01, TICKET: 0x02, CLOSE: 0x03, KEY_UPDATE: 0x04 }
export const CODE = {
    PROTOCOL_ERROR: 0x01,
    UNSUPPORTED_VERSION: 0x02,
    UNKNOWN_DEVICE: 0x03,
    HANDSHAKE_FAILED: 0x04,
    TICKET_REJECTED: 0x05,
    BUSY: 0x06,
    NORMAL: 0x10,
    REVOKED: 0x11,
    SHUTDOWN: 0x12,
    IDLE: 0x13,
    SUPERSEDED: 0x14,
}
export const APP = { PUBLISH: 0x01, REQUEST: 0x02, RESPONSE: 0x03, MESSAGE: 0x04, ACK: 0x05, STREAM: 0x06 }
export const MAX_FRAME_LEN = 1024
export const MAX_RECORD_PLAINTEXT = 1007
export const MAX_EARLY_DATA = MAX_FRAME_LEN - 1 - 62 // 961: inner type + 960 bytes of DATA content
export const NONCE_LIMIT = 2 ** 32 - 1
export const KEY_UPDATE_AT = 2 ** 32 - 2 ** 16
export const EARLY_ACCEPTED = 0x01
export const RESUME_CAP = 32
export const SIZES = { HS_INIT: 60, HS_RESP: 51, RESUME_INIT: 65, RESUME_RESP: 32, TICKET_RECORD: 93, SLOT: 87 }

const PROTO_KK = "Noise_KKpsk2_25519_AESCCM_SHA256"
const PROTO_RESUME = "Tether_Resume2_AESCCM_SHA256"
const EMPTY = Buffer.alloc(0)
const ascii = s => Buffer.from(s, "ascii")
const cat = (...parts) => Buffer.concat(parts.map(p => (typeof p === "number" ? Buffer.from([p]) : Buffer.from(p))))
export const u16 = x => {
    const b = Buffer.alloc(2)
    b.writeUInt16BE(x)
    return b
}
export const u32 = x => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(x >>> 0)
    return b
}
export const hmacSha256 = (key, ...data) => Buffer.from(hmac(sha256, key, cat(...data)))
export const sha = (...data) => Buffer.from(sha256(cat(...data)))

// ---------------------------------------------------------------- X25519 (RFC 7748) via node:crypto

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex")
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex")
const privKey = raw => createPrivateKey({ key: cat(PKCS8_X25519, raw), format: "der", type: "pkcs8" })
const pubKey = raw => createPublicKey({ key: cat(SPKI_X25519, raw), format: "der", type: "spki" })
export const x25519Public = priv => createPublicKey(privKey(priv)).export({ type: "spki", format: "der" }).subarray(12)
export function x25519(priv, pub) {
    let out
    try {
        out = diffieHellman({ privateKey: privKey(priv), publicKey: pubKey(pub) })
    } catch (e) {
        throw new Error("X25519 failed (invalid or low-order point): " + e.message)
    }
    if (out.every(b => b === 0)) throw new Error("X25519 output is all zero: abort (§1)")
    return out
}
export function x25519Keypair(priv = randomBytes(32)) {
    return { priv: Buffer.from(priv), pub: x25519Public(priv) }
}

// ---------------------------------------------------------------- the cipher function AESCCM (§3.1)

function ccmNonce(n) {
    const b = Buffer.alloc(13)
    b.writeBigUInt64BE(BigInt(n), 5)
    return b
}
const REKEY_NONCE = Buffer.from("0000000000ffffffffffffffff", "hex") // 0x00*5 || uint64_be(2^64 - 1)

export function aesccmEncrypt(k, n, ad, plaintext, nonce = ccmNonce(n)) {
    const c = createCipheriv("aes-256-ccm", hmacSha256(k, ad), nonce, { authTagLength: 16 })
    return cat(c.update(plaintext), c.final(), c.getAuthTag())
}
export function aesccmDecrypt(k, n, ad, ciphertext, nonce = ccmNonce(n)) {
    if (ciphertext.length < 16) throw new Error("ciphertext shorter than the tag")
    const d = createDecipheriv("aes-256-ccm", hmacSha256(k, ad), nonce, { authTagLength: 16 })
    d.setAuthTag(ciphertext.subarray(ciphertext.length - 16))
    const pt = d.update(ciphertext.subarray(0, ciphertext.length - 16))
    d.final() // throws on a wrong tag; pt is not released then
    return pt
}

// ---------------------------------------------------------------- Noise objects (Noise §5, §3.3)

export class CipherState {
    constructor(k = null, n = 0) {
        this.k = k
        this.n = n
    }
    clone() {
        return new CipherState(this.k, this.n)
    }
    hasKey() {
        return this.k !== null
    }
    encryptWithAd(ad, pt) {
        if (!this.k) return Buffer.from(pt)
        if (this.n >= NONCE_LIMIT) throw new Error("nonce limit (§5.1)")
        const ct = aesccmEncrypt(this.k, this.n, ad, pt)
        this.n++
        return ct
    }
    decryptWithAd(ad, ct) {
        if (!this.k) return Buffer.from(ct)
        if (this.n >= NONCE_LIMIT) throw new Error("nonce limit (§5.1)")
        const pt = aesccmDecrypt(this.k, this.n, ad, ct)
        this.n++
        return pt
    }
    // §5.1: Noise's default REKEY with AESCCM, then n = 0 (the Tether deviation)
    rekey() {
        this.k = aesccmEncrypt(this.k, null, EMPTY, Buffer.alloc(32), REKEY_NONCE).subarray(0, 32)
        this.n = 0
    }
}

// Noise §4.3
export function hkdf(ck, ikm, outputs) {
    const tk = hmacSha256(ck, ikm)
    const o1 = hmacSha256(tk, 0x01)
    const o2 = hmacSha256(tk, o1, 0x02)
    if (outputs === 2) return [o1, o2]
    return [o1, o2, hmacSha256(tk, o2, 0x03)]
}

export class SymmetricState {
    constructor(protocolName) {
        if (protocolName === undefined) return // clone()
        const name = ascii(protocolName)
        this.h = name.length <= 32 ? cat(name, Buffer.alloc(32 - name.length)) : sha(name)
        this.ck = Buffer.from(this.h)
        this.cs = new CipherState()
    }
    clone() {
        const s = new SymmetricState()
        s.h = this.h
        s.ck = this.ck
        s.cs = this.cs.clone()
        return s
    }
    mixKey(ikm) {
        const [ck, k] = hkdf(this.ck, ikm, 2)
        this.ck = ck
        this.cs = new CipherState(k)
    }
    mixHash(data) {
        this.h = sha(this.h, data)
    }
    mixKeyAndHash(ikm) {
        const [ck, th, k] = hkdf(this.ck, ikm, 3)
        this.ck = ck
        this.mixHash(th)
        this.cs = new CipherState(k)
    }
    encryptAndHash(pt) {
        const ct = this.cs.encryptWithAd(this.h, pt)
        this.mixHash(ct)
        return ct
    }
    decryptAndHash(ct) {
        const pt = this.cs.decryptWithAd(this.h, ct)
        this.mixHash(ct)
        return pt
    }
    split() {
        const [k1, k2] = hkdf(this.ck, EMPTY, 2)
        return [new CipherState(k1), new CipherState(k2)]
    }
}

// ---------------------------------------------------------------- framing (§2.1)

export function frame(type, body, { unchecked = false } = {}) {
    const len = 1 + body.length
    if (len > MAX_FRAME_LEN && !unchecked) throw new Error(`frame of ${len} bytes exceeds MAX_FRAME_LEN`)
    return cat(u16(len), type, body)
}

// ---------------------------------------------------------------- full handshake, initiator (§4)

export const pseudonym0 = psk => hmacSha256(psk, ascii("tether/2 pseudonym")).subarray(0, 8)

export class KkInitiator {
    // s: device static private; rs: gateway static public; e: ephemeral private (fresh if absent);
    // es: DH(e, rs) precomputed while idle (§4.3), computed here if absent
    constructor({ s, rs, psk, pseudonym, e, es }) {
        this.s = x25519Keypair(s)
        this.rs = Buffer.from(rs)
        this.psk = Buffer.from(psk)
        this.pseudonym = Buffer.from(pseudonym)
        this.e = x25519Keypair(e ?? randomBytes(32))
        this.es = es ? Buffer.from(es) : x25519(this.e.priv, this.rs)
        if (this.pseudonym.length !== 8) throw new Error("pseudonym must be 8 bytes")
    }
    writeHsInit() {
        const ss = new SymmetricState(PROTO_KK)
        ss.mixHash(cat(ascii("tether/2"), VERSION, this.pseudonym))
        ss.mixHash(this.s.pub)
        ss.mixHash(this.rs)
        ss.mixHash(this.e.pub) // e (psk mode: MixHash then MixKey, Noise §9.2)
        ss.mixKey(this.e.pub)
        ss.mixKey(this.es) // es
        ss.mixKey(x25519(this.s.priv, this.rs)) // ss
        const ct = ss.encryptAndHash(EMPTY) // payload1 is empty in version 2
        this.ss = ss
        return frame(FRAME.HS_INIT, cat(VERSION, this.pseudonym, this.e.pub, ct))
    }
    // body of HS_RESP; transactional: the state changes only if the whole message is good
    readHsResp(body) {
        if (body.length !== 48) throw new Error(`HS_RESP body of ${body.length} bytes (expected 48)`)
        const st = this.ss.clone()
        const re = body.subarray(0, 32)
        st.mixHash(re)
        st.mixKey(re)
        st.mixKey(x25519(this.e.priv, re)) // ee
        st.mixKey(x25519(this.s.priv, re)) // se
        st.mixKeyAndHash(this.psk) // psk
        const payload = st.decryptAndHash(body.subarray(32))
        if (payload.length !== 0) throw new Error("non-empty payload2 (§4.2)")
        const [toGateway, fromGateway] = st.split()
        return { send: toGateway, recv: fromGateway, handshakeHash: st.h }
    }
}

// ---------------------------------------------------------------- resumption, initiator (§6.2)

export const ageAdd = secret => hmacSha256(secret, ascii("tether/2 age")).readUInt32BE(0)
export const obfuscateAge = (ageMs, secret) => u32((((Math.floor(ageMs) + ageAdd(secret)) % 2 ** 32) + 2 ** 32) % 2 ** 32)

export class ResumeInitiator {
    // ageMs: null when the device does not know the ticket's age (then no early data, §6.2);
    // earlyData: a record plaintext (inner_type || content), or empty
    // unchecked: skip the device's own rules on early data (for tests of the gateway's checks)
    constructor({ deviceId, ticket, secret, ageMs = null, nonceI = randomBytes(8), earlyData = EMPTY, unchecked = false }) {
        this.deviceId = Buffer.from(deviceId)
        this.ticket = Buffer.from(ticket)
        this.secret = Buffer.from(secret)
        this.ageMs = ageMs
        this.nonceI = Buffer.from(nonceI)
        this.earlyData = Buffer.from(earlyData)
        this.unchecked = unchecked
        if (this.ticket.length !== 33 || this.secret.length !== 32 || this.deviceId.length !== 8 || this.nonceI.length !== 8)
            throw new Error("bad ticket / secret / device id / nonce_i size")
        if (unchecked) return
        if (ageMs === null && this.earlyData.length) throw new Error("early data needs a known ticket age (§6.2)")
        if (this.earlyData.length && this.earlyData[0] !== INNER.DATA) throw new Error("early data must be a DATA plaintext")
        if (this.earlyData.length > MAX_EARLY_DATA) throw new Error("early data too large")
    }
    writeResumeInit() {
        const ss = new SymmetricState(PROTO_RESUME)
        ss.mixHash(cat(ascii("tether/2"), VERSION, this.deviceId))
        ss.mixKeyAndHash(this.secret)
        ss.mixHash(this.ticket)
        this.obfuscatedAge = this.ageMs === null ? randomBytes(4) : obfuscateAge(this.ageMs, this.secret)
        ss.mixHash(this.obfuscatedAge)
        ss.mixHash(this.nonceI)
        ss.mixKey(this.nonceI)
        const ct = ss.encryptAndHash(this.earlyData)
        this.ss = ss
        return frame(FRAME.RESUME_INIT, cat(VERSION, this.ticket, this.obfuscatedAge, this.nonceI, ct), { unchecked: this.unchecked })
    }
    readResumeResp(body) {
        if (body.length !== 12 + 1 + 16) throw new Error(`RESUME_RESP body of ${body.length} bytes (expected 29)`)
        const st = this.ss.clone()
        const nonceR = body.subarray(0, 12)
        st.mixHash(nonceR)
        st.mixKey(nonceR)
        const flags = st.decryptAndHash(body.subarray(12))
        if (flags.length !== 1) throw new Error("flags must be 1 byte")
        if (flags[0] & ~EARLY_ACCEPTED) throw new Error(`RESUME_RESP flags 0x${flags[0].toString(16)}: unknown bits set (§6.2)`)
        const [toGateway, fromGateway] = st.split()
        return {
            flags: flags[0],
            earlyAccepted: (flags[0] & EARLY_ACCEPTED) !== 0,
            send: toGateway,
            recv: fromGateway,
            handshakeHash: st.h,
        }
    }
}

// ---------------------------------------------------------------- transport records (§5)

export class Transport {
    constructor(send, recv) {
        this.send = send
        this.recv = recv
    }
    // returns the frame(s) to write: a KEY_UPDATE first when the counter says so (§5.1)
    seal(inner, content = EMPTY, { keyUpdate = false } = {}) {
        if (content.length > MAX_RECORD_PLAINTEXT - 1) throw new Error("record content too large")
        const out = []
        if (keyUpdate || this.send.n >= KEY_UPDATE_AT) {
            out.push(frame(FRAME.RECORD, this.send.encryptWithAd(EMPTY, cat(INNER.KEY_UPDATE))))
            this.send.rekey()
        }
        out.push(frame(FRAME.RECORD, this.send.encryptWithAd(EMPTY, cat(inner, content))))
        return Buffer.concat(out)
    }
    open(body) {
        const trial = this.recv.clone()
        const pt = trial.decryptWithAd(EMPTY, body)
        if (pt.length < 1) throw new Error("empty record plaintext")
        const inner = pt[0]
        if (!Object.values(INNER).includes(inner)) throw new Error(`unknown inner type 0x${inner.toString(16)}`)
        this.recv = trial
        if (inner === INNER.KEY_UPDATE) this.recv.rekey()
        return { inner, content: pt.subarray(1) }
    }
}

// ---------------------------------------------------------------- application messages (§12)

export function appMsg(kind, id, body = EMPTY) {
    return cat(kind, u32(id), u16(body.length), body)
}
export const streamMsg = (streamId, peerStreamId, delivered) => appMsg(APP.STREAM, 0, cat(u32(streamId), u32(peerStreamId), u32(delivered)))
export const ackMsg = id => appMsg(APP.ACK, id)
export function topicBody(topic, payload = EMPTY) {
    const t = Buffer.from(topic, "utf8")
    if (t.length > 255) throw new Error("topic or route longer than 255 bytes")
    return cat(t.length, t, payload)
}
export function parseApps(content) {
    const out = []
    let o = 0
    while (o < content.length) {
        if (content.length - o < 7) throw new Error("truncated application message header")
        const kind = content[o]
        const id = content.readUInt32BE(o + 1)
        const len = content.readUInt16BE(o + 5)
        if (content.length - o - 7 < len) throw new Error("truncated application message body")
        const body = content.subarray(o + 7, o + 7 + len)
        o += 7 + len
        const m = { kind, id, body }
        if (kind === APP.STREAM) {
            if (len !== 12) throw new Error("STREAM body must be 12 bytes")
            m.streamId = body.readUInt32BE(0)
            m.peerStreamId = body.readUInt32BE(4)
            m.delivered = body.readUInt32BE(8)
        } else if (kind === APP.RESPONSE) {
            if (len < 6) throw new Error("RESPONSE body too short")
            m.requestId = body.readUInt32BE(0)
            m.status = body.readUInt16BE(4)
            m.payload = body.subarray(6)
        } else if (kind === APP.MESSAGE || kind === APP.PUBLISH || kind === APP.REQUEST) {
            if (len < 1 || len < 1 + body[0]) throw new Error("topic longer than the body")
            m.topic = body.subarray(1, 1 + body[0]).toString("utf8")
            m.payload = body.subarray(1 + body[0])
        } else if (kind === APP.ACK) {
            if (len !== 0) throw new Error("ACK body must be empty")
        } else throw new Error(`unknown application message kind 0x${kind.toString(16)}`)
        out.push(m)
    }
    return out
}

// ---------------------------------------------------------------- tickets (§6.1, §6.3): the gateway's
// side, used only to check the published vectors (the device treats a ticket as opaque)

export function mintTicket({ ticketKey, keyId, deviceId, generation, issuedAt, chainOrigin }) {
    const [macKey, secretKey, encKey] = hkdf(Buffer.from(ticketKey), EMPTY, 3)
    const fields = cat(deviceId, u32(generation), u32(issuedAt))
    const c = createCipheriv("aes-256-ecb", encKey, null)
    c.setAutoPadding(false)
    const sealed = cat(c.update(fields), c.final())
    const mac = hmacSha256(macKey, ascii("tether/2 ticket"), keyId, sealed, u32(chainOrigin)).subarray(0, 16)
    const ticket = cat(keyId, sealed, mac)
    return { ticket, secret: hmacSha256(secretKey, ascii("tether/2 resumption"), ticket) }
}

// ---------------------------------------------------------------- settings (§6.8) and flash slots (§6.6)

export function parseEnv(text) {
    const raw = {}
    for (const line of text.split(/\r?\n/)) {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line)
        if (!m || line.trimStart().startsWith("#")) continue
        let v = m[2]
        if (/^".*"$/.test(v) || /^'.*'$/.test(v)) v = v.slice(1, -1)
        raw[m[1]] = v
    }
    const hex = (name, len) => {
        const v = raw[name]
        if (v === undefined || !/^[0-9a-f]*$/i.test(v) || v.length !== 2 * len)
            throw new Error(`setting ${name}: expected ${len} bytes of hex, got ${v}`)
        return Buffer.from(v, "hex")
    }
    for (const k of Object.keys(raw)) if (k.length > 13) throw new Error(`setting name ${k} longer than 13 characters`)
    const port = Number(raw.TT_GW_PORT)
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("TT_GW_PORT")
    return {
        deviceId: hex("TT_ID", 8),
        sk: hex("TT_SK", 32),
        gwPk: hex("TT_GW_PK", 32),
        psk: hex("TT_PSK", 32),
        host: raw.TT_GW_HOST,
        port,
        ticket: hex("TT_TICKET", 33),
        secret: hex("TT_RSECRET", 32),
    }
}

export function encodeSlot({ seq, ticket, secret, pseudonym, resumed }) {
    const head = cat(u32(seq), ticket, secret, pseudonym, u16(resumed))
    return cat(head, sha(ascii("tether/2 slot"), head).subarray(0, 8))
}
export function decodeSlot(b) {
    if (!b || b.length !== SIZES.SLOT) return null
    const head = b.subarray(0, SIZES.SLOT - 8)
    if (
        !sha(ascii("tether/2 slot"), head)
            .subarray(0, 8)
            .equals(b.subarray(SIZES.SLOT - 8))
    )
        return null
    return {
        seq: b.readUInt32BE(0),
        ticket: Buffer.from(b.subarray(4, 37)),
        secret: Buffer.from(b.subarray(37, 69)),
        pseudonym: Buffer.from(b.subarray(69, 77)),
        resumed: b.readUInt16BE(77),
    }
}

// ---------------------------------------------------------------- a framed TCP connection

export class FrameConn {
    static connect(host, port, timeoutMs = 3000) {
        return new Promise((resolve, reject) => {
            const sock = net.connect({ host, port })
            const t = setTimeout(() => (sock.destroy(), reject(new Error("connect timeout"))), timeoutMs)
            sock.once("connect", () => (clearTimeout(t), resolve(new FrameConn(sock))))
            sock.once("error", e => (clearTimeout(t), reject(e)))
        })
    }
    constructor(sock) {
        this.sock = sock
        this.buf = EMPTY
        this.frames = []
        this.waiters = []
        this.closed = false
        this.wire = [] // every frame in both directions: { dir, type, length (frame bytes), raw }
        sock.setNoDelay(true)
        sock.on("data", d => this.onData(d))
        sock.on("error", () => {})
        sock.on("close", () => {
            this.closed = true
            this.wake()
        })
    }
    onData(d) {
        this.buf = cat(this.buf, d)
        while (this.buf.length >= 2) {
            const len = this.buf.readUInt16BE(0)
            if (len === 0 || len > MAX_FRAME_LEN) {
                // §2.1: the stream can no longer be parsed: close at once, send nothing
                this.badLength = len
                this.sock.destroy()
                this.buf = EMPTY
                break
            }
            if (this.buf.length < 2 + len) break
            const raw = this.buf.subarray(0, 2 + len)
            this.buf = this.buf.subarray(2 + len)
            const f = { type: raw[2], body: Buffer.from(raw.subarray(3)), raw: Buffer.from(raw) }
            this.wire.push({ dir: "in", type: f.type, length: raw.length, raw: f.raw })
            this.frames.push(f)
        }
        this.wake()
    }
    wake() {
        const ws = this.waiters
        this.waiters = []
        for (const w of ws) w()
    }
    send(bytes) {
        for (let o = 0; o < bytes.length;) {
            const len = bytes.length - o >= 3 ? bytes.readUInt16BE(o) : -1
            if (len < 1 || o + 2 + len > bytes.length) {
                this.wire.push({ dir: "out", type: -1, length: bytes.length - o, raw: Buffer.from(bytes.subarray(o)) }) // deliberately malformed
                break
            }
            this.wire.push({ dir: "out", type: bytes[o + 2], length: 2 + len, raw: Buffer.from(bytes.subarray(o, o + 2 + len)) })
            o += 2 + len
        }
        this.sock.write(bytes)
    }
    // the next frame; null when the peer closed first
    async next(timeoutMs = 3000) {
        const deadline = Date.now() + timeoutMs
        for (;;) {
            if (this.frames.length) return this.frames.shift()
            if (this.closed) return null
            const left = deadline - Date.now()
            if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`)
            await new Promise(r => {
                const t = setTimeout(r, left)
                this.waiters.push(() => (clearTimeout(t), r()))
            })
        }
    }
    async waitClosed(timeoutMs = 3000) {
        const deadline = Date.now() + timeoutMs
        while (!this.closed) {
            const left = deadline - Date.now()
            if (left <= 0) return false
            await new Promise(r => {
                const t = setTimeout(r, left)
                this.waiters.push(() => (clearTimeout(t), r()))
            })
        }
        return true
    }
    close() {
        this.sock.end()
        this.sock.destroySoon?.()
    }
    destroy() {
        this.sock.destroy()
    }
}

// ---------------------------------------------------------------- the device (§6.6-6.9, §8, §12.1)

export class RejectError extends Error {
    constructor(code, where) {
        super(`REJECT 0x${code.toString(16).padStart(2, "0")} in ${where}`)
        this.code = code
    }
}

export class Device {
    // flash: a Map of setting key -> Buffer (the two ticket slots, §6.6); survives reboot().
    // Everything else is RAM.
    constructor(settings, { flash = new Map(), clock = () => performance.now() } = {}) {
        this.settings = settings
        this.flash = flash
        this.clock = clock
        this.reboot()
    }
    reboot() {
        const a = decodeSlot(this.flash.get("tt_slot_a"))
        const b = decodeSlot(this.flash.get("tt_slot_b"))
        this.slotName = a && (!b || a.seq >= b.seq) ? "tt_slot_a" : b ? "tt_slot_b" : null
        this.store = this.slotName === "tt_slot_a" ? a : b
        this.ticketReceivedAt = null // RAM: the age of a stored ticket is unknown after a restart
        this.rejections = 0
        this.useFallbackPseudonym = false
        // §12.1: the device's streams are created at boot
        this.tx = { streamId: randomStreamId(), nextId: 1, unacked: [] }
        this.rx = { streamId: 0, delivered: 0 }
    }
    // what the next connection will resume with (§6.8: the newest valid slot, else the out-of-band ticket)
    resumeTicket() {
        if (this.store) return { ticket: this.store.ticket, secret: this.store.secret, resumed: this.store.resumed, oob: false }
        return { ticket: this.settings.ticket, secret: this.settings.secret, resumed: 0, oob: true }
    }
    currentPseudonym() {
        if (this.useFallbackPseudonym || !this.store) return pseudonym0(this.settings.psk)
        return this.store.pseudonym
    }
    ticketAge() {
        return this.store && this.ticketReceivedAt !== null ? Math.floor(this.clock() - this.ticketReceivedAt) : null
    }
    storeTicket(content, afterFull) {
        if (content.length !== 73) throw new Error(`TICKET content of ${content.length} bytes (expected 73)`)
        const prev = this.store
        const slot = {
            seq: prev ? (prev.seq + 1) >>> 0 : 1,
            ticket: Buffer.from(content.subarray(0, 33)),
            secret: Buffer.from(content.subarray(33, 65)),
            pseudonym: Buffer.from(content.subarray(65, 73)),
            resumed: afterFull ? 0 : Math.min(0xffff, (prev ? prev.resumed : 0) + 1),
        }
        const name = this.slotName === "tt_slot_a" ? "tt_slot_b" : "tt_slot_a"
        this.flash.set(name, encodeSlot(slot)) // stored before it is used (§6.3)
        this.slotName = name
        this.store = slot
        this.ticketReceivedAt = this.clock()
        this.useFallbackPseudonym = false
        return slot
    }
    // queue a sequenced message of the device's stream (§12.1)
    queue(kind, body) {
        const m = { kind, id: this.tx.nextId++, body }
        this.tx.unacked.push(m)
        return m.id
    }
    publish(topic, payload) {
        return this.queue(APP.PUBLISH, topicBody(topic, payload))
    }
    request(route, payload) {
        return this.queue(APP.REQUEST, topicBody(route, payload))
    }
    // the device's first application data of a session: its STREAM, then its unacknowledged messages
    // (the messages included are marked with `tag`, so that Session.flush() does not repeat them)
    firstContent(maxLen, tag) {
        const parts = [streamMsg(this.tx.streamId, this.rx.streamId, this.rx.delivered)]
        let len = parts[0].length
        for (const m of this.tx.unacked) {
            const b = appMsg(m.kind, m.id, m.body)
            if (len + b.length > maxLen) break
            parts.push(b)
            m.sentIn = tag
            len += b.length
        }
        return Buffer.concat(parts)
    }

    // One connection (§8). Options:
    //   mode: "auto" (resume if it can, §6.8/§6.9), "resume", "full"
    //   early: send early data when the age is known (default true)
    //   pseudonym: override the pseudonym of HS_INIT
    //   deferFirst: do not send the first record yet (Session.sendFirst() sends it)
    // Returns a Session in Established, or throws a RejectError / Error.
    async connect({
        host = this.settings.host,
        port = this.settings.port,
        mode = "auto",
        early = true,
        pseudonym,
        deferFirst = false,
        timeoutMs = 3000,
    } = {}) {
        const conn = await FrameConn.connect(host, port, timeoutMs)
        const trace = { conn, resumed: false, oob: false, fellBack: false, earlyAccepted: false, sentEarly: null }
        try {
            const rt = this.resumeTicket()
            const wantResume = mode === "resume" || (mode === "auto" && rt.resumed < RESUME_CAP)
            if (wantResume) {
                const ageMs = rt.oob ? null : this.ticketAge()
                const earlyData = early && ageMs !== null ? cat(INNER.DATA, this.firstContent(MAX_EARLY_DATA - 1, trace)) : EMPTY
                const ri = new ResumeInitiator({ deviceId: this.settings.deviceId, ticket: rt.ticket, secret: rt.secret, ageMs, earlyData })
                conn.send(ri.writeResumeInit())
                trace.resumeInit = ri
                trace.oob = rt.oob
                trace.sentEarly = earlyData.length ? earlyData : null
                const f = await conn.next(timeoutMs)
                if (!f) throw new Error("gateway closed without answering RESUME_INIT")
                if (f.type === FRAME.RESUME_RESP) {
                    const r = ri.readResumeResp(f.body)
                    this.rejections = 0
                    trace.resumed = true
                    trace.earlyAccepted = r.earlyAccepted
                    trace.handshakeHash = r.handshakeHash
                    if (r.earlyAccepted && !earlyData.length) throw new Error("EARLY_ACCEPTED set though no early data was sent (§6.2)")
                    const s = new Session(this, conn, new Transport(r.send, r.recv), trace, false)
                    // §6.2: early data not accepted is sent again; no early data: the first record now
                    if (!r.earlyAccepted)
                        s.first(earlyData.length ? earlyData.subarray(1) : this.firstContent(MAX_RECORD_PLAINTEXT - 1, trace), deferFirst)
                    return s
                }
                if (f.type !== FRAME.REJECT || f.body.length !== 1)
                    throw new Error(`unexpected frame 0x${f.type.toString(16)} in AwaitResumeResp`)
                trace.rejectCode = f.body[0]
                if (f.body[0] !== CODE.TICKET_REJECTED) throw new RejectError(f.body[0], "AwaitResumeResp")
                // §6.9 fallback cap; the ticket is kept (§6.2)
                const r = ++this.rejections
                if (!(r <= 2 || r % 8 === 0)) {
                    conn.close()
                    throw new RejectError(CODE.TICKET_REJECTED, "AwaitResumeResp (fallback cap: no full handshake now)")
                }
                trace.fellBack = true
            }
            // full handshake (§4), on the same connection after TICKET_REJECTED
            const usedPseudonym = pseudonym ?? this.currentPseudonym()
            const kk = new KkInitiator({ s: this.settings.sk, rs: this.settings.gwPk, psk: this.settings.psk, pseudonym: usedPseudonym })
            conn.send(kk.writeHsInit())
            trace.kk = kk
            trace.pseudonym = usedPseudonym
            const f = await conn.next(timeoutMs)
            if (!f) throw new Error("gateway closed without answering HS_INIT")
            if (f.type === FRAME.REJECT && f.body.length === 1) {
                // §4.4: UNKNOWN_DEVICE with a stored pseudonym -> pseudonym0 next time
                if (f.body[0] === CODE.UNKNOWN_DEVICE && !usedPseudonym.equals(pseudonym0(this.settings.psk)))
                    this.useFallbackPseudonym = true
                throw new RejectError(f.body[0], "AwaitHsResp")
            }
            if (f.type !== FRAME.HS_RESP) throw new Error(`unexpected frame 0x${f.type.toString(16)} in AwaitHsResp`)
            const r = kk.readHsResp(f.body)
            trace.handshakeHash = r.handshakeHash
            const s = new Session(this, conn, new Transport(r.send, r.recv), trace, true)
            s.first(this.firstContent(MAX_RECORD_PLAINTEXT - 1, trace), deferFirst) // the device goes first (§12.1)
            return s
        } catch (e) {
            conn.destroy()
            e.trace = trace
            throw e
        }
    }
}

function randomStreamId() {
    for (;;) {
        const v = randomBytes(4).readUInt32BE(0)
        if (v !== 0) return v
    }
}

// An established session: reads records in the background, stores TICKETs, runs the stream
// rules of §12.1, acknowledges what it delivers.
export class Session {
    constructor(device, conn, transport, trace, afterFull) {
        this.device = device
        this.conn = conn
        this.transport = transport
        this.trace = trace
        this.afterFull = afterFull
        this.events = [] // { t, kind: "ticket"|"app"|"close"|"error"|"end", ... } in arrival order
        this.waiters = []
        this.gatewayStreamSeen = false
        this.gapWaiting = false
        this.error = null
        this.pump()
    }
    emit(ev) {
        ev.t = performance.now()
        this.events.push(ev)
        const ws = this.waiters
        this.waiters = []
        for (const w of ws) w()
    }
    first(content, defer) {
        if (defer) this.pendingFirst = content
        else this.sendData(content)
    }
    sendFirst() {
        this.sendData(this.pendingFirst)
        this.pendingFirst = null
    }
    sendData(content) {
        this.conn.send(this.transport.seal(INNER.DATA, content))
    }
    sendKeyUpdate() {
        // a KEY_UPDATE record, then the sender's next records use the updated key (§5.1)
        this.conn.send(frame(FRAME.RECORD, this.transport.send.encryptWithAd(EMPTY, cat(INNER.KEY_UPDATE))))
        this.transport.send.rekey()
    }
    // send the queued messages not sent yet in this session
    flush() {
        const b = []
        for (const m of this.device.tx.unacked)
            if (m.sentIn !== this.trace) {
                m.sentIn = this.trace
                b.push(appMsg(m.kind, m.id, m.body))
            }
        if (b.length) this.sendData(Buffer.concat(b))
    }
    close(code = CODE.NORMAL) {
        if (!this.conn.closed) {
            this.conn.send(this.transport.seal(INNER.CLOSE, cat(code)))
            this.conn.close()
        }
    }
    fail(why) {
        this.error = why
        this.emit({ kind: "error", message: why })
        this.conn.destroy()
    }
    async pump() {
        for (;;) {
            let f
            try {
                f = await this.conn.next(3_600_000)
            } catch {
                continue
            }
            if (!f) return this.emit({ kind: "end", badLength: this.conn.badLength })
            if (f.type !== FRAME.RECORD) return this.fail(`frame type 0x${f.type.toString(16)} in Established`)
            let rec
            try {
                rec = this.transport.open(f.body)
            } catch (e) {
                return this.fail("record failed: " + e.message)
            }
            if (rec.inner === INNER.TICKET) {
                try {
                    const slot = this.device.storeTicket(rec.content, this.afterFull)
                    this.emit({ kind: "ticket", slot, frameLength: f.raw.length, raw: f.raw, receivedAt: this.device.ticketReceivedAt })
                } catch (e) {
                    return this.fail(e.message)
                }
            } else if (rec.inner === INNER.CLOSE) {
                this.emit({ kind: "close", code: rec.content[0], contentLength: rec.content.length })
                this.conn.close()
                return
            } else if (rec.inner === INNER.KEY_UPDATE) {
                if (rec.content.length) return this.fail("KEY_UPDATE with content")
                this.emit({ kind: "key_update" })
            } else if (rec.inner === INNER.DATA) {
                let msgs
                try {
                    msgs = parseApps(rec.content)
                } catch (e) {
                    this.close(CODE.PROTOCOL_ERROR)
                    return this.fail("DATA: " + e.message)
                }
                const err = this.onApps(msgs)
                if (err) {
                    this.close(CODE.PROTOCOL_ERROR)
                    return this.fail(err)
                }
            }
        }
    }
    // §12.1, the device's side; returns an error string for a protocol error
    onApps(msgs) {
        const d = this.device
        let ackTo = null
        const out = []
        for (const m of msgs) {
            this.emit({ kind: "app", msg: m })
            if (m.kind === APP.PUBLISH || m.kind === APP.REQUEST) return `kind 0x${m.kind.toString(16)} from the gateway (wrong direction)`
            if (m.kind === APP.STREAM) {
                if (m.id !== 0) return "STREAM with a non-zero id"
                this.gatewayStreamSeen = true
                this.gapWaiting = false
                if (m.streamId !== d.rx.streamId) d.rx = { streamId: m.streamId, delivered: 0 } // receiver: start over
                if (m.peerStreamId === d.tx.streamId) {
                    // sender: release up to delivered, resend the rest in order
                    d.tx.unacked = d.tx.unacked.filter(u => u.id > m.delivered)
                    for (const u of d.tx.unacked) out.push(appMsg(u.kind, u.id, u.body))
                } else {
                    // a new stream: fresh id, unacknowledged messages renumbered 1, 2, 3, ...; STREAM first
                    d.tx.streamId = randomStreamId()
                    d.tx.unacked.forEach((u, i) => (u.id = i + 1))
                    d.tx.nextId = d.tx.unacked.length + 1
                    out.push(streamMsg(d.tx.streamId, d.rx.streamId, d.rx.delivered))
                    for (const u of d.tx.unacked) out.push(appMsg(u.kind, u.id, u.body))
                    this.emit({ kind: "new_stream", streamId: d.tx.streamId })
                }
            } else if (m.kind === APP.ACK) {
                d.tx.unacked = d.tx.unacked.filter(u => u.id > m.id)
            } else {
                // a sequenced message of the gateway's stream (RESPONSE, MESSAGE)
                if (!this.gatewayStreamSeen) return "sequenced message before the gateway's STREAM in this session"
                if (this.gapWaiting) continue
                if (m.id === d.rx.delivered + 1) {
                    d.rx.delivered++
                    d.rx.gapSinceDelivery = false
                    ackTo = d.rx.delivered
                    this.emit({ kind: "deliver", msg: m })
                } else if (m.id <= d.rx.delivered) {
                    ackTo = d.rx.delivered // duplicate: acknowledged again
                } else {
                    if (d.rx.gapSinceDelivery) return "a second gap before anything was delivered since (§12.1)"
                    d.rx = { streamId: 0, delivered: 0, gapSinceDelivery: true }
                    this.gapWaiting = true
                    out.push(streamMsg(d.tx.streamId, 0, 0))
                    this.emit({ kind: "gap", msg: m })
                }
            }
        }
        if (ackTo !== null) out.push(ackMsg(ackTo))
        if (out.length) this.sendData(Buffer.concat(out))
        return null
    }
    // the records received, in order, for error messages
    summary() {
        return this.events
            .filter(e => e.kind === "app" || e.kind === "ticket" || e.kind === "close")
            .map(e =>
                e.kind === "app" ? `app(kind 0x${e.msg.kind.toString(16)} id ${e.msg.id} body ${e.msg.body.toString("hex")})` : e.kind
            )
            .join(", ")
    }
    // wait for an event matching pred (searching from index `from`)
    async waitFor(pred, timeoutMs = 3000, from = 0) {
        const deadline = Date.now() + timeoutMs
        for (;;) {
            const i = this.events.findIndex((e, j) => j >= from && pred(e))
            if (i >= 0) return this.events[i]
            const bad = this.events.find(e => e.kind === "error" || e.kind === "end" || e.kind === "close")
            if (bad && !pred(bad))
                throw new Error(`session ended (${JSON.stringify(bad)}) before the awaited event; received: ${this.summary()}`)
            const left = deadline - Date.now()
            if (left <= 0)
                throw new Error(
                    `timeout after ${timeoutMs} ms; events: ${this.events.map(e => e.kind + (e.msg ? ":" + e.msg.kind : "")).join(",")}`
                )
            await new Promise(r => {
                const t = setTimeout(r, left)
                this.waiters.push(() => (clearTimeout(t), r()))
            })
        }
    }
}
