// Fixtures for the application-layer, CLI-serve and load tests: a gateway with its
// application layer on loopback (in-memory registry, receiving state and outbox unless given), devices
// paired the way `pair` pairs them, and AppClients (the Node twin of the device's app stream).
import { decodeApp, type AppMessage } from "../../src/app/codec.js"
import type { AppLink, GatewayApp } from "../../src/app/gateway-app.js"
import { startAppGateway, type AppGateway } from "../../src/app/serve.js"
import { AppClient, DeviceApp } from "../../peer/device-app.js"
import { MemoryAppStateStore, MemoryOutbox } from "../../src/store/memory-app.js"
import { openAppDatabase, SqliteAppStateStore, SqliteOutbox } from "../../src/store/sqlite-app.js"
import type { AppStateStore, Outbox } from "../../src/store/types.js"
import { parseConfig } from "../../src/app/upstream.js"
import { pairDevice, type Paired } from "../../src/cli/pair.js"
import { generateKeyPair } from "../../src/crypto/x25519.js"
import { MemoryRegistry } from "../../src/registry/memory.js"
import type { Registry } from "../../src/registry/registry.js"
import type { LogLine, ServerPolicy } from "../../src/server.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"
import { TicketKeySet } from "../../src/tickets.js"

export interface AppFixture {
    g: AppGateway
    registry: Registry
    receiving: AppStateStore
    outbox: Outbox
    logs: LogLine[]
    identity: ReturnType<typeof generateKeyPair>
    ticketKeys: TicketKeySet
    pair(name: string): Promise<Paired>
    /** an AppClient for a paired device, starting from its out-of-band ticket */
    device(p: Paired, app?: DeviceApp): AppClient
    close(): Promise<void>
}

export async function appFixture(
    opts: {
        config?: unknown
        registry?: Registry
        receiving?: AppStateStore
        outbox?: Outbox
        policy?: Partial<ServerPolicy>
        quiet?: boolean
        identity?: ReturnType<typeof generateKeyPair>
        ticketKeys?: TicketKeySet
    } = {}
): Promise<AppFixture> {
    const registry = opts.registry ?? new MemoryRegistry()
    const receiving = opts.receiving ?? new MemoryAppStateStore()
    const outbox = opts.outbox ?? new MemoryOutbox()
    const identity = opts.identity ?? generateKeyPair()
    const now = () => Math.floor(Date.now() / 1000)
    const ticketKeys = opts.ticketKeys ?? TicketKeySet.create(now())
    const logs: LogLine[] = []
    const g = await startAppGateway({
        port: 0,
        registry,
        state: { identity, ticketKeys },
        policy: opts.policy,
        log: l => {
            if (opts.quiet !== true) logs.push(l)
        },
        app: { receiving, outbox, config: parseConfig(opts.config ?? {}) },
    })
    return {
        g,
        registry,
        receiving,
        outbox,
        logs,
        identity,
        ticketKeys,
        pair: name => pairDevice({ registry, ticketKeys, name, now: now() }),
        device(p, app) {
            const client = new TetherClient({
                pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: identity.publicKey },
                store: new MemoryTicketStore(p.ticket),
                host: "127.0.0.1",
                port: g.gateway.port,
                timeoutMs: 10000,
            })
            return new AppClient(client, app)
        },
        close: () => g.close(),
    }
}

/** Waits until `pred` holds or `ms` pass. */
export async function until(pred: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
    const end = Date.now() + ms
    while (!(await pred())) {
        if (Date.now() > end) return false
        await new Promise(r => setTimeout(r, 5))
    }
    return true
}

/** An AppLink that records what the app sends on it (decoded) and the codes it closes with. */
export class FakeLink implements AppLink {
    sent: AppMessage[] = []
    closed: number[] = []
    send(content: Buffer): void {
        this.sent.push(...decodeApp(content, "gateway"))
    }
    close(code: number): void {
        this.closed.push(code)
    }
}

/** The app's two stores in memory. */
export function memoryStores(): { receiving: MemoryAppStateStore; outbox: MemoryOutbox } {
    return { receiving: new MemoryAppStateStore(), outbox: new MemoryOutbox() }
}

/** The app's two stores on their own connection to an existing registry file. */
export function sqliteStores(path: string): { receiving: SqliteAppStateStore; outbox: SqliteOutbox; close(): Promise<void> } {
    const db = openAppDatabase(path)
    return {
        receiving: new SqliteAppStateStore(db),
        outbox: new SqliteOutbox(db),
        close: async () => {
            db.close()
        },
    }
}

/** Carries one session between a GatewayApp and a DeviceApp twin, in memory. */
export class AppPipe implements AppLink {
    toDevice: Buffer[] = []
    closed: number[] = []
    send(content: Buffer): void {
        this.toDevice.push(content)
    }
    close(code: number): void {
        this.closed.push(code)
    }
    /** Runs `first` (device -> gateway) and every answer back and forth until quiet. */
    async run(g: GatewayApp, device: { id: string; name: string }, dev: DeviceApp, first: Buffer[]): Promise<void> {
        let up = first
        for (let i = 0; i < 50; i++) {
            for (const c of up) g.data(device, c, this)
            await g.idle()
            const down = this.toDevice.splice(0)
            up = down.flatMap(c => dev.data(c))
            if (up.length === 0) return
        }
        throw new Error("AppPipe: no quiet after 50 rounds")
    }
}
