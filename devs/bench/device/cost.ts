// The device's cost in bytecode instructions, counted by the VM itself: run under the counting
// simulator (devs/bench/device/counting-vm.mjs) by devs/bench/device.mjs against the real gateway
// on loopback, with the configuration of devs/bench/device/env.generated.ts (as handshake.ts).
//
// Every figure is a difference of two readings of the VM's opcode counter (icount.ts), minus the
// cost of one reading. What runs in between is everything the device executes, other fibers
// included (the socket's receive fiber, the settings client), but no native work: AES-CCM,
// SHA-256 and HMAC are native calls (one instruction each here, their time is the runtime's C
// code), and so is the flash write behind settings.set.
//
//   x25519            one src/crypto/x25519.ts scalar multiplication (RFC 7748 vector 1, checked)
//   x25519_slice      the longest run between two yields during it (a probe fiber, icount.ts)
//   prepare           the idle work before a full handshake (ss, the ephemeral, its es)
//   full / full_dh    connect() from a prepared client with an empty ticket store: all of it,
//                     and the part spent inside X25519 calls (MeteredDh)
//   full_first        the session's first record and the gateway's TICKET saved to flash
//                     (one send of a 100-byte DATA and the receive of the gateway's answer)
//   resume / resume_dh  connect() with that ticket (resumption; the ticket store is the real
//                     settings-backed one, so its flash write of the updated slot is counted)
//   resume_first      the resumed session's first record and answer (its TICKET saved, as above)
//   send100           then Connection.send of a 100-byte DATA record (encrypt, frame, socket write)
//   recv              then Connection.receive of the gateway's 1-byte DATA answer
//   heap_*            the VM's heap in use (bytes), from the counting VM's heap figures (GC stress
//                     in test mode, so the peak is the peak of live data; icount.ts heapLive and
//                     peakHeap): *_before the live heap right before the step, *_peak the highest
//                     heap in use during it, for x25519, prepare, full (connect), full_first
//                     (its first record and TICKET), resume and resume_first. The readings sit
//                     outside the instruction counts' spans.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { x25519, x25519Base } from "../../../src/crypto/x25519"
import { Dh } from "../../../src/noise/dh"
import { TetherClient, X25519 } from "../../../src/tether/client"
import { Connection, RecvKind } from "../../../src/tether/connection"
import { Pairing } from "../../../src/tether/handshake"
import { MemoryStorage, SettingsStorage, SlotStorage, TicketStore } from "../../../src/tether/ticket-store"
import { RFC7748 } from "../../../test/device/vectors/x25519-rfc7748"
import { heapLive, heapSize, icount, icountCost, longestSlice, MeteredDh } from "./icount"
import { DEV_ID, DEV_PRIV, GW_PUB, PORT, PSK, ROUNDS } from "./env.generated"

/** Resets the counting VM's peak heap to the heap in use now; returns the live heap (bytes). */
function heapMark(): number {
    const live = heapLive()
    Math.randomInt(3)
    return live
}

/** The peak heap in use since the last mark (and marks again). */
function heapPeak(): number {
    return Math.randomInt(3)
}

function emit(name: string, value: number, unit: string): void {
    // number-to-string keeps ~6 significant digits: large counts go as thousands + rest
    const hi = Math.floor(value / 1000)
    const lo = value - hi * 1000
    console.log(`BENCHDEV {"name":"${name}","value":${hi}e3,"lo":${lo},"unit":"${unit}"}`)
}

const h = (s: string) => Buffer.from(s, "hex")

async function client(p: Pairing, dh: Dh, storage: SlotStorage): Promise<TetherClient> {
    const store = await TicketStore.open(storage)
    return new TetherClient({ pairing: p, store, host: "127.0.0.1", port: PORT, dh, timeoutMs: 30000 })
}

describe("cost", () => {
    test("instructions", async () => {
        const c0 = icountCost()
        const v = RFC7748[0]
        const k = h(v.scalar)
        const u = h(v.u)
        emit("heap_size", heapSize(), "B")
        let hb = heapMark()
        let t = icount()
        const out = await x25519(k, u)
        const xs = icount() - t - c0
        const xp = heapPeak()
        emit("heap_x25519_before", hb, "B")
        emit("heap_x25519_peak", xp, "B")
        expect(out.toString("hex")).toBe(v.out)
        emit("x25519", xs, "instr")
        const slice = await longestSlice(async () => {
            await x25519(k, u)
        })
        emit("x25519_slice", slice, "instr")

        const privateKey = h(DEV_PRIV)
        const p: Pairing = {
            deviceId: h(DEV_ID),
            s: { privateKey, publicKey: await x25519Base(privateKey) },
            gatewayPublic: h(GW_PUB),
            psk: h(PSK),
        }
        const dh = new MeteredDh(X25519)
        const msg = Buffer.alloc(100)
        for (let i = 0; i < 99; i++) msg[i] = 0x61
        msg[99] = 0x21 // "!": the gateway answers "!"
        for (let r = 0; r < ROUNDS; r++) {
            const storage: SlotStorage = r === 0 ? new SettingsStorage() : new MemoryStorage()
            const tc = await client(p, dh, storage)
            dh.reset()
            hb = heapMark()
            t = icount()
            await tc.prepare()
            let n = icount() - t - c0
            let hp = heapPeak()
            emit("prepare", n, "instr")
            emit("heap_prepare_before", hb, "B")
            emit("heap_prepare_peak", hp, "B")
            emit("prepare_x25519", dh.calls, "ops")
            await ds.sleep(10)

            dh.reset()
            hb = heapMark()
            t = icount()
            const full = await tc.connect()
            n = icount() - t - c0
            hp = heapPeak()
            emit("full", n, "instr")
            emit("heap_full_before", hb, "B")
            emit("heap_full_peak", hp, "B")
            emit("full_dh", dh.instr, "instr")
            emit("full_x25519", dh.calls, "ops")
            expect(full.resumed).toBe(false)
            hb = heapMark()
            t = icount()
            await full.send(msg)
            const got = await full.receive(10000)
            n = icount() - t - c0
            hp = heapPeak()
            emit("full_first", n, "instr")
            emit("heap_full_first_before", hb, "B")
            emit("heap_full_first_peak", hp, "B")
            expect(got.kind === RecvKind.Data ? got.data.toString() : "none").toBe("!")
            await full.close()
            await ds.sleep(10)

            dh.reset()
            hb = heapMark()
            t = icount()
            const res = await tc.connect()
            n = icount() - t - c0
            hp = heapPeak()
            emit("resume", n, "instr")
            emit("heap_resume_before", hb, "B")
            emit("heap_resume_peak", hp, "B")
            emit("resume_dh", dh.instr, "instr")
            emit("resume_x25519", dh.calls, "ops")
            expect(res.resumed).toBe(true)
            hb = heapMark()
            t = icount()
            await res.send(msg)
            const r1 = await res.receive(10000)
            n = icount() - t - c0
            hp = heapPeak()
            emit("resume_first", n, "instr")
            emit("heap_resume_first_before", hb, "B")
            emit("heap_resume_first_peak", hp, "B")
            expect(r1.kind === RecvKind.Data ? r1.data.toString() : "none").toBe("!")
            t = icount()
            await res.send(msg)
            emit("send100", icount() - t - c0, "instr")
            t = icount()
            const r2 = await res.receive(10000)
            emit("recv", icount() - t - c0, "instr")
            expect(r2.kind === RecvKind.Data ? r2.data.toString() : "none").toBe("!")
            emit("storage_settings", r === 0 ? 1 : 0, "flag")
            await res.close()
            await ds.sleep(10)
        }
    })
})
