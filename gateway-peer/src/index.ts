// The package's entry point, `tether-gateway`: the gateway as a library (README "Use it as a
// library"). Everything exported here has JSDoc at its declaration (test/app/api-docs.test.ts
// checks it); nothing else of src/ is reachable from outside the package. The protocol's sizes,
// frame types and codes are `tether-gateway/wire`; `tether-gateway/peer` (the Node twin of the
// device) and `tether-gateway/reference` are for development only.

// ---- the library: a gateway node in your process --------------------------------------------
export { createGateway, TetherGateway } from "./app/create-gateway.js"
export type { CreateGatewayOptions, GatewayEvents, SessionEvent } from "./app/create-gateway.js"
export type { AckEvent, PublishEvent } from "./app/gateway-app.js"
// where device data goes: the MQTT bridge and the other durable sinks (PROTOCOL.md 12.3, 12.4)
export { startMqttBridge } from "./app/mqtt.js"
export type { MqttBridge, MqttBridgeOptions } from "./app/mqtt.js"
export { parseMqttConfig } from "./app/mqtt-config.js"
export type { MqttConfig } from "./app/mqtt-config.js"
export { SinkUnavailable } from "./app/gateway-app.js"
export type { SinkMessage } from "./app/gateway-app.js"
export { composeSinks, fileSink, jsonLinesSink, sinkJson, webhookSink } from "./app/sinks.js"
export type { Sink, WebhookSinkOptions } from "./app/sinks.js"
export type { SinksConfig, WebhookConfig } from "./app/sinks-config.js"
// the store, and what other processes do on it (the CLI's commands, as functions)
export { initStore, openStore } from "./store/open.js"
export type { StoreSpec } from "./store/open.js"
export type { GatewayStore } from "./store/types.js"
export { queueMessage, QueueMessageError } from "./app/queue-message.js"
export { deviceSettings, envText, pairDevice } from "./cli/pair.js"
export type { DeviceSettings, GatewayEndpoint, Paired } from "./cli/pair.js"
// configuration and the errors createGateway and the store throw
export { ConfigError, parseConfig } from "./app/upstream.js"
export type { UpstreamConfig } from "./app/upstream.js"
export { DEFAULT_POLICY } from "./policy.js"
export type { ServerPolicy } from "./policy.js"
export type { LogLine } from "./server.js"
export { QueueFull, StoreUnavailable } from "./store/types.js"
export { StateError } from "./state.js"
export { RegistryOpenError } from "./registry/sqlite.js"
export { createKekFile, KekError } from "./crypto/kek.js"

// ---- the layers createGateway is built from (the tests, the bench, the vector generators) ----
// A node on a store (createGateway's engine), the TCP server with and without the application
// layer, in-memory stores, the registries, the state directory, tickets, the sans-IO Responder.
export { startNode } from "./app/node.js"
export type { GatewayNode, NodeOptions } from "./app/node.js"
export { startAppGateway } from "./app/serve.js"
export type { AppGateway } from "./app/serve.js"
export { startGateway } from "./server.js"
export type { Gateway, GatewayOptions } from "./server.js"
export { MemoryAppStateStore, MemoryOutbox } from "./store/memory-app.js"
export { newDevice, pseudonym0 } from "./registry/registry.js"
export type { DeviceRecord, Registry } from "./registry/registry.js"
export { MemoryRegistry } from "./registry/memory.js"
export { SqliteRegistry } from "./registry/sqlite.js"
export { initState, loadState } from "./state.js"
export type { GatewayState } from "./state.js"
export { ageAdd, encodeTicketContent, mintTicket, openTicket, TicketKeySet, unsealTicket } from "./tickets.js"
export { Phase, Responder } from "./session/responder.js"

// ---- keys and randomness, as the gateway makes them (node:crypto) ---------------------------
export { generateKeyPair, keyPairFromPrivate, x25519, x25519Base } from "./crypto/x25519.js"
export type { KeyPair } from "./crypto/x25519.js"
export { randomBytes } from "./crypto/random.js"
