// The device registry (PROTOCOL.md 6.4): paired devices and their ticket generations,
// behind a small interface so a cluster can keep it in a shared store. The operations are
// asynchronous for that reason; the embedded (sqlite.ts) and in-memory (memory.ts) ones answer
// at once. Generation updates are atomic in every implementation: acceptGeneration is a
// compare-and-set, so two concurrent uses of one ticket cannot both see "newer".
import { DEVICE_ID_LEN } from "../wire.js"

/** A paired device. `psk` is secret; the rest is not. */
export interface DeviceRecord {
    /** `device_id` as 16 lowercase hex characters */
    readonly id: string
    /** the operator's name for it, unique */
    readonly name: string
    /** the device's static X25519 public key (32 bytes) */
    readonly publicKey: Buffer
    /** the pairing PSK (32 bytes, secret) */
    readonly psk: Buffer
    readonly revoked: boolean
    /** the lowest generation a ticket may have (raised by re-pairing and revocation) */
    readonly min_generation: number
    /** the highest generation ever put in a ticket */
    readonly issued_generation: number
    /** the highest generation ever accepted in a resumption */
    readonly accepted_generation: number
    /** the generation issued at the last full handshake (at pairing: the out-of-band ticket's) */
    readonly full_generation: number
    /** seconds since the Unix epoch */
    readonly created_at: number
}

/** acceptGeneration's answer (PROTOCOL.md 6.4). */
export type GenerationVerdict = "newer" | "older"

/** The registry interface. Unknown ids make the generation operations throw. */
export interface Registry {
    getDevice(id: string): Promise<DeviceRecord | undefined>
    getDeviceByName(name: string): Promise<DeviceRecord | undefined>
    /** Inserts or replaces (by id) a device. @throws if another device has the name */
    putDevice(device: DeviceRecord): Promise<void>
    listDevices(): Promise<DeviceRecord[]>
    /**
     * Marks the device revoked and raises min_generation above every issued ticket.
     * @returns false if no device has that name
     */
    revoke(name: string): Promise<boolean>
    /**
     * Invalidates every ticket issued so far (min_generation = issued_generation + 1) without
     * revoking: the device's next connection runs the full handshake. For a resumption secret
     * that may have leaked on its own, or a policy that wants fresh forward secrecy now; a leaked
     * flash also holds the device's static key and PSK: revoke and pair again then.
     * @returns false if no device has that name
     */
    expireTickets(name: string): Promise<boolean>
    /**
     * `generation = ++issued_generation`, atomically; returns it. A generation is a uint32 on the
     * wire: an implementation refuses (throws) rather than pass 2^32 - 1.
     */
    issueGeneration(id: string): Promise<number>
    /**
     * Compare-and-set: if `generation > accepted_generation`, sets accepted_generation to it
     * and answers "newer"; otherwise changes nothing and answers "older".
     */
    acceptGeneration(id: string, generation: number): Promise<GenerationVerdict>
    /** Sets full_generation (after a full handshake, to the generation of its ticket). */
    markFullHandshake(id: string, generation: number): Promise<void>
    /** Releases resources (closes the database). */
    close(): Promise<void>
}

/** `device_id` bytes to the registry's id string. */
export function deviceIdHex(deviceId: Buffer): string {
    if (deviceId.length !== DEVICE_ID_LEN) throw new TypeError("registry: device_id must be 8 bytes")
    return deviceId.toString("hex")
}

/** Checks a record's shape before it is stored. @throws TypeError naming the bad field */
export function checkDevice(d: DeviceRecord): void {
    if (!/^[0-9a-f]{16}$/.test(d.id)) throw new TypeError("registry: id must be 16 lowercase hex characters")
    if (typeof d.name !== "string" || d.name.length === 0) throw new TypeError("registry: name must be a non-empty string")
    if (d.publicKey.length !== 32) throw new TypeError("registry: publicKey must be 32 bytes")
    if (d.psk.length !== 32) throw new TypeError("registry: psk must be 32 bytes")
    for (const f of ["min_generation", "issued_generation", "accepted_generation", "full_generation", "created_at"] as const)
        if (!Number.isSafeInteger(d[f]) || d[f] < 0) throw new TypeError(`registry: ${f} must be a non-negative integer`)
}

/**
 * A new device record as pairing makes it: nothing issued yet. Pairing then issues the
 * out-of-band ticket's generation and marks it as the chain's start (PROTOCOL.md 6.7).
 */
export function newDevice(f: { id: string; name: string; publicKey: Buffer; psk: Buffer; now: number }): DeviceRecord {
    return {
        id: f.id,
        name: f.name,
        publicKey: f.publicKey,
        psk: f.psk,
        revoked: false,
        min_generation: 0,
        issued_generation: 0,
        accepted_generation: 0,
        full_generation: 0,
        created_at: f.now,
    }
}
