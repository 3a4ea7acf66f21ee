// One gateway node on a store: the TCP server and the application layer on the store's registry,
// receiving state and outbox, kept in step with what other nodes and CLI processes change.
//
//   - revoked: a device revoked anywhere has its session here closed with CLOSE(REVOKED);
//   - keys: a ticket-key rotation or retirement anywhere is taken into the running key set
//     (TicketKeySet.install/retire: old keys keep opening their tickets);
//   - queued: a message queued to a device anywhere is sent if the device's session is here;
//   - claimed: one live session per device across the cluster: when another node records a
//     newer session of a device, the one here is closed with CLOSE(SUPERSEDED). The store's row
//     decides (the store orders every node's claims), not the order notifications arrive in;
//   - resync (the store's notifications may have been missed): revocations, keys and the live
//     view read again, and every session here sent what was queued for it meanwhile.
//
// Every node records its live sessions in the store (the live view `status` lists): claimed when
// a session becomes live, released when it ends, last activity written every ACTIVITY_MS.
import { startAppGateway, type AppGateway } from "./serve.js"
import { startMqttBridge, type MqttBridge } from "./mqtt.js"
import { composeSinks, type Sink } from "./sinks.js"
import type { MqttConfig } from "./mqtt-config.js"
import type { UpstreamConfig } from "./upstream.js"
import type { ServerPolicy } from "../policy.js"
import type { LiveSession, LogLine } from "../server.js"
import { StoreUnavailable, type GatewayStore } from "../store/types.js"
import type { TicketKeySet } from "../tickets.js"
import { Code } from "../wire.js"

/** How often a node writes its sessions' last activity, and re-reads the key ring as a safety net. */
export const ACTIVITY_MS = 5000

/** Options of startNode. */
export interface NodeOptions {
    readonly store: GatewayStore
    /** the node's name in the cluster (the live view's `node`), unique per node */
    readonly node: string
    readonly host?: string
    readonly port?: number
    readonly policy?: Partial<ServerPolicy>
    readonly config: UpstreamConfig
    readonly log?: (line: LogLine) => void
    readonly fetch?: typeof fetch
    /** seconds since the Unix epoch (tests) */
    readonly now?: () => number
    /** told when a device's session here becomes live (`up`) and when it ends (`down`) */
    readonly onSession?: { readonly up?: (s: LiveSession) => void; readonly down?: (s: LiveSession) => void }
    /** the MQTT bridge (PROTOCOL.md 12.3): the config file's section with the URL to use */
    readonly mqtt?: MqttConfig & { readonly url: string }
    /**
     * more durable sinks (app/sinks.ts: JSON lines, a webhook; PROTOCOL.md 12.4): a device's
     * PUBLISH is acknowledged once the bridge and every one of them took it
     */
    readonly sinks?: readonly Sink[]
}

/** A running node. */
export interface GatewayNode extends AppGateway {
    readonly node: string
    readonly ticketKeys: TicketKeySet
    /** Brings the running key set up to the store's (also done on every `keys` event). */
    syncKeys(): Promise<void>
    /** the MQTT bridge, when NodeOptions.mqtt was given */
    readonly mqtt?: MqttBridge
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

/**
 * Brings the running key set up to the stored one (PROTOCOL.md 6.1, 6.5): a key the store has
 * and the running set does not is a rotation of its kind (installed: the kind's previous key
 * retires at its lifetime, still opening its tickets); a key the running set holds and the store
 * does not was retired (dropped at once). A key whose bytes or kind differ under the same id is
 * logged as out of sync (it cannot happen with one ring per store).
 */
export function syncTicketKeys(live: TicketKeySet, stored: TicketKeySet, now: number, log: (l: LogLine) => void): void {
    const ts = () => new Date().toISOString()
    for (const k of stored.keys) {
        const held = live.keys.find(x => x.id === k.id)
        if (held !== undefined) {
            if (!held.key.equals(k.key) || held.kind !== k.kind)
                log({ ts: ts(), event: "ticket-key", outcome: "out-of-sync", keyId: k.id, detail: "restart the node" })
            continue
        }
        if (k.retireAt !== undefined) continue // an old key the running set already dropped
        try {
            live.install(k, now)
            log({ ts: ts(), event: "ticket-key", outcome: "rotated", keyId: k.id, kind: k.kind })
        } catch {
            log({ ts: ts(), event: "ticket-key", outcome: "out-of-sync", keyId: k.id, detail: "restart the node" })
        }
    }
    for (const k of [...live.keys])
        if (!stored.keys.some(x => x.id === k.id) && k.retireAt !== undefined) {
            live.retire(k.id)
            log({ ts: ts(), event: "ticket-key", outcome: "retired", keyId: k.id, kind: k.kind })
        }
    live.prune(now)
}

/** An error's class and code for a log line (never its message, which may quote a value). */
function errorDetail(err: unknown): string {
    const e = err as { name?: unknown; code?: unknown }
    const name = typeof e?.name === "string" ? e.name : "Error"
    return typeof e?.code === "string" ? `${name} ${e.code}` : name
}

/** Starts a node: loads the identity and key ring from the store, listens, follows the store. */
export async function startNode(opts: NodeOptions): Promise<GatewayNode> {
    const { store, node } = opts
    const log = opts.log ?? ((l: LogLine) => process.stdout.write(JSON.stringify(l) + "\n"))
    const ts = () => new Date().toISOString()
    const now = opts.now ?? nowSeconds
    const identity = await store.loadIdentity()
    const ticketKeys = await store.loadTicketKeys()
    // the rows of this node's previous run are stale: its sessions died with it
    await store.sessions.releaseNode(node)

    // per device, the live view's updates in the order the server made them
    const chains = new Map<string, Promise<void>>()
    const inOrder = (deviceId: string, fn: () => Promise<void>) => {
        const p = (chains.get(deviceId) ?? Promise.resolve()).then(fn).catch(err =>
            // an outage: the resync after it puts the live view right (reconcile)
            log({
                ts: ts(),
                event: "live-view",
                outcome: err instanceof StoreUnavailable ? "store-unavailable" : "error",
                detail: errorDetail(err),
            })
        )
        chains.set(deviceId, p)
        void p.then(() => {
            if (chains.get(deviceId) === p) chains.delete(deviceId)
        })
    }
    let gw: AppGateway | undefined
    // per device, the session id this node last wrote to the live view (its claim is done)
    const claims = new Map<string, string>()
    const onLive = (s: LiveSession) => {
        opts.onSession?.up?.(s)
        inOrder(s.deviceId, async () => {
            let prev
            try {
                prev = await store.sessions.claim({
                    deviceId: s.deviceId,
                    node,
                    sessionId: s.sessionId,
                    // the stores keep whole milliseconds; a server clock may be fractional
                    since: Math.floor(s.since),
                    remote: s.remote,
                    lastActivity: Math.floor(s.since),
                    generation: s.generation,
                    resumed: s.resumed,
                })
            } catch (err) {
                // unrecorded, the session could outlive a newer one on another node: it ends
                // (the device comes back once the store is)
                if (gw?.gateway.liveOf(s.deviceId)?.sessionId === s.sessionId) gw.gateway.closeSessionUnless(s.deviceId, "", Code.BUSY)
                throw err
            }
            claims.set(s.deviceId, s.sessionId)
            if (prev !== undefined && prev.node !== node)
                log({ ts: ts(), event: "session", outcome: "taken-over", deviceName: s.deviceName, from: prev.node })
        })
    }
    const onEnded = (s: LiveSession) => {
        opts.onSession?.down?.(s)
        inOrder(s.deviceId, async () => {
            if (claims.get(s.deviceId) === s.sessionId) claims.delete(s.deviceId)
            await store.sessions.release(s.deviceId, node, s.sessionId)
        })
    }
    /**
     * One live session per device across the cluster: the device's session here stays only if
     * the store's row is still its own. A session whose claim is not written yet is the newest
     * (its claim replaces whatever the row holds), so it stays. Runs after this node's pending
     * updates of the device (inOrder); the store orders the claims of all nodes.
     */
    const checkClaim = (deviceId: string) =>
        inOrder(deviceId, async () => {
            const here = gw?.gateway.liveOf(deviceId)
            if (here === undefined || claims.get(deviceId) !== here.sessionId) return
            const row = await store.sessions.get(deviceId)
            if (row?.node === node && row.sessionId === here.sessionId) return
            if (gw?.gateway.liveOf(deviceId)?.sessionId === here.sessionId) gw.gateway.closeSessionUnless(deviceId, "", Code.SUPERSEDED)
        })

    // device data goes to the broker before it is acknowledged; commands come into the outbox
    const bridge =
        opts.mqtt === undefined
            ? undefined
            : startMqttBridge({ config: opts.mqtt, store, node, log, onQueued: deviceId => gw?.app.wake(deviceId) })
    let g: AppGateway
    try {
        g = await startAppGateway({
            host: opts.host,
            port: opts.port,
            registry: store.registry,
            state: { identity, ticketKeys },
            policy: opts.policy,
            log,
            now: opts.now,
            onLive,
            onEnded,
            app: {
                receiving: store.receiving,
                outbox: store.outbox,
                config: opts.config,
                fetch: opts.fetch,
                // a message queued here may be for a device whose session is on another node
                onQueued: deviceId => void store.announce("queued", deviceId).catch(() => {}),
                sink: composeSinks([bridge?.sink, ...(opts.sinks ?? [])]),
            },
        })
    } catch (err) {
        await bridge?.close()
        throw err
    }
    gw = g

    let syncing: Promise<void> | undefined
    const syncKeys = (): Promise<void> =>
        (syncing ??= (async () => {
            try {
                syncTicketKeys(ticketKeys, await store.loadTicketKeys(), now(), log)
            } catch (err) {
                log({ ts: ts(), event: "ticket-key", outcome: "sync-failed", detail: (err as Error).name })
            } finally {
                syncing = undefined
            }
        })())
    const closeRevoked = async () => {
        try {
            for (const d of await store.registry.listDevices()) if (d.revoked) g.gateway.closeDevice(d.id, Code.REVOKED)
        } catch (err) {
            log({ ts: ts(), event: "watch", outcome: "error", detail: errorDetail(err) })
        }
    }
    // After notifications may have been missed, or live-view writes failed: a session here that
    // another node claimed later is closed; a row of this node's whose session ended is released.
    const reconcile = async () => {
        try {
            const rows = await store.sessions.list()
            for (const r of rows)
                if (r.node === node && g.gateway.liveOf(r.deviceId)?.sessionId !== r.sessionId)
                    inOrder(r.deviceId, () => store.sessions.release(r.deviceId, node, r.sessionId))
            for (const l of g.gateway.live()) checkClaim(l.session.deviceId)
        } catch (err) {
            log({ ts: ts(), event: "watch", outcome: "error", detail: errorDetail(err) })
        }
    }
    const handlers = {
        revoked: (id: string) => {
            // the name first: after the close the live table no longer has it
            const deviceName = gw?.gateway.liveOf(id)?.deviceName
            const n = gw?.gateway.closeDevice(id, Code.REVOKED) ?? 0
            if (n > 0)
                log({
                    ts: ts(),
                    event: "session",
                    outcome: "revoked",
                    deviceId: id,
                    ...(deviceName !== undefined ? { deviceName } : {}),
                    closed: n,
                })
        },
        keys: () => void syncKeys(),
        queued: (id: string) => gw?.app.wake(id),
        // a session of the device was recorded somewhere: the row decides which one stays
        claimed: (id: string) => checkClaim(id),
        resync: () => {
            void closeRevoked()
            void syncKeys()
            void reconcile()
            // messages queued while the notifications were lost go to the sessions here
            for (const l of g.gateway.live()) g.app.wake(l.session.deviceId)
        },
        unavailable: (down: boolean) => log({ ts: ts(), event: "store", outcome: down ? "unavailable" : "available", store: store.kind }),
    }
    store.events.on("revoked", handlers.revoked)
    store.events.on("keys", handlers.keys)
    store.events.on("queued", handlers.queued)
    store.events.on("claimed", handlers.claimed)
    store.events.on("resync", handlers.resync)
    store.events.on("unavailable", handlers.unavailable)
    await store.watch()
    await closeRevoked()

    const activity = setInterval(() => {
        const m = new Map<string, number>()
        for (const l of g.gateway.live()) m.set(l.session.deviceId, Math.round(l.lastActivityMs))
        store.sessions.touch(node, m).catch(() => {})
        void syncKeys()
    }, ACTIVITY_MS)
    activity.unref()

    return {
        ...g,
        node,
        ticketKeys,
        syncKeys,
        mqtt: bridge,
        async close() {
            clearInterval(activity)
            await g.close()
            // after the app's chains: a PUBLISH waiting for its PUBACK was answered or timed out
            await bridge?.close()
            await Promise.allSettled([...chains.values()])
            store.events.off("revoked", handlers.revoked)
            store.events.off("keys", handlers.keys)
            store.events.off("queued", handlers.queued)
            store.events.off("claimed", handlers.claimed)
            store.events.off("resync", handlers.resync)
            store.events.off("unavailable", handlers.unavailable)
            await store.sessions.releaseNode(node).catch(() => {})
        },
    }
}
