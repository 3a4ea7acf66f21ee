// The TCP floor of the perf group, loaded by server-proc.mjs as kind "tcp": accept, answer each
// chunk ending in "!" with `reply` bytes ending in "!", close when the client does. A client
// (perf.mjs tcpOnce) makes the round trips of a Tether connection with the sizes of its frames,
// so the gateway CPU per connection of this server is what the kernel's TCP and Node's socket
// plumbing cost before any protocol runs.
import net from "node:net"

export async function startServer({ reply = 51 }) {
    const answer = Buffer.alloc(reply, 0x21)
    const server = net.createServer(s => {
        s.setNoDelay(true)
        s.on("data", d => {
            if (d[d.length - 1] === 0x21) s.write(answer)
        })
        s.on("error", () => {})
    })
    await new Promise(r => server.listen(0, "127.0.0.1", 511, r))
    return { port: server.address().port, close: () => new Promise(r => server.close(() => r())) }
}
