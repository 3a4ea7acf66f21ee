// The device registry (PROTOCOL.md 6.4): paired devices and their ticket generations,
// behind a small interface so a cluster can keep it in a shared store. The operations are
// asynchronous for that reason; the embedded (sqlite.ts) and in-memory (memory.ts) ones answer
// at once. Generation updates are atomic in every implementation: acceptGeneration is a
// compare-and-set, so two concurrent uses of one ticket cannot both see "newer".
import { hmacSha256 } from "../crypto/hash.js"
import { DEVICE_ID_LEN, PSEUDONYM0_LABEL, PSEUDONYM_LEN } from "../wire.js"

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
    /** the highest generation whose early data was accepted, or that a confirmed resumption used */
    readonly accepted_generation: number
    /** the generation issued at the last confirmed full handshake (at pairing: the out-of-band ticket's): the chain's origin */
    readonly full_generation: number
    /** the pseudonym sent in the device's latest TICKET (PROTOCOL.md 4.4; 8 bytes) */
    readonly pseudonym: Buffer
    /** the one before it, for a device that lost its newest TICKET */
    readonly previous_pseudonym: Buffer
    /** the fallback, HMAC-SHA-256(psk, "tether/2 pseudonym")[0..8] */
    readonly pseudonym0: Buffer
    /** seconds since the Unix epoch */
    readonly created_at: number
}

/** acceptGeneration's answer (PROTOCOL.md 6.4). */
export type GenerationVerdict = "newer" | "older"

/** What confirming a session changes (PROTOCOL.md 6.3). */
export interface Confirmation {
    /** a full handshake: the new ticket starts a chain */
    readonly full: boolean
    /** a resumption: the generation of the ticket it used (accepted_generation is raised to it) */
    readonly resumedGeneration?: number
    /** the pseudonym that goes in the TICKET: it becomes `pseudonym`, the old one `previous_pseudonym` */
    readonly nextPseudonym: Buffer
}

/** What a confirmation issued: the new ticket's generation and chain origin. */
export interface Issued {
    readonly generation: number
    readonly chainOrigin: number
}

/** confirmSession's refusal when the next pseudonym is held by another device (draw again). */
export class PseudonymTaken extends Error {
    constructor() {
        super("registry: the pseudonym is taken")
        this.name = "PseudonymTaken"
    }
}

/**
 * The registry's store is busy (SQLite: another connection holds the write lock past the busy
 * timeout): nothing was read or written; the node answers BUSY as for StoreUnavailable
 * (connection.ts), and the device comes back later.
 */
export class RegistryBusy extends Error {
    constructor() {
        super("registry: the database is busy")
        this.name = "RegistryBusy"
    }
}

/** The registry interface. Unknown ids make the generation operations throw. */
export interface Registry {
    getDevice(id: string): Promise<DeviceRecord | undefined>
    getDeviceByName(name: string): Promise<DeviceRecord | undefined>
    /** The device one of whose three pseudonyms (current, previous, fallback) this is. */
    getDeviceByPseudonym(pseudonym: Buffer): Promise<DeviceRecord | undefined>
    /** Inserts or replaces (by id) a device. @throws if another device has the name */
    putDevice(device: DeviceRecord): Promise<void>
    listDevices(): Promise<DeviceRecord[]>
    /**
     * Marks the device revoked and raises min_generation above every issued ticket.
     * @returns false if no device has that name
     */
    revoke(name: string): Promise<boolean>
    /**
     * Deletes the device (its name can be paired again); a running gateway closes its session as
     * for a revocation.
     * @returns the removed device's id, undefined if no device has that name
     */
    remove(name: string): Promise<string | undefined>
    /**
     * Invalidates every ticket issued so far (min_generation = issued_generation + 1) without
     * revoking: the device's next connection runs the full handshake. For a resumption secret
     * that may have leaked on its own, or a policy that wants fresh forward secrecy now; a leaked
     * flash also holds the device's static key and PSK: revoke and pair again then.
     * @returns false if no device has that name
     */
    expireTickets(name: string): Promise<boolean>
    /**
     * A session was confirmed (PROTOCOL.md 6.3), in one atomic update: `generation =
     * ++issued_generation`; after a full handshake `full_generation = generation`; after a
     * resumption `accepted_generation = max(accepted_generation, resumedGeneration)`; the
     * pseudonyms rotate. A generation is a uint32 on the wire: an implementation refuses
     * (throws RangeError) rather than pass 2^32 - 1.
     * @throws PseudonymTaken if another device holds `nextPseudonym` (nothing changed)
     */
    confirmSession(id: string, c: Confirmation): Promise<Issued>
    /**
     * Compare-and-set: if `generation > accepted_generation`, sets accepted_generation to it
     * and answers "newer"; otherwise changes nothing and answers "older".
     */
    acceptGeneration(id: string, generation: number): Promise<GenerationVerdict>
    /**
     * acceptGeneration and confirmSession as one atomic update, for a resumption whose early
     * data is fresh (PROTOCOL.md 6.3, 6.4): if `resumedGeneration > accepted_generation` the
     * session is confirmed exactly as confirmSession does (accepted_generation becomes
     * resumedGeneration); otherwise nothing changes and the answer is "older" (the early data
     * is not accepted, the session is confirmed later, at the device's first record).
     * @throws PseudonymTaken, RangeError as confirmSession (nothing changed)
     */
    acceptAndConfirm(id: string, c: Confirmation & { readonly resumedGeneration: number }): Promise<Issued | "older">
    /** Releases resources (closes the database). */
    close(): Promise<void>
}

/** The out-of-band ticket's generation, the start of a pairing's first chain (PROTOCOL.md 6.7). */
export const OOB_GENERATION = 1

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
    for (const f of ["pseudonym", "previous_pseudonym", "pseudonym0"] as const)
        if (!Buffer.isBuffer(d[f]) || d[f].length !== PSEUDONYM_LEN) throw new TypeError(`registry: ${f} must be ${PSEUDONYM_LEN} bytes`)
}

/** The fallback pseudonym of a pairing (PROTOCOL.md 4.4). */
export function pseudonym0(psk: Buffer): Buffer {
    return hmacSha256(psk, PSEUDONYM0_LABEL).subarray(0, PSEUDONYM_LEN)
}

/**
 * A new device record as pairing makes it (PROTOCOL.md 6.7): the out-of-band ticket's
 * generation 1 issued and starting the first chain, nothing accepted, every pseudonym the
 * fallback one.
 */
export function newDevice(f: { id: string; name: string; publicKey: Buffer; psk: Buffer; now: number }): DeviceRecord {
    const p0 = pseudonym0(f.psk)
    return {
        id: f.id,
        name: f.name,
        publicKey: f.publicKey,
        psk: f.psk,
        revoked: false,
        min_generation: 0,
        issued_generation: OOB_GENERATION,
        accepted_generation: 0,
        full_generation: OOB_GENERATION,
        pseudonym: p0,
        previous_pseudonym: p0,
        pseudonym0: p0,
        created_at: f.now,
    }
}
