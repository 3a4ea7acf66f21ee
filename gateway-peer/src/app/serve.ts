// Wires the application layer to the TCP server: startGateway's onData feeds GatewayApp, and
// the app answers through the link of the session each DATA came on.
import { startGateway, type Gateway, type GatewayOptions } from "../server.js"
import { GatewayApp, type GatewayAppOptions } from "./gateway-app.js"

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
    // answers go to the session the DATA came on: the device's newest session gets nothing
    // before the device's STREAM has opened it there (PROTOCOL.md 12.1)
    const gateway = await startGateway({
        ...opts,
        log,
        onData: (device, content, session, early) => app.data({ id: device.id, name: device.name }, content, session, early),
    })
    return {
        gateway,
        app,
        async close() {
            await gateway.close()
            await app.idle()
        },
    }
}
