// End to end, device side of the "device restart" scenarios of test/e2e/restart.test.ts. This
// program runs OUTSIDE test mode (`devs run --tcp`, no @devicescript/test), so its settings
// live in the simulator's flash file (.devicescript/flash/sim.bin under the working directory)
// and survive ds.restart() and the process being killed. Each boot reads a boot counter from
// a test-only setting and plays its part (PROTOCOL.md version 2):
//
//   boot 0  no ticket in flash: full handshake (2 X25519 on the critical path, 4.3), data; the
//           TICKET follows the first record (6.3) and goes to a flash slot; restart
//   boot 1  resumes from the flash slot with zero X25519, but without early data: the slot's
//           age is unknown after a restart (its receipt time was in RAM, 6.2), so the data
//           goes as the first record; then, with the ticket that resumption brought (age
//           known), 0-RTT data accepted, and a power cut while the TICKET that follows it is
//           written (the real settings get a torn slot, and the program restarts in the middle
//           of the write)
//   boot 2  the torn slot is refused, the older slot resumes (no early data after a restart);
//           then it asks the test to kill the process
//   boot 3  (a new simulator process) resumes from flash with zero X25519 (no early data),
//           then 0-RTT again with the ticket of this boot
//
// Lines: `E2E-BOOT n`, `E2E-PASS name`, `E2E-FAIL name: reason`, `E2E-STEP kill-me`.
import * as ds from "@devicescript/core"
import { Connection, TetherClient } from "../../../src/tether/client"
import { decodeSlot, SettingsStorage, SLOT_A, SLOT_B, SlotStorage, TicketStore } from "../../../src/tether/ticket-store"
import { CountingDh } from "../../../src/tether/client"
import { pairing, text } from "./tether-common"
import { DEV_ID, DEV_PRIV, DEV_PUB, GW_PUB, PORT, PSK } from "./env.generated"

/** Test-only setting: how many times the program has booted on this flash. */
const BOOT_KEY = "tt_e2e_boot"

/** A power cut in the middle of a slot write: a prefix reaches flash, then the device restarts. */
class PowerCutStorage implements SlotStorage {
    armed = false
    constructor(private inner: SlotStorage) {}
    async read(key: string): Promise<Buffer | undefined> {
        return await this.inner.read(key)
    }
    async write(key: string, value: Buffer): Promise<void> {
        if (!this.armed) return await this.inner.write(key, value)
        console.log("power cut while writing " + key)
        await this.inner.write(key, value.slice(0, 30))
        ds.restart()
        await ds.sleep(60000) // the restart does not return
    }
}

function check(cond: boolean, what: string) {
    if (!cond) throw new Error("check failed: " + what)
}

async function boot() {
    const settings = new SettingsStorage()
    const b = await settings.read(BOOT_KEY)
    const n = b === undefined ? 0 : b[0]
    await settings.write(BOOT_KEY, Buffer.from([n + 1]))
    console.log("E2E-BOOT " + n)

    const flash = new PowerCutStorage(settings)
    const store = await TicketStore.open(flash)
    const dh = new CountingDh()
    const p = await pairing(DEV_ID, DEV_PRIV, GW_PUB, PSK, DEV_PUB)
    const client = new TetherClient({ pairing: p, store, host: "127.0.0.1", port: PORT, dh, timeoutMs: 15000 })
    const ack = async (c: Connection, what: string) => {
        check(text(await c.receive(10000)) === "ack:" + what, "ack of " + what)
    }
    dh.reset()

    if (n === 0) {
        check(store.current() === undefined, "no ticket in a fresh flash")
        await client.prepare() // idle work: ss, the ephemeral and its es
        dh.reset()
        const c = await client.connect()
        check(!c.resumed, "full handshake")
        check(dh.x === 2 && dh.base === 0, "2 X25519 on the critical path, got " + dh.x + "+" + dh.base)
        check(store.seq() === 0, "no TICKET before the first record")
        await c.send(Buffer.from("boot0-data"))
        await ack(c, "boot0-data")
        check(store.seq() === 1, "ticket stored in slot seq 1")
        await c.close()
        console.log("E2E-PASS flash-boot0-full")
        ds.restart()
    } else if (n === 1) {
        check(store.seq() === 1, "boot 1 reads slot seq 1 from flash, got " + store.seq())
        check(store.ageMs() === undefined, "the slot's age is unknown after a restart")
        const c = await client.connect(Buffer.from("boot1-early"))
        check(c.resumed, "resumed")
        // PROTOCOL.md 6.2: no early data with a ticket of unknown age (version 1 sent 0-RTT here)
        check(!c.earlyAccepted, "no 0-RTT after a restart")
        check(dh.x + dh.base === 0, "zero X25519, got " + (dh.x + dh.base))
        await ack(c, "boot1-early")
        check(store.seq() === 2, "slot seq 2")
        await c.close()
        console.log("BENCH device_resume_after_restart_ms " + c.handshakeMs)
        console.log("E2E-PASS flash-restart-resume")
        // next: a ticket of this boot, so 0-RTT; the TICKET that follows the accepted early
        // data at once is cut off in the middle of its write
        flash.armed = true
        const c2 = await client.connect(Buffer.from("boot1-cut"))
        check(c2.resumed && c2.earlyAccepted, "resumed with 0-RTT (the ticket's age is known)")
        await c2.receive(10000) // the TICKET: stored here, where the power goes
        throw new Error("the power cut did not happen")
    } else if (n === 2) {
        const a = decodeSlot(await settings.read(SLOT_A))
        const bb = decodeSlot(await settings.read(SLOT_B))
        const rawA = await settings.read(SLOT_A)
        console.log(
            "slots after the cut: A " +
                (a ? "seq " + a.seq : "invalid, " + (rawA ? rawA.length : 0) + " bytes") +
                ", B " +
                (bb ? "seq " + bb.seq : "invalid")
        )
        check(a === undefined && rawA !== undefined && rawA.length === 30, "slot A holds the torn write")
        check(bb !== undefined && bb.seq === 2, "slot B still holds seq 2")
        check(store.seq() === 2, "the newest valid slot wins")
        const c = await client.connect(Buffer.from("boot2-after-cut"))
        check(c.resumed && !c.fellBack, "the older ticket resumes")
        // its age is unknown after the restart (6.2): no early data, the content is the first record
        check(!c.earlyAccepted, "no 0-RTT after a restart")
        check(dh.x + dh.base === 0, "zero X25519")
        await ack(c, "boot2-after-cut")
        check(store.seq() === 3, "slot seq 3")
        await c.close()
        console.log("E2E-PASS flash-power-cut")
        console.log("E2E-STEP kill-me")
    } else if (n === 3) {
        check(store.seq() === 3, "a new process reads slot seq 3, got " + store.seq())
        const c = await client.connect(Buffer.from("boot3-early"))
        check(c.resumed, "resumed")
        check(!c.earlyAccepted, "no 0-RTT after a power cycle (6.2)")
        check(dh.x + dh.base === 0, "zero X25519")
        await ack(c, "boot3-early")
        check(store.seq() === 4, "slot seq 4")
        await c.close()
        // the ticket that resumption brought has a known age: 0-RTT again
        const c2 = await client.connect(Buffer.from("boot3-0rtt"))
        check(c2.resumed && c2.earlyAccepted, "resumed with 0-RTT")
        check(dh.x + dh.base === 0, "zero X25519")
        await ack(c2, "boot3-0rtt")
        check(store.seq() === 5, "slot seq 5")
        await c2.close()
        console.log("E2E-PASS flash-power-cycle")
        console.log("E2E-STEP done")
    }
}

try {
    await boot()
} catch (e) {
    console.log("E2E-FAIL boot: " + (e as Error).message)
}
