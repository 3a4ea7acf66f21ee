// The MQTT bridge (PROTOCOL.md 12.3): a gateway node's one client of an MQTT broker.
//
//   - device to broker: GatewayApp's sink. Each new PUBLISH of a device is published at
//     topicFor(topicTemplate) with QoS 1 (or 2) and the device's stream id and message id (MQTT 5
//     user properties and/or the JSON envelope); the app stores the receiving state and
//     acknowledges the device only once the broker acknowledged every message of the record;
//   - broker to device: a subscription to the command template ({device} "+", {topic} "#", a
//     shared subscription in a cluster). Each message is stored in the device's durable outbox
//     and announced before the broker gets its PUBACK; one the gateway cannot take (no such
//     device, revoked, a full queue, a topic or payload that does not fit) is logged and
//     acknowledged (MQTT 5: with a failure reason code) and dropped. The store failing is not
//     acknowledged: the connection is dropped and the broker redelivers on the next one.
//
// The broker's session is persistent (clean: false, MQTT 5 session expiry one day) under a
// client id fixed per node, so commands published while the gateway is away wait at the broker.
// Reconnection is mqtt.js's, its period doubled per failure up to MAX_RECONNECT_MS; one log line
// per change of state, never one per retry. Never logs a payload, a password or a URL's password.
import { readFileSync } from "node:fs"
import { connect, type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt"
import { SinkUnavailable, checkMessage, DEFAULT_MAX_QUEUE, type SinkMessage } from "./gateway-app.js"
import { commandFilter, parseCommand, redactMqttUrl, topicFor, type MqttConfig } from "./mqtt-config.js"
import { QueueFull, type GatewayStore } from "../store/types.js"
import type { LogLine } from "../server.js"

/** The first reconnection delay, and the longest. */
export const RECONNECT_MS = 1000
export const MAX_RECONNECT_MS = 30000
/** MQTT 5 session expiry (seconds): how long the broker keeps commands for a node that is away. */
const SESSION_EXPIRY_S = 86400

/** PUBACK reason codes (MQTT 5; MQTT 3.1.1 has none: the message is acknowledged). */
const RC = { topicInvalid: 0x90, notAuthorized: 0x87, quota: 0x97, payloadInvalid: 0x99 } as const

/** Options of startMqttBridge. */
export interface MqttBridgeOptions {
    /** the section, with `url` set */
    readonly config: MqttConfig & { readonly url: string }
    readonly store: Pick<GatewayStore, "registry" | "outbox" | "announce" | "kind">
    /** the node's name: the default client id is tether-<node> */
    readonly node: string
    readonly log: (l: LogLine) => void
    /** most unacknowledged gateway messages per device (the app's maxQueue) */
    readonly maxQueue?: number
    /** a message was queued to this device (the node's own app sends it if the session is here) */
    readonly onQueued?: (deviceId: string) => void
}

/** A running bridge. */
export interface MqttBridge {
    /** GatewayApp's sink: resolves once the broker acknowledged every message. @throws SinkUnavailable */
    sink(batch: readonly SinkMessage[]): Promise<void>
    /** the broker connection is up */
    readonly connected: boolean
    /** Resolves at the next successful connection (at once if connected). */
    ready(): Promise<void>
    /** Ends the connection (in-flight publishes get a moment to finish). */
    close(): Promise<void>
}

/** A file of the "mqtt" section cannot be read (the message names the path, never contents). */
export class MqttSetupError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "MqttSetupError"
    }
}

function readSecret(path: string, what: string): string {
    try {
        return readFileSync(path, "utf8").replace(/\r?\n$/, "")
    } catch (err) {
        // the path may be logged, never the contents
        throw new MqttSetupError(`mqtt: cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`)
    }
}

function readFile(path: string, what: string): Buffer {
    try {
        return readFileSync(path)
    } catch (err) {
        throw new MqttSetupError(`mqtt: cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`)
    }
}

/** What a log line may say of an error: its code or class, never its message. */
function errorDetail(err: unknown): string {
    const e = err as { name?: unknown; code?: unknown }
    if (typeof e?.code === "string" || typeof e?.code === "number") return `${typeof e.name === "string" ? e.name : "Error"} ${e.code}`
    return typeof e?.name === "string" ? e.name : typeof err
}

/**
 * The payload and properties of one device message on the broker. "json": a UTF-8 JSON object
 * {"device","deviceId","stream","id","topic","payload" (base64)}; "raw": the payload as is.
 * MQTT 5 adds the user properties tether-device, tether-device-id, tether-stream, tether-id.
 */
export function mqttMessage(
    c: Pick<MqttConfig, "envelope" | "protocolVersion">,
    m: SinkMessage
): { payload: Buffer; opts: IClientPublishOptions } {
    const payload =
        c.envelope === "json"
            ? Buffer.from(
                  JSON.stringify({
                      device: m.device,
                      deviceId: m.deviceId,
                      stream: m.stream,
                      id: m.id,
                      topic: m.topic,
                      payload: m.payload.toString("base64"),
                  })
              )
            : m.payload
    const opts: IClientPublishOptions = {}
    if (c.protocolVersion === 5)
        opts.properties = {
            userProperties: {
                "tether-device": m.device,
                "tether-device-id": m.deviceId,
                "tether-stream": String(m.stream),
                "tether-id": String(m.id),
            },
            ...(c.envelope === "json" ? { contentType: "application/json", payloadFormatIndicator: true } : {}),
        }
    return { payload, opts }
}

/** Connects to the broker (in the background: an unreachable broker does not stop the node). */
export function startMqttBridge(opts: MqttBridgeOptions): MqttBridge {
    const c = opts.config
    const log = (l: Record<string, string | number | boolean | undefined>) =>
        opts.log({ ts: new Date().toISOString(), event: "mqtt", ...l })
    const broker = redactMqttUrl(c.url)
    const maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE
    const shareGroup = c.shareGroup !== undefined ? c.shareGroup : opts.store.kind === "postgres" ? "tether" : null
    const filter = commandFilter(c.commandTemplate, shareGroup)
    const clientOpts: IClientOptions = {
        protocolVersion: c.protocolVersion,
        clientId: c.clientId ?? `tether-${opts.node}`,
        clean: false,
        reconnectPeriod: RECONNECT_MS,
        connectTimeout: 10000,
        keepalive: 30,
        resubscribe: true,
        ...(c.protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
        ...(c.usernameFile !== undefined ? { username: readSecret(c.usernameFile, "username") } : {}),
        ...(c.passwordFile !== undefined ? { password: readSecret(c.passwordFile, "password") } : {}),
        ...(c.ca !== undefined ? { ca: readFile(c.ca, "ca") } : {}),
        ...(c.cert !== undefined ? { cert: readFile(c.cert, "cert") } : {}),
        ...(c.key !== undefined ? { key: readFile(c.key, "key") } : {}),
        // MQTT 5: the PUBACK carries a reason code (mqtt.js calls this for version 5 only)
        ...(c.protocolVersion === 5 ? { customHandleAcks: (topic, payload, _packet, done) => onCommand(topic, payload, done) } : {}),
    }

    /** a command could not be stored on this connection: the rest of it is not taken either (order) */
    let broken = false
    let state: "connecting" | "connected" | "down" = "connecting"
    let errorLogged = false
    let closing = false
    let waiters: (() => void)[] = []

    const client: MqttClient = connect(c.url, clientOpts)
    // MQTT 3.1.1: mqtt.js sends the PUBACK once this calls back without an error
    if (c.protocolVersion === 4)
        client.handleMessage = (packet, callback) => {
            if (packet.cmd !== "publish") return callback()
            onCommand(packet.topic, typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload, r =>
                typeof r === "number" ? callback() : callback(r)
            )
        }

    client.on("connect", connack => {
        broken = false
        errorLogged = false
        client.options.reconnectPeriod = RECONNECT_MS
        state = "connected"
        log({ outcome: "connected", broker, sessionPresent: connack.sessionPresent, subscription: filter })
        for (const w of waiters.splice(0)) w()
        // a session the broker kept has the subscription; a new one needs it (resubscribe: true
        // renews it after a reconnection within this process)
        if (!connack.sessionPresent)
            // QoS 1 whatever `qos` says for publishing: with QoS 2 the broker counts a message
            // delivered at PUBREC, and mqtt.js (3.1.1) hands it over only at PUBREL, after that
            client.subscribe(filter, { qos: 1 }, (err, granted) => {
                if (err !== null && err !== undefined) log({ outcome: "subscribe-failed", subscription: filter, detail: errorDetail(err) })
                else if (granted?.some(g => g.qos > 2)) log({ outcome: "subscribe-refused", subscription: filter })
            })
    })
    client.on("close", () => {
        if (closing) return
        if (state === "connected") log({ outcome: "disconnected", broker, retryMs: client.options.reconnectPeriod })
        else if (state === "connecting") log({ outcome: "unreachable", broker, retryMs: client.options.reconnectPeriod })
        state = "down"
    })
    client.on("reconnect", () => {
        // backoff: each failed attempt doubles the delay before the next one
        client.options.reconnectPeriod = Math.min(MAX_RECONNECT_MS, (client.options.reconnectPeriod ?? RECONNECT_MS) * 2)
    })
    client.on("error", err => {
        if (errorLogged) return
        errorLogged = true
        log({ outcome: "error", broker, detail: errorDetail(err) })
    })

    /** Stores a command in the device's outbox. @returns the PUBACK reason code; throws if not stored */
    const take = async (topic: string, payload: Buffer): Promise<number> => {
        const cmd = parseCommand(c.commandTemplate, topic)
        const drop = (reason: string, code: number, extra: Record<string, string | number> = {}) => {
            log({ outcome: "command-dropped", reason, device: cmd?.device, bytes: payload.length, ...extra })
            return code
        }
        if (cmd === undefined) return drop("topic", RC.topicInvalid)
        try {
            checkMessage("mqtt", cmd.topic, payload)
        } catch {
            return drop("too-long", Buffer.byteLength(cmd.topic) > 0 ? RC.payloadInvalid : RC.topicInvalid, {
                topicBytes: Buffer.byteLength(cmd.topic),
            })
        }
        const device = await opts.store.registry.getDeviceByName(cmd.device)
        if (device === undefined) return drop("unknown-device", RC.topicInvalid)
        if (device.revoked) return drop("revoked", RC.notAuthorized)
        let id: number
        try {
            id = (
                await opts.store.outbox.enqueue(device.id, { kind: "message", topic: cmd.topic, payload: Buffer.from(payload) }, maxQueue)
            ).id
        } catch (err) {
            if (err instanceof QueueFull) return drop("queue-full", RC.quota)
            throw err
        }
        log({ outcome: "command-queued", device: cmd.device, id, topic: cmd.topic, bytes: payload.length })
        opts.onQueued?.(device.id)
        await opts.store.announce("queued", device.id).catch(() => {}) // stored: the resync after an outage sends it
        return 0
    }

    // mqtt.js takes the next packet only after `done` (or handleMessage's callback): commands are stored one at a time, in order
    const onCommand = (topic: string, payload: Buffer, done: (err: Error | number, code?: number) => void) => {
        if (broken) {
            done(new Error("mqtt: a command before this one was not stored"))
            return
        }
        take(topic, payload).then(
            code => done(code),
            err => {
                // not acknowledged: the broker redelivers it (and what follows) on the next connection
                broken = true
                log({ outcome: "command-not-stored", detail: errorDetail(err) })
                done(new Error("mqtt: command not stored"))
                client.stream?.destroy()
            }
        )
    }

    const bridge: MqttBridge = {
        get connected() {
            return client.connected
        },
        ready() {
            if (client.connected) return Promise.resolve()
            return new Promise(r => waiters.push(r))
        },
        async sink(batch) {
            // offline: fail now rather than queue (the device keeps the messages)
            if (!client.connected) throw new SinkUnavailable("broker not connected")
            const all = Promise.all(
                batch.map(m => {
                    const { payload, opts: o } = mqttMessage(c, m)
                    return client.publishAsync(topicFor(c.topicTemplate, m.device, m.topic), payload, { ...o, qos: c.qos })
                })
            )
            let timer: NodeJS.Timeout | undefined
            const timeout = new Promise<never>((_, reject) => {
                timer = setTimeout(() => reject(new SinkUnavailable("broker did not acknowledge in time")), c.publishTimeoutMs)
            })
            all.catch(() => {}) // after a timeout nobody awaits it
            try {
                await Promise.race([all, timeout])
            } catch (err) {
                throw err instanceof SinkUnavailable ? err : new SinkUnavailable(errorDetail(err))
            } finally {
                clearTimeout(timer)
            }
        },
        async close() {
            closing = true
            for (const w of waiters.splice(0)) w()
            waiters = []
            const forced = setTimeout(() => client.end(true), 2000)
            try {
                await client.endAsync()
            } finally {
                clearTimeout(forced)
            }
            log({ outcome: "closed", broker })
        },
    }
    return bridge
}
