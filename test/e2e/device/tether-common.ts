// Shared helpers of the Tether end-to-end device programs: the pairing from the generated
// env module, a DH that counts its calls, and a client on an in-memory ticket store.
import * as ds from "@devicescript/core"
import { LinkSettings } from "../../../src/link"
import { CountingDh, Received, RecvKind, X25519, TetherClient } from "../../../src/tether/client"
import { Pairing } from "../../../src/tether/handshake"
import { MemoryStorage, TicketStore } from "../../../src/tether/ticket-store"

/** Decodes a hex string from the env module. */
export function h(s: string): Buffer {
    return Buffer.from(s, "hex")
}

/** A pairing from hex strings; the static public key is computed (one X25519) unless given. */
export async function pairing(deviceId: string, priv: string, gatewayPublic: string, psk: string, pub?: string): Promise<Pairing> {
    const privateKey = h(priv)
    return {
        deviceId: h(deviceId),
        s: { privateKey, publicKey: pub ? h(pub) : await X25519.x25519Base(privateKey) },
        gatewayPublic: h(gatewayPublic),
        psk: h(psk),
    }
}

/** A client with its own in-memory ticket store and counting DH. */
export interface TestClient {
    client: TetherClient
    dh: CountingDh
    mem: MemoryStorage
    store: TicketStore
}

/** Builds a TestClient; `ticket`/`secret` (hex) are its out-of-band ticket (PROTOCOL.md 6.7: used while no slot is valid). */
export async function makeClient(port: number, p: Pairing, ticket?: string, secret?: string): Promise<TestClient> {
    const mem = new MemoryStorage()
    const store = await TicketStore.open(mem, ticket ? { ticket: h(ticket), secret: h(secret) } : undefined)
    const dh = new CountingDh()
    const client = new TetherClient({ pairing: p, store, host: "127.0.0.1", port, dh, timeoutMs: 15000 })
    return { client, dh, mem, store }
}

/** A receive() result as text: the DATA content, or "<timeout>", or "<closed CODE>". */
export function text(r: Received): string {
    if (r.kind === RecvKind.Data) return r.data.toString()
    return r.kind === RecvKind.Timeout ? "<timeout>" : "<closed " + r.code + ">"
}

/** Marks a passed scenario for the Node side (harness.devicePassed). */
export function pass(name: string) {
    console.log("E2E-PASS " + name)
}

/** Link settings from the generated env module's pairing (hex) and the gateway port. */
export function linkSettings(
    port: number,
    id: string,
    sk: string,
    gwPk: string,
    psk: string,
    ticket: string,
    secret: string
): LinkSettings {
    return {
        deviceId: h(id),
        privateKey: h(sk),
        gatewayPublic: h(gwPk),
        psk: h(psk),
        host: "127.0.0.1",
        port,
        ticket: h(ticket),
        secret: h(secret),
    }
}

/** Polls `pred` every 20 ms; false if it does not hold within `ms`. */
export async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
    const end = ds.millis() + ms
    while (!pred()) {
        if (ds.millis() > end) return false
        await ds.sleep(20)
    }
    return true
}

// (additions for the v2 ports of resume, restart and link)
import { decodeSlot, SLOT_A, SLOT_B, SlotStorage } from "../../../src/tether/ticket-store"

/** The newest valid slot in a ticket store's flash (PROTOCOL.md 6.6): its seq (0: none) and `resumed` count. */
export async function newestSlot(storage: SlotStorage): Promise<{ seq: number; resumed: number }> {
    const a = decodeSlot(await storage.read(SLOT_A))
    const b = decodeSlot(await storage.read(SLOT_B))
    const s = a !== undefined && (b === undefined || a.seq >= b.seq) ? a : b
    return s === undefined ? { seq: 0, resumed: 0 } : { seq: s.seq, resumed: s.t.resumed }
}
