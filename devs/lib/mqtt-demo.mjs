// The MQTT side of `npm start` (devs/demo.mjs): an embedded broker (aedes, in this process, on a
// free port of 127.0.0.1), and a client of our own (the `mqtt` package) that subscribes to the
// device's telemetry as any consumer would, and publishes commands to it. The gateway bridges
// to the broker (createGateway's `mqtt`, as `tether-gateway serve --mqtt URL`).
import net from "node:net"
import { Aedes } from "aedes"
import { connectAsync } from "mqtt"

/** aedes on 127.0.0.1, a free port. @returns { url, port, close() } */
export async function startEmbeddedBroker() {
    const aedes = await Aedes.createBroker()
    const sockets = new Set()
    const server = net.createServer(sock => {
        sockets.add(sock)
        sock.on("close", () => sockets.delete(sock))
        aedes.handle(sock)
    })
    await new Promise((resolve, reject) => {
        server.once("error", reject)
        server.listen(0, "127.0.0.1", resolve)
    })
    const port = server.address().port
    return {
        port,
        url: `mqtt://127.0.0.1:${port}`,
        close: async () => {
            const closed = new Promise(r => server.close(r))
            for (const s of sockets) s.destroy()
            await closed
            await new Promise(r => aedes.close(r))
        },
    }
}

/**
 * A consumer of the device's data: subscribes to `filter` (QoS 1) and calls onMessage with the
 * MQTT topic and the JSON envelope the bridge sends with MQTT 3.1.1 (PROTOCOL.md 12.3), the
 * payload decoded. @returns { client, publish(topic, text), close() }
 */
export async function startConsumer(url, filter, onMessage) {
    const client = await connectAsync(url, { clientId: `demo-consumer-${process.pid}`, reconnectPeriod: 500 })
    client.on("error", () => {})
    client.on("message", (topic, payload) => {
        let e
        try {
            e = JSON.parse(payload.toString())
        } catch {
            return onMessage(topic, { payload: payload.toString() })
        }
        onMessage(topic, { ...e, payload: Buffer.from(e.payload, "base64").toString() })
    })
    await client.subscribeAsync(filter, { qos: 1 })
    return {
        client,
        /** Publishes a command at QoS 1; resolves at the broker's PUBACK. */
        publish: (topic, text) => client.publishAsync(topic, text, { qos: 1 }),
        close: () => client.endAsync(),
    }
}
