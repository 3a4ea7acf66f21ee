// A real MQTT broker for the bridge's tests (aedes in-process, MQTT 3.1.1, on a free port that
// can be closed and reopened), subscribers on the real mqtt client, and the check of what a
// subscriber saw: every message, in order, duplicates only of a message already seen (same ids).
import assert from "node:assert/strict"
import net, { type AddressInfo } from "node:net"
import { Aedes, type AedesOptions } from "aedes"
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt"
import { randomBytes } from "node:crypto"

export interface Broker {
    readonly aedes: Aedes
    readonly port: number
    readonly url: string
    /** Closes the listening socket and every connection (the broker's state stays). */
    stop(): Promise<void>
    /** Listens again on the same port. */
    start(): Promise<void>
    close(): Promise<void>
}

export async function startBroker(opts: AedesOptions = {}): Promise<Broker> {
    const aedes = await Aedes.createBroker(opts)
    const sockets = new Set<net.Socket>()
    let server: net.Server | undefined
    const listen = (port: number) =>
        new Promise<number>((resolve, reject) => {
            const s = net.createServer(sock => {
                sockets.add(sock)
                sock.on("close", () => sockets.delete(sock))
                aedes.handle(sock)
            })
            s.once("error", reject)
            s.listen(port, "127.0.0.1", () => resolve((s.address() as AddressInfo).port))
            server = s
        })
    const port = await listen(0)
    const stop = async () => {
        const s = server
        server = undefined
        if (s === undefined) return
        const closed = new Promise(r => s.close(r))
        for (const sock of sockets) sock.destroy()
        await closed
    }
    return {
        aedes,
        port,
        url: `mqtt://127.0.0.1:${port}`,
        stop,
        async start() {
            await listen(port)
        },
        async close() {
            await stop()
            await new Promise<void>(r => aedes.close(() => r()))
        },
    }
}

/** One device message as the JSON envelope carries it (PROTOCOL.md 12.3). */
export interface Envelope {
    device: string
    deviceId: string
    stream: number
    id: number
    topic: string
    /** decoded from base64 */
    payload: string
    mqttTopic: string
}

export interface Subscriber {
    readonly client: MqttClient
    readonly got: Envelope[]
    close(): Promise<void>
}

/** A subscriber with a persistent session (it misses nothing while its connection is down). */
export async function subscriber(url: string, filter = "tether/#", opts: IClientOptions = {}): Promise<Subscriber> {
    const client = await connectAsync(url, {
        clientId: `sub-${randomBytes(4).toString("hex")}`,
        clean: false,
        reconnectPeriod: 200,
        protocolVersion: 4,
        ...opts,
    })
    client.on("error", () => {})
    const got: Envelope[] = []
    client.on("message", (topic, payload, packet) => {
        const up = packet.properties?.userProperties
        if (opts.protocolVersion === 5 && up !== undefined && !payload.toString().startsWith("{")) {
            got.push({
                device: String(up["tether-device"]),
                deviceId: String(up["tether-device-id"]),
                stream: Number(up["tether-stream"]),
                id: Number(up["tether-id"]),
                topic: topic.split("/").slice(2).join("/"),
                payload: payload.toString(),
                mqttTopic: topic,
            })
            return
        }
        const e = JSON.parse(payload.toString()) as Omit<Envelope, "mqttTopic">
        got.push({ ...e, payload: Buffer.from(e.payload, "base64").toString(), mqttTopic: topic })
    })
    await client.subscribeAsync(filter, { qos: 1 })
    return { client, got, close: () => client.endAsync() }
}

/**
 * What a subscriber saw is messages 1..n of one device stream in order, each new id the next
 * one; anything else is a duplicate of a message already seen, with the same stream, id and
 * payload. @returns the number of duplicates
 */
export function checkStream(got: readonly Envelope[], n: number, payloadOf: (id: number) => string): number {
    const seen = new Map<string, string>()
    let next = 1
    let dups = 0
    for (const e of got) {
        const k = `${e.stream}:${e.id}`
        const before = seen.get(k)
        if (before !== undefined) {
            assert.equal(e.payload, before, `the duplicate of ${k} carries the same payload`)
            dups++
            continue
        }
        assert.equal(e.id, next, `in order: message ${next} expected, got ${k} (after ${got.length} messages)`)
        assert.equal(e.payload, payloadOf(e.id))
        seen.set(k, e.payload)
        next++
    }
    assert.equal(next - 1, n, `every message arrived (${next - 1} of ${n})`)
    assert.equal(new Set(got.map(e => e.stream)).size, 1, "one device stream")
    return dups
}

export const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))
