// The gateway as a library: what `tether-gateway serve` runs, for a program that embeds it
// (README "Use it as a library"; devs/examples/library.mjs runs the example there).
//
//     // createGateway: the package's entry point, tether-gateway
//     const gw = await createGateway({ store: { stateDir: ".tether" }, port: 4433 })
//     gw.on("publish", m => console.log(m.device, m.topic, m.payload.toString()))
//     gw.on("session", s => console.log(s.device, s.state, s.resumed ? "resumed" : "full handshake"))
//     await gw.send("my-counter", "cmd/reset", Buffer.from("now"))
//     await gw.close()
//
// It opens the store (the state directory of a one-node gateway, or a cluster's PostgreSQL
// store), starts a node on it (startNode: revocations close the device's session, ticket-key
// rotations are taken into the running key set, messages queued elsewhere are sent, the live
// view is kept), with the MQTT bridge and the durable sinks when given, and turns the node's
// application events into this object's events. Secrets never appear in its events or log lines.
import { EventEmitter } from "node:events"
import { hostname } from "node:os"
import type { ServerPolicy } from "../policy.js"
import type { LiveSession, LogLine } from "../server.js"
import { openStore, type StoreSpec } from "../store/open.js"
import type { GatewayStore } from "../store/types.js"
import type { AckEvent, PublishEvent } from "./gateway-app.js"
import type { MqttBridge } from "./mqtt.js"
import { checkMqttUrl, parseMqttConfig, type MqttConfig } from "./mqtt-config.js"
import { startNode, type GatewayNode } from "./node.js"
import type { Sink } from "./sinks.js"
import { ConfigError, parseConfig } from "./upstream.js"

/** A device's session came up on this node, or ended. */
export interface SessionEvent {
    readonly state: "up" | "down"
    readonly device: string
    readonly deviceId: string
    readonly node: string
    readonly remote: string
    /** a resumption (false: a full handshake) */
    readonly resumed: boolean
    /** the ticket generation the session was confirmed with */
    readonly generation: number
}

/** The events of a TetherGateway. */
export interface GatewayEvents {
    /** a device's PUBLISH, delivered once and in order (PROTOCOL.md 12.1) */
    publish: [PublishEvent]
    /** a device acknowledged the gateway's messages up to `id` */
    acked: [AckEvent]
    session: [SessionEvent]
    /** every log line the node writes (JSON-safe; never a key, ticket or payload) */
    log: [LogLine]
}

/** Options of createGateway. */
export interface CreateGatewayOptions {
    /** where the state is: `{ stateDir }` (one node, SQLite) or `{ url: "postgres://…", kekFile }` (a cluster) */
    readonly store: Omit<StoreSpec, "stateDir"> & { readonly stateDir?: string }
    /** this node's name in the cluster's live view (default $TETHER_NODE, else the host name) */
    readonly node?: string
    /** the listening address (default 127.0.0.1) */
    readonly host?: string
    /** the port (default 4433; 0 picks a free one, see TetherGateway.port) */
    readonly port?: number
    /** the upstream routes, as in serve's config file ({ name: { url, method, timeoutMs, devices } }) */
    readonly routes?: Record<string, unknown>
    readonly policy?: Partial<ServerPolicy>
    /** also write the log lines as JSON on stdout (default false: only the `log` event) */
    readonly stdoutLog?: boolean
    /** the fetch used for upstream routes (tests) */
    readonly fetch?: typeof fetch
    /**
     * the MQTT bridge (PROTOCOL.md 12.3): `{ url: "mqtt://127.0.0.1:1883" }` and any key of serve's
     * "mqtt" section (topicTemplate, commandTemplate, qos, protocolVersion, envelope, clientId,
     * shareGroup, publishTimeoutMs, usernameFile, passwordFile, ca, cert, key)
     */
    readonly mqtt?: { readonly url: string } & Partial<Omit<MqttConfig, "url">>
    /**
     * durable sinks (PROTOCOL.md 12.4): webhookSink(...), jsonLinesSink(...), fileSink(...) or a
     * function of your own; a device's PUBLISH is acknowledged once the bridge and all of them
     * took it (a rejection: the device resends later)
     */
    readonly sinks?: readonly Sink[]
}

/** A running gateway node. */
export class TetherGateway extends EventEmitter<GatewayEvents> {
    #node: GatewayNode | undefined
    #closed = false

    constructor(
        readonly store: GatewayStore,
        readonly node: string
    ) {
        super()
    }

    /** @internal */
    attach(n: GatewayNode): void {
        this.#node = n
        n.app.events.on("publish", m => this.emit("publish", m))
        n.app.events.on("acked", a => this.emit("acked", a))
    }

    /** The port the gateway listens on. */
    get port(): number {
        return this.#running().gateway.port
    }

    /** The MQTT bridge, when CreateGatewayOptions.mqtt was given (`connected`, `ready()`). */
    get mqtt(): MqttBridge | undefined {
        return this.#running().mqtt
    }

    /** The sessions on this node now. */
    sessions(): LiveSession[] {
        return this.#running()
            .gateway.live()
            .map(l => l.session)
    }

    /**
     * Queues a MESSAGE to a device (stored before this resolves; sent now if its session is
     * here, otherwise by the node it connects to next; kept until acknowledged).
     * @returns the message's id in the gateway's stream to the device
     * @throws RangeError for a topic or payload that does not fit, Error for an unknown device or a full queue
     */
    send(device: string, topic: string, payload: Buffer | string): Promise<number> {
        return this.#running().app.sendMessage(device, topic, typeof payload === "string" ? Buffer.from(payload) : payload)
    }

    /** CLOSE(SHUTDOWN) to every session, waits for upstream calls in flight, closes the store. */
    async close(): Promise<void> {
        if (this.#closed) return
        this.#closed = true
        try {
            await this.#node?.close()
        } finally {
            await this.store.close()
        }
    }

    #running(): GatewayNode {
        if (this.#node === undefined || this.#closed) throw new Error("gateway: not running (closed)")
        return this.#node
    }
}

/**
 * Opens the store and starts a gateway node on it.
 * @throws StateError / RegistryOpenError / KekError for a missing or unreadable state,
 *     ConfigError for bad routes, StoreUnavailable when PostgreSQL cannot be reached
 */
export async function createGateway(opts: CreateGatewayOptions): Promise<TetherGateway> {
    const config = parseConfig({ routes: opts.routes ?? {} })
    let mqtt: (MqttConfig & { url: string }) | undefined
    if (opts.mqtt !== undefined) {
        const { url, ...rest } = opts.mqtt
        const bad = checkMqttUrl(url)
        if (bad !== undefined) throw new ConfigError(`mqtt.url ${bad}`)
        try {
            mqtt = { ...parseMqttConfig(rest), url }
        } catch (err) {
            throw new ConfigError((err as Error).message)
        }
    }
    const store = await openStore({ stateDir: opts.store.stateDir ?? ".tether", ...opts.store })
    const node = opts.node ?? (process.env["TETHER_NODE"] || hostname())
    const gw = new TetherGateway(store, node)
    const session = (state: "up" | "down") => (s: LiveSession) =>
        gw.emit("session", {
            state,
            device: s.deviceName,
            deviceId: s.deviceId,
            node,
            remote: s.remote,
            resumed: s.resumed,
            generation: s.generation,
        })
    try {
        gw.attach(
            await startNode({
                store,
                node,
                host: opts.host,
                port: opts.port ?? 4433,
                policy: opts.policy,
                config,
                fetch: opts.fetch,
                mqtt,
                sinks: opts.sinks,
                onSession: { up: session("up"), down: session("down") },
                log: line => {
                    if (opts.stdoutLog === true) process.stdout.write(JSON.stringify(line) + "\n")
                    gw.emit("log", line)
                },
            })
        )
    } catch (err) {
        await store.close()
        throw err
    }
    return gw
}
