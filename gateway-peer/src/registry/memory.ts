// The in-memory twin of the registry, for tests and the load test. Single-threaded JS makes
// every operation atomic.
import { UINT32_MAX } from "../wire.js"
import {
    checkDevice,
    PseudonymTaken,
    type Confirmation,
    type DeviceRecord,
    type GenerationVerdict,
    type Issued,
    type Registry,
} from "./registry.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A registry held in a Map; records are copied in and out. */
export class MemoryRegistry implements Registry {
    readonly #byId = new Map<string, Mutable<DeviceRecord>>()
    /** pseudonym (hex) → device id, for all three pseudonyms of every device */
    readonly #byPseudonym = new Map<string, string>()

    #index(d: DeviceRecord): void {
        for (const p of [d.pseudonym, d.previous_pseudonym, d.pseudonym0]) this.#byPseudonym.set(p.toString("hex"), d.id)
    }

    #unindex(d: DeviceRecord): void {
        for (const p of [d.pseudonym, d.previous_pseudonym, d.pseudonym0]) {
            const k = p.toString("hex")
            if (this.#byPseudonym.get(k) === d.id) this.#byPseudonym.delete(k)
        }
    }

    #get(id: string): Mutable<DeviceRecord> {
        const d = this.#byId.get(id)
        if (d === undefined) throw new Error(`registry: no device ${id}`)
        return d
    }

    async getDevice(id: string): Promise<DeviceRecord | undefined> {
        const d = this.#byId.get(id)
        return d && { ...d }
    }

    async getDeviceByName(name: string): Promise<DeviceRecord | undefined> {
        for (const d of this.#byId.values()) if (d.name === name) return { ...d }
        return undefined
    }

    async getDeviceByPseudonym(pseudonym: Buffer): Promise<DeviceRecord | undefined> {
        const id = this.#byPseudonym.get(pseudonym.toString("hex"))
        return id === undefined ? undefined : this.getDevice(id)
    }

    async putDevice(device: DeviceRecord): Promise<void> {
        checkDevice(device)
        for (const d of this.#byId.values())
            if (d.name === device.name && d.id !== device.id) throw new Error(`registry: the name ${device.name} is taken`)
        for (const p of [device.pseudonym, device.previous_pseudonym, device.pseudonym0]) {
            const holder = this.#byPseudonym.get(p.toString("hex"))
            if (holder !== undefined && holder !== device.id) throw new PseudonymTaken()
        }
        const old = this.#byId.get(device.id)
        if (old !== undefined) this.#unindex(old)
        const copy = { ...device }
        this.#byId.set(device.id, copy)
        this.#index(copy)
    }

    async listDevices(): Promise<DeviceRecord[]> {
        return [...this.#byId.values()].map(d => ({ ...d })).sort((a, b) => a.name.localeCompare(b.name))
    }

    async revoke(name: string): Promise<boolean> {
        for (const d of this.#byId.values())
            if (d.name === name) {
                d.revoked = true
                d.min_generation = Math.max(d.min_generation, d.issued_generation + 1)
                return true
            }
        return false
    }

    async remove(name: string): Promise<string | undefined> {
        for (const d of this.#byId.values())
            if (d.name === name) {
                this.#byId.delete(d.id)
                return d.id
            }
        return undefined
    }

    async expireTickets(name: string): Promise<boolean> {
        for (const d of this.#byId.values())
            if (d.name === name) {
                d.min_generation = Math.max(d.min_generation, d.issued_generation + 1)
                return true
            }
        return false
    }

    async confirmSession(id: string, c: Confirmation): Promise<Issued> {
        const d = this.#get(id)
        if (d.issued_generation >= UINT32_MAX) throw new RangeError(`registry: ${id} has no generation left`)
        const holder = this.#byPseudonym.get(c.nextPseudonym.toString("hex"))
        if (holder !== undefined && holder !== id) throw new PseudonymTaken()
        this.#unindex(d)
        const generation = ++d.issued_generation
        if (c.full) d.full_generation = generation
        if (c.resumedGeneration !== undefined) d.accepted_generation = Math.max(d.accepted_generation, c.resumedGeneration)
        d.previous_pseudonym = d.pseudonym
        d.pseudonym = Buffer.from(c.nextPseudonym)
        this.#index(d)
        return { generation, chainOrigin: d.full_generation }
    }

    async acceptAndConfirm(id: string, c: Confirmation & { readonly resumedGeneration: number }): Promise<Issued | "older"> {
        // no await between the check and the update: atomic on one event loop
        if (c.resumedGeneration <= this.#get(id).accepted_generation) return "older"
        return this.confirmSession(id, c)
    }

    async acceptGeneration(id: string, generation: number): Promise<GenerationVerdict> {
        const d = this.#get(id)
        if (generation > d.accepted_generation) {
            d.accepted_generation = generation
            return "newer"
        }
        return "older"
    }

    async close(): Promise<void> {}
}
