// Device-side handshake figures in the simulator, run by devs/bench/tether.mjs against the real
// gateway on loopback (devs/bench/lib/tether-server.mjs in a Node child process):
//
//   npx devs run --test -k -T 120000 --no-colors devs/bench/device/handshake.ts
//
// The configuration reaches the program through devs/bench/device/env.generated.ts (written by the
// bench before each run, git-ignored): the port, one paired device, and MODE:
//
//   "time"    ROUNDS rounds of: a full handshake from an empty ticket store (after prepare():
//             the ephemeral, its es and ss computed as idle work), then a resumption with the
//             ticket it received, both timed by the client's own handshakeMs (from the first
//             handshake frame sent to the session, ds.millis()), with every X25519 counted;
//             after each handshake one DATA "!" is answered "!" by the gateway. That record
//             is the device's first (PROTOCOL.md 6.3: the gateway issues the TICKET after it),
//             so the probe also brings the ticket the resumption uses.
//             Prints BENCHDEV lines, one per round and figure; the Node side takes medians.
//   "idle" | "full" | "resume"
//             heap probe: BALLAST bytes are allocated (128-byte buffers, kept alive) right
//             before connect() ("idle": instead of it) and the program prints HEAP-OK if it
//             survived. The simulator has no heap statistics API, and OutOfMemory is a panic,
//             so the Node side searches the largest ballast that survives in each mode: the
//             handshake's peak heap is the idle ballast minus the handshake's ballast.
//             Every mode starts from the same state: one client that ran a full handshake and
//             its probe (it holds a ticket: "resume" uses it) and one prepared with an empty
//             ticket store ("full" uses it). The probe's DATA exchange is part of the measured
//             span.
//
// Test mode runs the VM with GC stress (about 1.6x slower than a plain run, notes): times are
// the simulator's in test mode, and a collection runs often enough that the heap probe sees
// live data rather than garbage.
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { Dh } from "../../../src/noise/dh"
import { CountingDh, TetherClient, X25519 } from "../../../src/tether/client"
import { Connection, RecvKind } from "../../../src/tether/connection"
import { Pairing } from "../../../src/tether/handshake"
import { MemoryStorage, TicketStore } from "../../../src/tether/ticket-store"
import { BALLAST, DEV_ID, DEV_PRIV, GW_PUB, MODE, PORT, PSK, ROUNDS } from "./env.generated"

function emit(name: string, value: number, unit: string): void {
    // number-to-string keeps ~6 significant digits: fine for integers up to 999999
    console.log(`BENCHDEV {"name":"${name}","value":${value},"unit":"${unit}"}`)
}

const h = (s: string) => Buffer.from(s, "hex")

async function pairing(): Promise<Pairing> {
    const privateKey = h(DEV_PRIV)
    return { deviceId: h(DEV_ID), s: { privateKey, publicKey: await X25519.x25519Base(privateKey) }, gatewayPublic: h(GW_PUB), psk: h(PSK) }
}

async function client(p: Pairing, dh: Dh): Promise<TetherClient> {
    const store = await TicketStore.open(new MemoryStorage())
    return new TetherClient({ pairing: p, store, host: "127.0.0.1", port: PORT, dh, timeoutMs: 30000 })
}

/** One DATA "!" answered by the gateway with "!": the session works both ways. */
async function probe(c: Connection) {
    await c.send(Buffer.from("!"))
    const r = await c.receive(10000)
    expect(r.kind === RecvKind.Data ? r.data.toString() : "none").toBe("!")
}

describe("bench", () => {
    test("handshake", async () => {
        const dh = new CountingDh()
        const p = await pairing()
        if (MODE === "time") {
            for (let r = 0; r < ROUNDS; r++) {
                const tc = await client(p, dh)
                await tc.prepare() // idle work: ss, the first ephemeral and its es, as on a device
                dh.reset()
                const full = await tc.connect()
                expect(full.resumed).toBe(false)
                const fullX = dh.x // ee, se: the critical path (es and ss were prepared)
                const fullBase = dh.base // key generations inside connect() (the next ephemeral is prepare()'s idle work)
                await probe(full) // the device's first record: the gateway's TICKET follows it
                await full.close()
                dh.reset()
                const res = await tc.connect()
                expect(res.resumed).toBe(true)
                const resX = dh.x + dh.base
                await probe(res)
                await res.close()
                emit("full_ms", full.handshakeMs, "ms")
                emit("resume_ms", res.handshakeMs, "ms")
                emit("full_x25519", fullX, "ops")
                emit("full_keygen_in_connect", fullBase, "ops")
                emit("resume_x25519", resX, "ops")
            }
            return
        }
        // heap probe: the same start in every mode. Client A has run a full handshake and its
        // first record (so it holds a ticket); client B is prepared (ss, its ephemeral and es)
        // with an empty store.
        const a = await client(p, dh)
        await a.prepare()
        const first = await a.connect()
        await probe(first)
        await first.close()
        const b = await client(p, dh)
        await b.prepare()
        await ds.sleep(10)
        const keep: Buffer[] = []
        for (let n = 0; n + 128 <= BALLAST; n += 128) keep.push(Buffer.alloc(128))
        if (MODE === "full") {
            const c = await b.connect()
            expect(c.resumed).toBe(false)
            await probe(c)
            await c.close()
        } else if (MODE === "resume") {
            const c = await a.connect()
            expect(c.resumed).toBe(true)
            await probe(c)
            await c.close()
        } else await ds.sleep(10)
        console.log("HEAP-OK " + MODE + " " + keep.length)
    })
})
