// A loopback TCP proxy that delays every chunk by `delayMs` in each direction, so a round
// trip costs 2 * delayMs and "round trips before the client can send data" can be measured
// as elapsed time instead of being asserted from a protocol diagram.
import net from "node:net"

export async function startDelayProxy(targetPort, delayMs) {
    const sockets = new Set()
    const server = net.createServer(client => {
        const upstream = net.connect(targetPort, "127.0.0.1")
        for (const s of [client, upstream]) {
            sockets.add(s)
            s.setNoDelay(true)
            s.on("error", () => {})
            s.on("close", () => sockets.delete(s))
        }
        const pipe = (from, to) => {
            from.on("data", d => setTimeout(() => to.writable && to.write(d), delayMs))
            from.on("end", () => setTimeout(() => to.end(), delayMs))
        }
        pipe(client, upstream)
        pipe(upstream, client)
    })
    await new Promise(r => server.listen(0, "127.0.0.1", r))
    return {
        port: server.address().port,
        close: () => {
            for (const s of sockets) s.destroy()
            return new Promise(r => server.close(() => r()))
        },
    }
}
