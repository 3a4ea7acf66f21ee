// The entry point `tether-gateway/peer`: the Node twin of the device, for tests, the bench and
// load generation. Not part of the shipped gateway (the package's "files" leave it out): it
// speaks the device's side of the protocol so that the gateway can be driven from Node.
export { Connection, FramedSocket, HANDSHAKE_TIMEOUT_MS, MemoryTicketStore, RejectedError, TetherClient } from "./initiator.js"
export type { ClientOptions, Pairing, StoredTicket, TicketStore } from "./initiator.js"
export { AppClient, DeviceApp } from "./device-app.js"
// the application messages (PROTOCOL.md 12), for peers that speak them by hand
export { AppKind, decodeApp, encodeApp } from "../src/app/codec.js"
export type { AppMessage } from "../src/app/codec.js"
export type { DeviceAppEvents, DeviceResponse } from "./device-app.js"
export { connectAll, dropAll, forkGateway, garbageFlood, makeFleet, publishAll, setupRecords } from "./load.js"
export type { ConnectReport, Fleet, FloodReport, LoadGateway, LoadGatewaySetup } from "./load.js"
// the initiator's messages of the two handshakes (the responder's live in the gateway)
export { readHsInit, readHsResp, writeHsInit } from "../src/session/handshake.js"
export type { KkInitiatorPending, KkKeys, KkResult } from "../src/session/handshake.js"
export { obfuscateAge, readResumeResp, writeResumeInit } from "../src/session/resume.js"
export type { ResumePending, Resumed, ResumeTicket } from "../src/session/resume.js"
export { Session } from "../src/session/session.js"
// the TICKET record's content, as the device stores it
export { decodeTicketContent } from "../src/tickets.js"
export type { TicketContent } from "../src/tickets.js"
export { freePort, startPostgres } from "./postgres.js"
export type { PostgresServer } from "./postgres.js"
