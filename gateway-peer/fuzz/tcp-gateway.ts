// The gateway under the TCP fuzzer, in a child process of its own (so its descriptors are its
// own and a crash is an exit): startAppGateway on 127.0.0.1, port 0, an in-memory registry with
// the vectors' device and a canary device paired as `pair` pairs it, the vectors' static key and
// ticket key, the vectors' clock. IPC: "fds", "stats", "stop"; the first message is the setup.
import { readdirSync } from "node:fs"
import { startAppGateway } from "../src/app/serve.js"
import { MemoryAppStateStore, MemoryOutbox } from "../src/store/memory-app.js"
import { parseConfig } from "../src/app/upstream.js"
import { pairDevice } from "../src/cli/pair.js"
import { keyPairFromPrivate } from "../src/crypto/x25519.js"
import { MemoryRegistry } from "../src/registry/memory.js"
import { newDevice } from "../src/registry/registry.js"
import { TicketKeySet } from "../src/tickets.js"
import { hex, vectors } from "./targets/common.js"

const kk = vectors("tether-kk.json")[0]
const rv = vectors("tether-resume.json")[0]
const now = rv.now as number

const registry = new MemoryRegistry()
await registry.putDevice({
    ...newDevice({ id: kk.device_id, name: "vector-device", publicKey: hex(kk.device_static_public), psk: hex(kk.psk), now }),
    issued_generation: 5,
    accepted_generation: 4,
    full_generation: 1,
    pseudonym: hex(kk.pseudonym),
})
const ticketKeys = TicketKeySet.fromKeys([{ id: rv.ticket_key_id, key: hex(rv.ticket_key), createdAt: now }])
const identity = keyPairFromPrivate(hex(kk.gateway_static_private))
const canary = await pairDevice({ registry, ticketKeys, name: "canary", now })
let errors = 0
const g = await startAppGateway({
    host: "127.0.0.1",
    port: 0,
    registry,
    state: { identity, ticketKeys },
    now: () => now,
    nowMs: () => rv.now_ms,
    policy: { handshakeTimeoutMs: 1000 },
    log: l => {
        if (l.outcome === "error") errors++ // an exception out of the Responder
    },
    app: { receiving: new MemoryAppStateStore(), outbox: new MemoryOutbox(), config: parseConfig({}) },
})

const fds = () => readdirSync("/proc/self/fd").length

process.send?.({
    op: "ready",
    port: g.gateway.port,
    gatewayPublic: identity.publicKey.toString("hex"),
    canary: {
        deviceId: canary.deviceId.toString("hex"),
        s: canary.s.privateKey.toString("hex"),
        psk: canary.psk.toString("hex"),
        ticket: canary.ticket.ticket.toString("hex"),
        secret: canary.ticket.secret.toString("hex"),
    },
    fds: fds(),
})
process.on("message", (m: { op: string }) => {
    if (m.op === "fds") process.send?.({ op: "fds", fds: fds(), stats: g.gateway.stats, errors })
    else if (m.op === "stop")
        void g.close().then(() => {
            process.send?.({ op: "stopped" })
            process.disconnect()
        })
})
