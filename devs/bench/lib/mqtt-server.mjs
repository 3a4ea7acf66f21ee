// MQTT over TLS 1.3 into an in-process Node broker (aedes behind node:tls), loaded by
// server-proc.mjs as kind "mqtt": what a user would pick instead of Tether for telemetry. The
// broker keeps its default in-memory persistence (no disk: QoS 1 PUBACKs are not durable, which
// flatters MQTT next to Tether's store write before each ACK).
import tls from "node:tls"
import { Aedes } from "aedes"

export async function startServer({ keyPem, chainPem }) {
    const aedes = await Aedes.createBroker()
    let published = 0
    aedes.on("publish", (packet, client) => {
        if (client) published++
    })
    const server = tls.createServer({ key: keyPem, cert: chainPem, minVersion: "TLSv1.3" }, s => aedes.handle(s))
    await new Promise(r => server.listen(0, "127.0.0.1", 511, r))
    return {
        port: server.address().port,
        received: () => published,
        close: async () => {
            await new Promise(r => server.close(() => r()))
            await new Promise(r => aedes.close(() => r()))
        },
    }
}
