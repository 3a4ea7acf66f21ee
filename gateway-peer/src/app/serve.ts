// Wires the application layer to the TCP server: startGateway's onData feeds GatewayApp, and
// the app answers through the server's send/closeDevice for that device.
import type { DeviceRecord } from "../registry/registry.js"
import { startGateway, type Gateway, type GatewayOptions } from "../server.js"
import { GatewayApp, type AppLink, type GatewayAppOptions } from "./gateway-app.js"

/** A running gateway with its application layer. */
export interface AppGateway {
    readonly gateway: Gateway
    readonly app: GatewayApp
    /** CLOSE(SHUTDOWN) to every session, then waits for upstream calls in flight. */
    close(): Promise<void>
}

/** Starts a gateway whose DATA records go to a GatewayApp. */
export async function startAppGateway(
    opts: Omit<GatewayOptions, "onData"> & { app: Omit<GatewayAppOptions, "lookup" | "log"> }
): Promise<AppGateway> {
    const log = opts.log ?? (l => process.stdout.write(JSON.stringify(l) + "\n"))
    const app = new GatewayApp({
        ...opts.app,
        lookup: async name => {
            const d = await opts.registry.getDeviceByName(name)
            return d && { id: d.id, name: d.name }
        },
        log: line => log({ ts: new Date().toISOString(), ...(line as Record<string, string | number | boolean | undefined>) }),
    })
    let gateway: Gateway | undefined
    // One AppLink per session: the app keys what is per session (STREAM seen, closed) by its
    // link, so two sessions of a device must never share one. The server passes with each
    // DATA the DeviceRecord its connection's handshake read from the registry and keeps for
    // the connection's life: one object per connection, so it names the session, and the
    // WeakMap lets the link go with the connection. The server's send and closeDevice reach
    // every live session of the device (it has no per-connection handle for the app); with
    // one live session per device that is exactly this session.
    const links = new WeakMap<DeviceRecord, AppLink>()
    const linkFor = (device: DeviceRecord): AppLink => {
        let l = links.get(device)
        if (l === undefined) {
            const id = device.id
            l = {
                send: content => void gateway?.send(id, content),
                close: code => void gateway?.closeDevice(id, code),
            }
            links.set(device, l)
        }
        return l
    }
    gateway = await startGateway({
        ...opts,
        log,
        onData: (device, content) => app.data({ id: device.id, name: device.name }, content, linkFor(device)),
    })
    const g = gateway
    return {
        gateway: g,
        app,
        async close() {
            await g.close()
            await app.idle()
        },
    }
}
