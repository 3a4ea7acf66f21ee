// The gateway as a service: handshakes per second with 2,000 concurrent connections,
// and memory per idle session. The gateway runs in a child process (gateway-peer's
// load-gateway.js: in-memory registry, application layer); the 2,000 devices are the gateway
// package's own initiator with the application twin, in this process. So a figure is
// end to end on this machine's cores, device-side crypto included.

const N = 2000
/** connection attempts in flight; more would overflow the listen backlog (511) and the figure
 * would measure SYN retransmission timers */
const WINDOW = 256
const RUNS = 3

export async function run(ctx) {
    const { median, spread } = ctx
    const load = await import("tether-gateway/peer")
    const full = []
    const resumed = []
    const heap = []
    const rss = []
    for (let r = 0; r < RUNS; r++) {
        // default policy but the per-source limit: every device comes from 127.0.0.1 here
        const fleet = load.makeFleet({ n: N, withTicket: 0, host: "127.0.0.1", policy: { perSourceAttempts: 1e9 } })
        const gw = await load.forkGateway(fleet.setup)
        fleet.connectTo(gw.port)
        try {
            const m0 = await gw.memory()
            const a = await load.connectAll(fleet.clients, WINDOW)
            if (a.errors.length > 0 || a.full !== N) throw new Error(`full handshakes: ${a.errors.length} errors (${a.errors[0]})`)
            full.push(N / (a.ms / 1000))
            // idle sessions: each has done one handshake, received its ticket and sent STREAM
            await load.publishAll(fleet.clients, 1, "bench")
            await new Promise(res => setTimeout(res, 200))
            const m1 = await gw.memory()
            const s = await gw.stats()
            if (s.sessions !== N) throw new Error(`${s.sessions} sessions, expected ${N}`)
            heap.push((m1.heapUsed + m1.external - m0.heapUsed - m0.external) / N)
            rss.push((m1.rss - m0.rss) / N)
            await load.dropAll(fleet.clients)
            const b = await load.connectAll(fleet.clients, WINDOW)
            if (b.errors.length > 0 || b.resumed !== N) throw new Error(`resumptions: ${b.errors.length} errors (${b.errors[0]})`)
            resumed.push(N / (b.ms / 1000))
        } finally {
            await Promise.all(fleet.clients.map(c => c.close()))
            await gw.stop()
        }
    }
    const note = `median of ${RUNS} runs (${spread(full)}); from 0 to ${N} concurrent sessions, ${WINDOW} attempts in flight, loopback; gateway in its own process, the ${N} devices' crypto in the driver process (2 processes share the cores)`
    return [
        { name: "gateway full handshakes/s, 2,000 concurrent connections", value: median(full), unit: "handshakes/s", note },
        {
            name: "gateway resumptions/s, 2,000 concurrent connections",
            value: median(resumed),
            unit: "handshakes/s",
            note: `median of ${RUNS} runs (${spread(resumed)}); all ${N} dropped, then back with their tickets, ${WINDOW} in flight`,
        },
        {
            name: "gateway memory per idle session (heap + external)",
            value: median(heap) / 1024,
            unit: "KiB",
            note: `over ${N} sessions after GC, median of ${RUNS} (${spread(heap.map(x => x / 1024))})`,
        },
        {
            name: "gateway memory per idle session (RSS)",
            value: median(rss) / 1024,
            unit: "KiB",
            note: `over ${N} sessions, median of ${RUNS} (${spread(rss.map(x => x / 1024))})`,
        },
    ]
}
