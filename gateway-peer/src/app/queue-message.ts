// Queueing a MESSAGE to a device from outside a node (the `send` command, an operator's script):
// stored in the store's durable outbox (PROTOCOL.md 12.1), then announced, so the node holding
// the device's session sends it at once; without a session, the node the device connects to next.
import type { GatewayStore } from "../store/types.js"
import { QueueFull } from "../store/types.js"
import { checkMessage, DEFAULT_MAX_QUEUE } from "./gateway-app.js"

/** queueMessage's refusal: an unknown or revoked device, or a full queue. */
export class QueueMessageError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "QueueMessageError"
    }
}

/**
 * Stores a MESSAGE to device `name` and tells the nodes.
 * @returns its id in the gateway's current stream to the device
 * @throws RangeError for a topic or payload that does not fit; QueueMessageError for an unknown
 *     or revoked device or a queue holding `max` unacknowledged messages; StoreUnavailable
 */
export async function queueMessage(
    store: GatewayStore,
    name: string,
    topic: string,
    payload: Buffer,
    max: number = DEFAULT_MAX_QUEUE
): Promise<number> {
    checkMessage("queueMessage", topic, payload)
    const device = await store.registry.getDeviceByName(name)
    if (device === undefined) throw new QueueMessageError(`no device named ${name}`)
    if (device.revoked) throw new QueueMessageError(`${name} is revoked`)
    let id: number
    try {
        id = (await store.outbox.enqueue(device.id, { kind: "message", topic, payload }, max)).id
    } catch (err) {
        if (err instanceof QueueFull) throw new QueueMessageError(`${name}'s queue is full (${max} unacknowledged messages)`)
        throw err
    }
    await store.announce("queued", device.id)
    return id
}
