// The gateway's policy (PROTOCOL.md 6.5 and 9.4): every limit an operator or a test may change,
// each with its one default, here. The server, the responder and `serve` all take their values
// from DEFAULT_POLICY through resolvePolicy; nothing else writes a default down. The two that
// PROTOCOL.md 6.5 itself fixes (ticket lifetime, chain limit) are named in wire.ts with the rest
// of the specification's numbers, and this table takes them from there.
import { CHAIN_LIMIT, EARLY_DATA_WINDOW_MS, OOB_TICKET_LIFETIME, TICKET_LIFETIME } from "./wire.js"

/** Every policy value of a gateway. */
export interface ServerPolicy {
    /** seconds: a ticket signed by a session key expires this long after its `issued_at` (PROTOCOL.md 6.5) */
    readonly ticketLifetime: number
    /** seconds: a ticket signed by an out-of-band key (pairing's) expires this long after its `issued_at` */
    readonly oobTicketLifetime: number
    /** tickets per chain (6.4): once `issued_generation - full_generation` reaches this minus 1, every resumption is refused */
    readonly chainLimit: number
    /** milliseconds: the freshness window of early data (6.2); a RESUME_INIT held back longer has its early data discarded */
    readonly earlyDataWindowMs: number
    /** milliseconds from accept to an established session; then the socket is dropped unanswered */
    readonly handshakeTimeoutMs: number
    /** milliseconds without a frame from an established device; then CLOSE(IDLE) */
    readonly idleTimeoutMs: number
    /** handshakes: in progress at once, all sources together; one more is answered REJECT(BUSY) */
    readonly maxConcurrentHandshakes: number
    /** handshake attempts (connections that sent HS_INIT or RESUME_INIT): per source address and window; one more is answered REJECT(BUSY) */
    readonly perSourceAttempts: number
    /** milliseconds: the length of the per-source window; a source's count restarts at its first attempt after one */
    readonly perSourceWindowMs: number
    /** connections: open at once from one source address, in any phase; one more is answered REJECT(BUSY) at its first handshake frame */
    readonly perSourceConnections: number
    /** source addresses: the most the per-source tables hold; the least recently seen is forgotten first */
    readonly maxSources: number
    /** milliseconds after REJECT(TICKET_REJECTED) for the device's HS_INIT; then the socket is dropped unanswered */
    readonly hsInitTimeoutMs: number
    /** milliseconds a closed connection waits for the peer's FIN after its last frame (socket.end()); then the socket is destroyed */
    readonly lingerMs: number
    /** milliseconds of silence on an accepted socket before the kernel's first TCP keepalive probe */
    readonly keepAliveMs: number
    /** bytes: written to a connection but not yet taken by the kernel; a peer that lets more pile up is dropped (destroyed) */
    readonly maxWriteBufferBytes: number
    /** milliseconds close() waits after CLOSE(SHUTDOWN) for the peers to close; then every socket is destroyed */
    readonly shutdownGraceMs: number
}

/** The part of the policy the responder applies (PROTOCOL.md 6.5). */
export type ResponderPolicy = Pick<ServerPolicy, "ticketLifetime" | "oobTicketLifetime" | "chainLimit" | "earlyDataWindowMs">

/** The defaults: the only place a policy value is written down. */
export const DEFAULT_POLICY: ServerPolicy = Object.freeze({
    ticketLifetime: TICKET_LIFETIME,
    oobTicketLifetime: OOB_TICKET_LIFETIME,
    chainLimit: CHAIN_LIMIT,
    earlyDataWindowMs: EARLY_DATA_WINDOW_MS,
    handshakeTimeoutMs: 10_000,
    idleTimeoutMs: 300_000,
    maxConcurrentHandshakes: 512,
    perSourceAttempts: 200,
    perSourceWindowMs: 10_000,
    perSourceConnections: 256,
    maxSources: 65_536,
    hsInitTimeoutMs: 2_000,
    lingerMs: 5_000,
    keepAliveMs: 60_000,
    maxWriteBufferBytes: 256 * 1024,
    shutdownGraceMs: 5_000,
})

/** The policy in force: DEFAULT_POLICY with the given fields over it (an undefined field keeps its default). */
export function resolvePolicy(overrides: Partial<ServerPolicy> = {}): ServerPolicy {
    const out: Record<string, number> = { ...DEFAULT_POLICY }
    for (const [k, v] of Object.entries(overrides)) if (v !== undefined) out[k] = v
    return out as unknown as ServerPolicy
}
