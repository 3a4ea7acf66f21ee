// The load scenario shared by load.test.ts (200 clients, normal suite) and load.slow.test.ts
// (2,000 clients): full handshakes and resumptions, records both ways, a drop of every
// connection and a reconnect, and a garbage flood while the real devices keep their sessions.
// Nothing may be dropped: every PUBLISH delivered once and in order, every MESSAGE received.
import assert from "node:assert/strict"
import { connectAll, dropAll, forkGateway, garbageFlood, makeFleet, publishAll } from "../../peer/load.js"

async function until(pred: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
    const end = Date.now() + ms
    while (!(await pred())) {
        if (Date.now() > end) return false
        await new Promise(r => setTimeout(r, 20))
    }
    return true
}

export async function loadScenario(n: number, garbage: number, log: (s: string) => void = () => {}): Promise<void> {
    const fleet = makeFleet({ n, withTicket: n / 2, host: "127.0.0.1", policy: { perSourceAttempts: 1_000_000, handshakeTimeoutMs: 3000 } })
    const gw = await forkGateway(fleet.setup)
    fleet.connectTo(gw.port)
    const { clients } = fleet
    const received = clients.map(() => 0)
    clients.forEach((c, i) => c.app.events.on("message", () => received[i]!++))
    try {
        // 1. first connections: half full handshakes, half out-of-band resumptions
        const r1 = await connectAll(clients)
        log(`connect: ${n} in ${r1.ms.toFixed(0)} ms (${r1.full} full, ${r1.resumed} resumed, ${r1.busyRetries} BUSY retries)`)
        assert.deepEqual(r1.errors, [])
        assert.equal(r1.full, n / 2)
        assert.equal(r1.resumed, n / 2)
        assert.equal((await gw.stats()).sessions, n, "every client holds a session at once")
        await publishAll(clients, 3, "a")
        await gw.sendMessages(
            fleet.setup.devices.map(d => d.name),
            "m1"
        )
        assert.ok(await until(() => received.every(x => x === 1), 30000), "every device got the MESSAGE")

        // 2. every radio drops; everyone comes back with a resumption
        await dropAll(clients)
        assert.ok(await until(async () => (await gw.stats()).sessions === 0, 30000))
        const r2 = await connectAll(clients)
        log(`reconnect: ${n} in ${r2.ms.toFixed(0)} ms (${r2.full} full, ${r2.resumed} resumed)`)
        assert.deepEqual(r2.errors, [])
        assert.equal(r2.resumed, n)
        await publishAll(clients, 2, "b")

        // 3. a garbage flood while the devices keep working
        const before = clients.map(c => c.conn)
        const t0 = Date.now()
        const [flood] = await Promise.all([
            garbageFlood("127.0.0.1", gw.port, garbage),
            (async () => {
                await publishAll(clients, 2, "c")
                await gw.sendMessages(
                    fleet.setup.devices.map(d => d.name),
                    "m2"
                )
            })(),
        ])
        log(`flood: ${flood.connections} garbage connections in ${Date.now() - t0} ms, rejects ${JSON.stringify(flood.rejects)}`)
        assert.equal(flood.connections, garbage)
        assert.equal(flood.closedByGateway, garbage, "the gateway closed every garbage connection itself")
        assert.ok(await until(() => received.every(x => x === 2), 30000), "every device got the second MESSAGE")
        assert.ok(
            clients.every((c, i) => c.conn !== undefined && c.conn === before[i] && c.conn.isOpen()),
            "no session lost to the flood"
        )

        const s = await gw.stats()
        assert.equal(s.published, n * 7, "every PUBLISH delivered exactly once")
        assert.equal(s.order, true, "in order")
        assert.equal(s.sessions, n)
    } finally {
        await Promise.all(clients.map(c => c.close()))
        await gw.stop()
    }
}
