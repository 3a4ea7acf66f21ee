// Runs Noise cacophony test vectors (the JSON shape of test/vectors/published/
// noise-cacophony-25519-aesgcm-sha256.json) through the gateway's Noise layers with Noise's
// AESGCM cipher. Used by the tests and by `tether-gateway vectors --cacophony FILE`.
//
// The cacophony convention: messages[] starts with the handshake messages, alternating
// initiator/responder, and continues with transport messages. After an interactive pattern
// the transport messages keep alternating; after a one-way pattern (section 7.4) every
// message is the initiator's, since the responder has nothing to send with.
import { AESGCM } from "./aesgcm.js"
import { HandshakeState, type HandshakeResult } from "./handshake-state.js"
import { keyPairFromPrivate } from "../src/crypto/x25519.js"
import { lookupPattern } from "./patterns.js"

/** One cacophony vector (hex strings). */
export interface CacophonyVector {
    readonly protocol_name: string
    readonly init_prologue: string
    readonly init_psks?: readonly string[]
    readonly init_static?: string
    readonly init_ephemeral: string
    readonly init_remote_static?: string
    readonly resp_prologue: string
    readonly resp_psks?: readonly string[]
    readonly resp_static?: string
    readonly resp_ephemeral?: string
    readonly resp_remote_static?: string
    readonly handshake_hash: string
    readonly messages: readonly { readonly payload: string; readonly ciphertext: string }[]
}

/** A cacophony file: `{ vectors: [...] }`. */
export interface CacophonyFile {
    readonly vectors: readonly CacophonyVector[]
}

/** The outcome of one vector: passed, failed (with the first mismatch), or skipped. */
export type VectorOutcome =
    | { readonly status: "passed" }
    | { readonly status: "failed"; readonly reason: string }
    | { readonly status: "skipped"; readonly reason: string }

/** Totals over a file; `skipped` lists the protocol names not run. */
export interface CacophonyReport {
    passed: number
    failed: number
    skipped: string[]
    /** protocol name and reason for each failure */
    failures: { name: string; reason: string }[]
}

const PROTOCOL = /^Noise_([A-Za-z0-9+]+)_25519_AESGCM_SHA256$/

const hex = (s: string | undefined): Buffer | undefined => (s === undefined ? undefined : Buffer.from(s, "hex"))

function side(v: CacophonyVector, pattern: string, initiator: boolean): HandshakeState {
    const s = hex(initiator ? v.init_static : v.resp_static)
    const e = hex(initiator ? v.init_ephemeral : v.resp_ephemeral)
    return new HandshakeState({
        pattern,
        initiator,
        cipher: AESGCM,
        prologue: hex(initiator ? v.init_prologue : v.resp_prologue),
        s: s && keyPairFromPrivate(s),
        e: e && keyPairFromPrivate(e),
        rs: hex(initiator ? v.init_remote_static : v.resp_remote_static),
        psks: (initiator ? v.init_psks : v.resp_psks)?.map(k => Buffer.from(k, "hex")),
    })
}

/**
 * Runs one vector: both sides, every message byte for byte, the handshake hash on both sides,
 * then the transport messages.
 */
export function runCacophonyVector(v: CacophonyVector): VectorOutcome {
    const m = PROTOCOL.exec(v.protocol_name)
    const pattern = m?.[1]
    if (pattern === undefined) return { status: "skipped", reason: "not 25519/AESGCM/SHA256" }
    const hs = lookupPattern(pattern)
    if (hs === undefined) return { status: "skipped", reason: `pattern ${pattern} not supported` }
    try {
        const init = side(v, pattern, true)
        const resp = side(v, pattern, false)
        let initT: HandshakeResult | undefined
        let respT: HandshakeResult | undefined
        for (const [i, msg] of v.messages.entries()) {
            const payload = Buffer.from(msg.payload, "hex")
            const expected = Buffer.from(msg.ciphertext, "hex")
            const fromInit = hs.oneWay && i >= hs.messages.length ? true : i % 2 === 0
            let ct: Buffer
            let pt: Buffer | undefined
            if (i < hs.messages.length) {
                const [w, r] = fromInit ? [init, resp] : [resp, init]
                ct = w.writeMessage(payload)
                pt = r.readMessage(ct)
                if (init.isComplete !== resp.isComplete) return { status: "failed", reason: `message ${i}: sides disagree on completion` }
                if (init.isComplete) {
                    initT = init.split()
                    respT = resp.split()
                    if (initT.handshakeHash.toString("hex") !== v.handshake_hash)
                        return { status: "failed", reason: "initiator handshake hash" }
                    if (respT.handshakeHash.toString("hex") !== v.handshake_hash)
                        return { status: "failed", reason: "responder handshake hash" }
                }
            } else {
                if (initT === undefined || respT === undefined) return { status: "failed", reason: "handshake did not complete" }
                const [w, r] = fromInit ? [initT, respT] : [respT, initT]
                ct = w.send.encryptWithAd(Buffer.alloc(0), payload)
                pt = r.receive.decryptWithAd(Buffer.alloc(0), ct)
            }
            if (!ct.equals(expected)) return { status: "failed", reason: `message ${i}: ciphertext differs` }
            if (pt === undefined || !pt.equals(payload)) return { status: "failed", reason: `message ${i}: payload not recovered` }
        }
        if (initT === undefined) return { status: "failed", reason: "handshake did not complete" }
        return { status: "passed" }
    } catch (err) {
        return { status: "failed", reason: err instanceof Error ? err.message : String(err) }
    }
}

/**
 * Runs every vector of a cacophony file (parsed JSON).
 * @returns counts, the skipped protocol names, and a reason per failure
 */
export function runCacophony(json: CacophonyFile): CacophonyReport {
    const report: CacophonyReport = { passed: 0, failed: 0, skipped: [], failures: [] }
    for (const v of json.vectors) {
        const r = runCacophonyVector(v)
        if (r.status === "passed") report.passed++
        else if (r.status === "skipped") report.skipped.push(v.protocol_name)
        else {
            report.failed++
            report.failures.push({ name: v.protocol_name, reason: r.reason })
        }
    }
    return report
}
