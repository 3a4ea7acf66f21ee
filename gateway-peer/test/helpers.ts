// Shared fixtures for the session and server tests: a gateway on loopback with an in-memory
// registry, paired devices, a DH counter and a log sink.
import assert from "node:assert/strict"
import { after } from "node:test"
import { generateKeyPair } from "../src/crypto/x25519.js"
import { x25519, x25519Base } from "../src/crypto/x25519.js"
import { randomBytes } from "../src/crypto/random.js"
import { MemoryRegistry } from "../src/registry/memory.js"
import { newDevice, type DeviceRecord } from "../src/registry/registry.js"
import { startGateway, type Gateway, type GatewayOptions, type LogLine } from "../src/server.js"
import { MemoryTicketStore, TetherClient, type ClientOptions, type Connection, type Pairing } from "../peer/initiator.js"
import { TicketKeySet } from "../src/tickets.js"

export interface Fixture {
    gw: Gateway
    registry: MemoryRegistry
    ticketKeys: TicketKeySet
    identity: ReturnType<typeof generateKeyPair>
    /** DATA contents onData received; `early`: it came as resumption early data */
    delivered: { device: string; content: string; early: boolean }[]
    logs: LogLine[]
    dhCount: { n: number }
    clock: { now: number }
    pair(name: string): Promise<Pairing & { record: DeviceRecord }>
    client(p: Pairing, store?: MemoryTicketStore, extra?: Partial<ClientOptions>): TetherClient
}

export async function fixture(extra: Partial<GatewayOptions> = {}): Promise<Fixture> {
    const registry = new MemoryRegistry()
    const clock = { now: 1_800_000_000 }
    const ticketKeys = TicketKeySet.create(clock.now)
    const identity = generateKeyPair()
    const delivered: Fixture["delivered"] = []
    const logs: LogLine[] = []
    const dhCount = { n: 0 }
    const gw = await startGateway({
        registry,
        state: { identity, ticketKeys },
        now: () => clock.now,
        log: l => logs.push(l),
        onData: (d, c, _link, early) => delivered.push({ device: d.name, content: c.toString(), early }),
        dh: {
            x25519: (a, b) => {
                dhCount.n++
                return x25519(a, b)
            },
            x25519Base: a => {
                dhCount.n++
                return x25519Base(a)
            },
        },
        ...extra,
    })
    return {
        gw,
        registry,
        ticketKeys,
        identity,
        delivered,
        logs,
        dhCount,
        clock,
        async pair(name) {
            const s = generateKeyPair()
            const deviceId = randomBytes(8)
            const psk = randomBytes(32)
            const record = newDevice({ id: deviceId.toString("hex"), name, publicKey: s.publicKey, psk, now: clock.now })
            await registry.putDevice(record)
            return { deviceId, s, psk, gatewayPublic: identity.publicKey, record }
        },
        client(p, store = new MemoryTicketStore(), more = {}) {
            return new TetherClient({ pairing: p, store, host: "127.0.0.1", port: gw.port, timeoutMs: 3000, ...more })
        },
    }
}

/**
 * Connects and brings the session's TICKET home: the device's first record (`first`) confirms
 * the session, and the TICKET follows it (PROTOCOL.md 6.3). With early data given, connect()
 * itself waits for the TICKET (accepted early data, or the same data as the first record).
 */
export async function connectTicketed(client: TetherClient, first: Buffer = Buffer.from("first"), early?: Buffer): Promise<Connection> {
    const c = await client.connect(early)
    if (early !== undefined) return c
    c.send(first)
    assert.ok(await c.awaitTicket(), "no TICKET after the device's first record")
    return c
}

/** Waits until `pred` holds or `ms` pass. */
export async function until(pred: () => boolean, ms = 2000): Promise<boolean> {
    const end = Date.now() + ms
    while (!pred()) {
        if (Date.now() > end) return false
        await new Promise(r => setTimeout(r, 5))
    }
    return true
}

/**
 * A fixture() whose gateways the calling test file (or suite) closes after its last test: call
 * it once, at the top level of the file or of a describe().
 */
export function fixtures(): (...a: Parameters<typeof fixture>) => Promise<Fixture> {
    const made: Fixture[] = []
    after(async () => {
        for (const f of made) await f.gw.close()
    })
    return async (...a) => {
        const f = await fixture(...a)
        made.push(f)
        return f
    }
}
