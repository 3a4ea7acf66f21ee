// The Tether gateway for the TLS comparison, loaded by server-proc.mjs as kind "tether" (in a
// child process of its own, so its CPU time is the gateway's alone): the real startGateway
// with the identity and ticket keys of a state directory (loadState) and a memory registry
// holding the devices the parent paired (tether-peers.mjs makePairings), so the parent's
// devices, their pseudonyms and their out-of-band tickets are known here.
//
// Application data goes through the DATA path with no application layer: the content of every
// DATA record reaches onData as is; a content ending in "!" is answered with a DATA record
// "!" to that device (the probe of measure.mjs), exactly like tls-server.mjs answers a
// trailing "!". The connection log is off (TLS logs nothing either).
//
// config.registry "sqlite" puts the devices in a SQLite registry (a file in the state
// directory, PSKs sealed under a KEK: what `serve` uses) instead of the memory one;
// config.stubX25519 memoizes the gateway's X25519 (x25519-hook.mjs, the perf group's floor).
import { register } from "node:module"
import { join } from "node:path"

/**
 * @param config.stateDir a state directory made by initState (identity and ticket keys)
 * @param config.records device records as the registry holds them, each Buffer as { hex }
 * @param config.policy server policy overrides
 */
export async function startServer({ stateDir, records, policy, registry: kind, stubX25519 }) {
    // the stubbed-crypto floor: X25519 memoized by a loader hook in this process only (never in
    // src/, never reachable from serve), registered before the gateway's modules are loaded
    if (stubX25519) register("./x25519-hook.mjs", import.meta.url)
    const { loadState, MemoryRegistry, SqliteRegistry, createKekFile, startGateway } = await import("tether-gateway")
    const state = loadState(stateDir)
    // "sqlite": the registry `serve` uses, a SQLite file with every PSK sealed under a KEK
    const registry =
        kind === "sqlite"
            ? new SqliteRegistry(join(stateDir, "bench-registry.db"), { create: true, kek: createKekFile(join(stateDir, "bench-kek")) })
            : new MemoryRegistry()
    const revive = r =>
        Object.fromEntries(
            Object.entries(r).map(([k, v]) => [k, v !== null && typeof v === "object" && "hex" in v ? Buffer.from(v.hex, "hex") : v])
        )
    for (const r of records) await registry.putDevice(revive(r))
    let received = 0
    const bang = Buffer.from("!")
    let gateway
    gateway = await startGateway({
        host: "127.0.0.1",
        port: 0,
        registry,
        state: { identity: state.identity, ticketKeys: state.ticketKeys },
        policy,
        log: () => {},
        onData: (device, content) => {
            received += content.length
            if (content.length > 0 && content[content.length - 1] === 0x21) gateway.send(device.id, bang)
        },
    })
    return {
        port: gateway.port,
        received: () => received,
        close: async () => {
            await gateway.close()
            await registry.close?.()
        },
    }
}
