// The in-memory twin of the registry, for tests and the load test. Single-threaded JS makes
// every operation atomic.
import { UINT32_MAX } from "../wire.js"
import { checkDevice, type DeviceRecord, type GenerationVerdict, type Registry } from "./registry.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A registry held in a Map; records are copied in and out. */
export class MemoryRegistry implements Registry {
    readonly #byId = new Map<string, Mutable<DeviceRecord>>()

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

    async putDevice(device: DeviceRecord): Promise<void> {
        checkDevice(device)
        for (const d of this.#byId.values())
            if (d.name === device.name && d.id !== device.id) throw new Error(`registry: the name ${device.name} is taken`)
        this.#byId.set(device.id, { ...device })
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

    async expireTickets(name: string): Promise<boolean> {
        for (const d of this.#byId.values())
            if (d.name === name) {
                d.min_generation = Math.max(d.min_generation, d.issued_generation + 1)
                return true
            }
        return false
    }

    async issueGeneration(id: string): Promise<number> {
        const d = this.#get(id)
        if (d.issued_generation >= UINT32_MAX) throw new RangeError(`registry: ${id} has no generation left`)
        return ++d.issued_generation
    }

    async acceptGeneration(id: string, generation: number): Promise<GenerationVerdict> {
        const d = this.#get(id)
        if (generation > d.accepted_generation) {
            d.accepted_generation = generation
            return "newer"
        }
        return "older"
    }

    async markFullHandshake(id: string, generation: number): Promise<void> {
        this.#get(id).full_generation = generation
    }

    async close(): Promise<void> {}
}
