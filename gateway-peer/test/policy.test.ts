// The one table of policy defaults, and how overrides are applied.
import { test } from "node:test"
import assert from "node:assert/strict"
import { DEFAULT_POLICY, resolvePolicy } from "../src/policy.js"
import { DEFAULT_POLICY as FROM_SERVER } from "../src/server.js"
import { CHAIN_LIMIT, DAY, EARLY_DATA_WINDOW_MS, OOB_TICKET_LIFETIME, TICKET_LIFETIME } from "../src/wire.js"

test("the defaults are PROTOCOL.md 6.5's and the server's, written once", () => {
    assert.deepEqual(
        { ...DEFAULT_POLICY },
        {
            ticketLifetime: 7 * DAY,
            oobTicketLifetime: 365 * DAY,
            chainLimit: 64,
            earlyDataWindowMs: 2_000,
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
        }
    )
    assert.equal(DEFAULT_POLICY.ticketLifetime, TICKET_LIFETIME)
    assert.equal(DEFAULT_POLICY.chainLimit, CHAIN_LIMIT)
    assert.equal(DEFAULT_POLICY.oobTicketLifetime, OOB_TICKET_LIFETIME)
    assert.equal(DEFAULT_POLICY.earlyDataWindowMs, EARLY_DATA_WINDOW_MS)
    assert.equal(FROM_SERVER, DEFAULT_POLICY, "the server re-exports the same object")
    assert.ok(Object.isFrozen(DEFAULT_POLICY))
})

test("resolvePolicy: given fields win, missing or undefined ones keep the default, the table is untouched", () => {
    assert.deepEqual(resolvePolicy(), DEFAULT_POLICY)
    const p = resolvePolicy({ chainLimit: 2, idleTimeoutMs: undefined })
    assert.equal(p.chainLimit, 2)
    assert.equal(p.idleTimeoutMs, DEFAULT_POLICY.idleTimeoutMs)
    assert.equal(p.ticketLifetime, DEFAULT_POLICY.ticketLifetime)
    assert.equal(DEFAULT_POLICY.chainLimit, 64)
})
