// The gateway side of the load test and the bench, run as a child process (load.ts forks it):
// an in-memory registry filled from the setup, the application layer, and a small IPC
// protocol (start, stats, memory, send, stop). Logs are counted, not printed.
import { MemoryRegistry } from "../src/registry/memory.js"
import { TicketKeySet } from "../src/tickets.js"
import { startAppGateway, type AppGateway } from "../src/app/serve.js"
import { MemoryAppStateStore, MemoryOutbox } from "../src/store/memory-app.js"
import { parseConfig } from "../src/app/upstream.js"
import { setupRecords, type LoadGatewaySetup } from "./load.js"

let g: AppGateway | undefined
let published = 0
let order = true
const last = new Map<string, number>()
const names = new Map<string, string>()

async function start(setup: LoadGatewaySetup): Promise<number> {
    const registry = new MemoryRegistry()
    for (const r of setupRecords(setup)) {
        await registry.putDevice(r)
        names.set(r.name, r.id)
    }
    const ticketKeys = TicketKeySet.fromKeys(setup.ticketKeys.map(k => ({ id: k.id, key: Buffer.from(k.key, "hex") })))
    const identity = { privateKey: Buffer.from(setup.identity.privateKey, "hex"), publicKey: Buffer.from(setup.identity.publicKey, "hex") }
    g = await startAppGateway({
        port: 0,
        registry,
        state: { identity, ticketKeys },
        policy: setup.policy,
        log: () => {},
        app: { receiving: new MemoryAppStateStore(), outbox: new MemoryOutbox(), config: parseConfig({}) },
    })
    g.app.events.on("publish", e => {
        published++
        const prev = last.get(e.deviceId) ?? 0
        if (e.id !== prev + 1) order = false
        last.set(e.deviceId, e.id)
    })
    return g.gateway.port
}

process.on("message", (m: { seq: number; op: string; arg: unknown }) => {
    const reply = (value: unknown) => process.send?.({ seq: m.seq, value })
    void (async () => {
        switch (m.op) {
            case "start":
                return reply(await start(m.arg as LoadGatewaySetup))
            case "stats":
                return reply({ ...g?.gateway.stats, published, order })
            case "memory":
                for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.()
                return reply(process.memoryUsage())
            case "send": {
                const a = m.arg as { names: string[]; payload: string }
                for (const n of a.names) await g?.app.sendMessage(n, "load", Buffer.from(a.payload))
                return reply(true)
            }
            case "stop":
                await g?.close()
                return reply(true)
        }
    })()
})
