// The gateway as a library: the entry point `tether-gateway`. Everything a program needs to run a
// gateway in its own process, the same parts the CLI is built from. The protocol's sizes,
// frame types and codes are the entry point `tether-gateway/wire`.

// the server and its application layer
export { startGateway } from "./server.js"
export type { Clock, Gateway, GatewayOptions, LogLine, ServerState } from "./server.js"
export { DEFAULT_POLICY, resolvePolicy } from "./policy.js"
export type { ResponderPolicy, ServerPolicy } from "./policy.js"
export { startAppGateway } from "./app/serve.js"
export type { AppGateway } from "./app/serve.js"
export { checkMessage, DEFAULT_MAX_QUEUE, GatewayApp } from "./app/gateway-app.js"
export { queueMessage, QueueMessageError } from "./app/queue-message.js"
export type { AckEvent, AppDevice, AppEvents, GatewayAppOptions, PublishEvent } from "./app/gateway-app.js"
export { MemoryAppStateStore, MemoryOutbox } from "./store/memory-app.js"
export { openAppDatabase, SqliteAppStateStore, SqliteOutbox, SQLITE_APP_SCHEMA } from "./store/sqlite-app.js"
export { PgAppStateStore, PgOutbox, PG_APP_SCHEMA } from "./store/postgres-app.js"
export { QueueFull, StoreUnavailable } from "./store/types.js"
export type { GatewayStore, SessionDirectory, SessionRow, StoreEvents } from "./store/types.js"
export { initStore, migrateSqliteToPg, openStore, PG_MIGRATIONS, STORE_ENV } from "./store/open.js"
export type { StoreSpec } from "./store/open.js"
export { Kek, KekError, KEK_ENV, KEK_FILE, createKekFile, loadKek } from "./crypto/kek.js"
export { startNode, syncTicketKeys } from "./app/node.js"
export { createGateway, TetherGateway } from "./app/create-gateway.js"
export type { CreateGatewayOptions, GatewayEvents, SessionEvent } from "./app/create-gateway.js"
export type { GatewayNode, NodeOptions } from "./app/node.js"
export type { AppStateStore, OutboundMessage, Outbox, OutboxStream, QueuedMessage, ReceiveState } from "./store/types.js"
export { ConfigError, parseConfig } from "./app/upstream.js"
export type { Route, UpstreamConfig } from "./app/upstream.js"

// the sans-IO protocol engine under the server: one Responder per connection
export { isFresh, Phase, Responder } from "./session/responder.js"
export type { ResponderContext, ResponderState, Step, StepEvent } from "./session/responder.js"

// state: identity, ticket keys, devices
export { initState, loadState, StateError } from "./state.js"
export type { GatewayState } from "./state.js"
export {
    ageAdd,
    decodeTicketContent,
    encodeTicketContent,
    mintTicket,
    openTicket,
    TicketKeySet,
    unsealTicket,
    verifyTicket,
} from "./tickets.js"
export type { MintedTicket, OpenedTicket, TicketError, TicketKey, TicketKeyKind, UnsealedTicket } from "./tickets.js"
export { deviceIdHex, newDevice, OOB_GENERATION, pseudonym0, PseudonymTaken } from "./registry/registry.js"
export type { Confirmation, DeviceRecord, GenerationVerdict, Issued, Registry } from "./registry/registry.js"
export { MemoryRegistry } from "./registry/memory.js"
export { RegistryOpenError, SqliteRegistry } from "./registry/sqlite.js"
export { deviceSettings, envText, pairDevice } from "./cli/pair.js"
export type { DeviceSettings, GatewayEndpoint, Paired } from "./cli/pair.js"

// keys and randomness, as the gateway makes them (node:crypto)
export { generateKeyPair, keyPairFromPrivate, x25519, x25519Base } from "./crypto/x25519.js"
export type { KeyPair } from "./crypto/x25519.js"
export { randomBytes } from "./crypto/random.js"
export type { RandomSource } from "./crypto/random.js"

// the operator CLI, for programs that embed it
export { main } from "./cli.js"
