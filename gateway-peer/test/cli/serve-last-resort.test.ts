// `serve`'s process-level last resort, run in-process with a stand-in for `process`: a
// rejection nothing handled is one JSON log line (no message, no secret) and the gateway keeps
// serving; shutdown removes the handlers.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { EventEmitter } from "node:events"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppClient } from "../../peer/device-app.js"
import { MemoryTicketStore, TetherClient } from "../../peer/initiator.js"
import { openState, type Io } from "../../src/cli/common.js"
import { init } from "../../src/cli/init.js"
import { pairDevice } from "../../src/cli/pair.js"
import { serve } from "../../src/cli/serve.js"

const work = mkdtempSync(join(tmpdir(), "tether-last-resort-"))
/** stands in for `process`: serve's signal and last-resort handlers go here */
const proc = new EventEmitter()
let stopped = false
after(() => {
    // a failed assertion must not leave the gateway running (a second SIGTERM would force exit 1)
    if (!stopped) proc.emit("SIGTERM")
    rmSync(work, { recursive: true, force: true })
})

test("serve: an unhandled rejection is logged as one JSON line without its message, and serving goes on", { timeout: 30000 }, async () => {
    const lines: Record<string, unknown>[] = []
    const io: Io = { out: l => lines.push(JSON.parse(l) as Record<string, unknown>), err: () => {}, cwd: work }
    const quiet: Io = { out: () => {}, err: () => {}, cwd: work }
    const dir = join(work, "state")
    await init(["--state", dir], quiet)
    const { state, registry } = openState(dir)
    const p = await pairDevice({ registry, ticketKeys: state.ticketKeys, name: "dev-lr", now: Math.floor(Date.now() / 1000) })
    await registry.close()

    const running = serve(["--state", dir, "--port", "0"], io, proc)
    const until = async (pred: () => boolean) => {
        for (let i = 0; i < 500 && !pred(); i++) await new Promise(r => setTimeout(r, 10))
        return pred()
    }
    assert.ok(await until(() => lines.some(l => l.event === "serve")))
    assert.equal(proc.listenerCount("unhandledRejection"), 1)
    assert.equal(proc.listenerCount("uncaughtException"), 1)

    const err = Object.assign(new Error("psk=00112233 must never be logged"), { code: "E_TEST" })
    proc.emit("unhandledRejection", err, Promise.resolve())
    const u = lines.filter(l => l.event === "unhandled")
    assert.equal(u.length, 1)
    assert.deepEqual([u[0]?.kind, u[0]?.error, u[0]?.code, u[0]?.outcome], ["rejection", "Error", "E_TEST", "kept-running"])
    assert.match(String(u[0]?.at), /serve-last-resort\.test\.js/, "where it was thrown")
    assert.ok(!JSON.stringify(lines).includes("00112233"), "the message is not logged")

    // still serving: the device connects and publishes
    const port = lines.find(l => l.event === "serve")?.port as number
    const client = new TetherClient({
        pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: state.identity.publicKey },
        store: new MemoryTicketStore(p.ticket),
        host: "127.0.0.1",
        port,
        timeoutMs: 5000,
    })
    const d = new AppClient(client)
    await d.connect()
    d.publish("alive", Buffer.from("1"))
    await d.settled()
    assert.ok(await until(() => lines.some(l => l.outcome === "publish" && l.device === "dev-lr")))
    await d.close()

    stopped = true
    proc.emit("SIGTERM")
    await running
    assert.equal(proc.listenerCount("unhandledRejection"), 0, "shutdown removes the last resort")
    assert.equal(proc.listenerCount("uncaughtException"), 0)
})
