// Helpers of the initiator and client tests: the gateway's side played from the generated
// vectors (test/vectors/generated/tether-kk.json, tether-resume.json) over a MemoryTransport,
// randomness scripted from the vectors' fixed ephemerals and nonces.
import { expect } from "@devicescript/test"
import { RandomSource } from "../../../src/crypto/random"
import { BODY_OFFSET, encodeFrame, LEN_SIZE, TYPE_OFFSET } from "../../../src/net/frame"
import { MemoryTransport } from "../../../src/net/memory-transport"
import { Frame } from "../../../src/net/transport"
import { Pairing } from "../../../src/tether/handshake"
import { StoredTicket } from "../../../src/tether/ticket-store"
import { TETHER_KK } from "../vectors/tether-kk"

export const h = (s: string) => Buffer.from(s, "hex")
export const hex = (b: Buffer) => b.toString("hex")

/** A whole frame from a vector file as a Frame, after checking its length field. */
export function frameOf(wire: string): Frame {
    const f = h(wire)
    expect(f[0] * 256 + f[1]).toBe(f.length - LEN_SIZE)
    return { type: f[TYPE_OFFSET], body: f.slice(BODY_OFFSET) }
}

/** The same frame with one body byte flipped. */
export function flipped(wire: string, i: number): Frame {
    const f = frameOf(wire)
    f.body[i] ^= 0x01
    return f
}

/** The gateway end sends a frame from a vector file. */
export async function play(gw: MemoryTransport, wire: string): Promise<void> {
    const f = frameOf(wire)
    await gw.sendFrame(f.type, f.body)
}

/** The next frame the device sent, whole, in hex ("" when none is waiting). */
export async function sent(gw: MemoryTransport): Promise<string> {
    const f = await gw.recvFrame(0)
    return f ? hex(encodeFrame(f.type, f.body)) : ""
}

/** The KK vector's pairing, the static public key given. */
export function pairingOf(v: any): Pairing {
    return {
        deviceId: h(v.device_id),
        s: { privateKey: h(v.device_static_private), publicKey: h(v.device_static_public) },
        gatewayPublic: h(v.gateway_static_public),
        psk: h(v.psk),
    }
}

/**
 * The resume vector's ticket as the store holds it, with the KK vector's pseudonym (so that a
 * fallback HS_INIT is the KK vector's) and `resumed` given or 0.
 */
export function ticketOf(v: any, resumed?: number): StoredTicket {
    return { ticket: h(v.ticket), secret: h(v.resumption_secret), pseudonym: h(TETHER_KK[0].pseudonym), resumed: resumed || 0 }
}

/**
 * A RandomSource that hands out the given buffers, each once, to the first request of its
 * length (nonce_i: 8, an unknown age: 4, an ephemeral private key: 32); `asked` lists the
 * requests' lengths.
 */
export class ScriptedRandom {
    asked: number[] = []
    private left: Buffer[]
    constructor(bufs: Buffer[]) {
        this.left = bufs.slice(0)
    }
    source(): RandomSource {
        const self = this
        return (n: number) => self.take(n)
    }
    take(n: number): Buffer {
        this.asked.push(n)
        for (let i = 0; i < this.left.length; i++) {
            const b = this.left[i]
            if (b.length === n) {
                const rest: Buffer[] = []
                for (let j = 0; j < this.left.length; j++) if (j !== i) rest.push(this.left[j])
                this.left = rest
                return b.slice(0)
            }
        }
        throw new Error("scripted random: no " + n + " bytes left")
    }
}
