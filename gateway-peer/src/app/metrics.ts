// Prometheus metrics of a node (`serve --metrics [HOST:]PORT`, GET /metrics): counted from the
// node's own log lines, the one record of what happened (so a metric and the log never disagree),
// plus gauges read at each scrape. No label carries a device name, an address or a secret: the
// series stay bounded however many devices and sources there are.
//
//   tether_handshakes_total{kind}              full handshakes and resumptions answered
//   tether_sessions_confirmed_total            sessions confirmed (a TICKET issued)
//   tether_handshake_seconds{kind}             from the first frame to the answer (histogram)
//   tether_early_data_total{result}            accepted, replay (an older generation), stale
//   tether_rejects_total{code}                 REJECTs by code (BUSY: per-source and caps too)
//   tether_closes_total{code}                  sessions closed by the gateway, by code
//   tether_app_messages_total{kind}            device messages delivered: publish, request
//   tether_store_available                     1, or 0 while the store is unreachable
//   tether_live_sessions, tether_connections   now
//   tether_outbox_messages                     unacknowledged gateway messages in the store
import http from "node:http"
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client"
import type { Gateway, LogLine } from "../server.js"
import type { GatewayStore } from "../store/types.js"

/** The metrics of one node, fed with its log lines. */
export class NodeMetrics {
    readonly registry = new Registry()
    readonly #handshakes
    readonly #confirmed
    readonly #latency
    readonly #early
    readonly #rejects
    readonly #closes
    readonly #app
    readonly #storeUp
    #gateway: Gateway | undefined
    #store: GatewayStore | undefined

    constructor() {
        const registers = [this.registry]
        this.#handshakes = new Counter({
            name: "tether_handshakes_total",
            help: "handshakes answered, by kind",
            labelNames: ["kind"],
            registers,
        })
        this.#confirmed = new Counter({ name: "tether_sessions_confirmed_total", help: "sessions confirmed (a TICKET issued)", registers })
        this.#latency = new Histogram({
            name: "tether_handshake_seconds",
            help: "from the connection's first frame to the gateway's answer, by kind",
            labelNames: ["kind"],
            buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
            registers,
        })
        this.#early = new Counter({
            name: "tether_early_data_total",
            help: "resumption early data: accepted, replay (an older generation: refused), stale (not fresh: refused)",
            labelNames: ["result"],
            registers,
        })
        this.#rejects = new Counter({ name: "tether_rejects_total", help: "REJECTs sent, by code", labelNames: ["code"], registers })
        this.#closes = new Counter({
            name: "tether_closes_total",
            help: "sessions closed by the gateway, by code",
            labelNames: ["code"],
            registers,
        })
        this.#app = new Counter({
            name: "tether_app_messages_total",
            help: "device messages delivered, by kind",
            labelNames: ["kind"],
            registers,
        })
        this.#storeUp = new Gauge({
            name: "tether_store_available",
            help: "1 while the store answers, 0 while it is unreachable",
            registers,
        })
        this.#storeUp.set(1)
        const gw = () => this.#gateway
        new Gauge({
            name: "tether_live_sessions",
            help: "live sessions on this node",
            registers,
            collect() {
                this.set(gw()?.stats.sessions ?? 0)
            },
        })
        new Gauge({
            name: "tether_connections",
            help: "open connections on this node (handshaking and live)",
            registers,
            collect() {
                this.set(gw()?.stats.connections ?? 0)
            },
        })
        const store = () => this.#store
        new Gauge({
            name: "tether_outbox_messages",
            help: "unacknowledged gateway messages in the store (every device, every node)",
            registers,
            async collect() {
                const s = store()
                if (s !== undefined) this.set(await s.outbox.total().catch(() => Number.NaN))
            },
        })
        collectDefaultMetrics({ register: this.registry, prefix: "tether_process_" })
    }

    /** The gauges read from the running node and its store. */
    bind(gateway: Gateway, store: GatewayStore): void {
        this.#gateway = gateway
        this.#store = store
    }

    /** Counts one log line of the node. */
    observe(l: LogLine): void {
        const outcome = l["outcome"]
        if (l["event"] === "connection") {
            const seconds = typeof l["ms"] === "number" ? l["ms"] / 1000 : undefined
            if (outcome === "full-handshake" || outcome === "resumed") {
                const kind = outcome === "resumed" ? "resumption" : "full"
                this.#handshakes.inc({ kind })
                if (seconds !== undefined) this.#latency.observe({ kind }, seconds)
                if (outcome === "resumed") {
                    if (l["earlyAccepted"] === true) this.#early.inc({ result: "accepted" })
                    else if (l["detail"] === "early data: an older generation") this.#early.inc({ result: "replay" })
                    else if (l["detail"] === "early data: not fresh") this.#early.inc({ result: "stale" })
                }
                if (outcome === "resumed" && l["earlyAccepted"] === true) this.#confirmed.inc()
            } else if (outcome === "confirmed") this.#confirmed.inc()
            else if (outcome === "reject" && typeof l["code"] === "string") this.#rejects.inc({ code: l["code"] })
            else if (typeof l["code"] === "string" && outcome !== "closed-by-peer") this.#closes.inc({ code: l["code"] })
        } else if (l["event"] === "app" && (outcome === "publish" || outcome === "request")) this.#app.inc({ kind: outcome })
        else if (l["event"] === "store" && (outcome === "unavailable" || outcome === "available"))
            this.#storeUp.set(outcome === "available" ? 1 : 0)
    }

    /** The text a scrape gets. */
    text(): Promise<string> {
        return this.registry.metrics()
    }

    /** The registry's values as JSON (a worker's answer to the primary, which sums the workers'). */
    json(): ReturnType<Registry["getMetricsAsJSON"]> {
        return this.registry.getMetricsAsJSON()
    }

    /**
     * Serves GET /metrics on host:port (0: a free port).
     * @returns the server and its port
     */
    listen(host: string, port: number): Promise<{ server: http.Server; port: number }> {
        return serveMetricsText(host, port, () => this.text(), this.registry.contentType)
    }
}

/**
 * Serves GET /metrics on host:port (0: a free port) with the text `text()` resolves to; 404 for
 * anything else, 500 when `text()` fails.
 * @returns the server and its port
 */
export async function serveMetricsText(
    host: string,
    port: number,
    text: () => Promise<string>,
    contentType: string
): Promise<{ server: http.Server; port: number }> {
    const server = http.createServer((req, res) => {
        if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
            res.writeHead(404).end()
            return
        }
        text().then(
            body => res.writeHead(200, { "content-type": contentType }).end(body),
            () => res.writeHead(500).end()
        )
    })
    await new Promise<void>((ok, fail) => {
        server.once("error", fail)
        server.listen(port, host, () => ok())
    })
    const a = server.address()
    return { server, port: typeof a === "object" && a !== null ? a.port : port }
}
