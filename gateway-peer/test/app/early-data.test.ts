// A REQUEST that came as resumption early data goes upstream with `Early-Data: 1` (RFC 8470,
// PROTOCOL.md 9.3); one that came in a record does not. Three levels: callUpstream, the
// GatewayApp's data(), and a device resuming against the gateway with its REQUEST as 0-RTT.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { createServer, type IncomingHttpHeaders } from "node:http"
import { AppKind, decodeApp, encodeApp, type AppMessage } from "../../src/app/codec.js"
import { GatewayApp } from "../../src/app/gateway-app.js"
import { callUpstream, parseConfig, type Route } from "../../src/app/upstream.js"
import { MemoryTicketStore } from "../../peer/initiator.js"
import { appFixture, type AppFixture, memoryStores } from "./app-helpers.js"

const cleanup: (() => Promise<void> | void)[] = []
after(async () => {
    for (const c of cleanup.reverse()) await c()
})

/** A fetch hook that records the headers of each call and answers 200. */
function recordingFetch(): { fetch: typeof fetch; headers: Record<string, string>[] } {
    const headers: Record<string, string>[] = []
    return {
        headers,
        fetch: (async (_url: string, init?: RequestInit) => {
            headers.push({ ...(init?.headers as Record<string, string>) })
            return new Response("ok", { status: 200 })
        }) as typeof fetch,
    }
}

const route = (url = "http://127.0.0.1:9/r"): Route => parseConfig({ routes: { r: { url, devices: ["*"] } } }).routes.get("r") as Route

test("callUpstream: early-data: 1 only for a request that came as early data", async () => {
    const f = recordingFetch()
    for (const [opts, early] of [
        [{ early: true }, true],
        [{ early: false }, false],
        [{}, false],
        [undefined, false],
    ] as const) {
        const r = await callUpstream(route(), Buffer.from("x"), "dev-1", f.fetch, opts)
        assert.equal(r.status, 200)
        const h = f.headers.at(-1) as Record<string, string>
        assert.equal(h["x-tether-device"], "dev-1")
        if (early) assert.equal(h["early-data"], "1", JSON.stringify(opts))
        else assert.equal("early-data" in h, false, JSON.stringify(opts))
    }
})

test("GatewayApp: a REQUEST delivered from early data is forwarded with early-data: 1, one from a record without", async () => {
    const device = { id: "00bb00bb00bb00bb", name: "dev-e" }
    const sent: AppMessage[] = []
    const link = { send: (c: Buffer) => void sent.push(...decodeApp(c, "gateway")), close: () => {} }
    const f = recordingFetch()
    const app = new GatewayApp({
        ...memoryStores(),
        config: parseConfig({ routes: { r: { url: "http://127.0.0.1:9/r", devices: ["*"] } } }),
        lookup: async () => device,
        fetch: f.fetch,
        log: () => {},
    })
    const stream = encodeApp({ kind: AppKind.STREAM, streamId: 7, peerStreamId: 0, delivered: 0 })
    const req = (id: number) => encodeApp({ kind: AppKind.REQUEST, id, route: "r", payload: Buffer.alloc(0) })
    app.data(device, Buffer.concat([stream, req(1)]), link, true) // RESUME_INIT's early data
    await app.idle()
    app.data(device, req(2), link) // a record on the same session (early defaults to false)
    await app.idle()
    app.data(device, req(3), link, false)
    await app.idle()
    assert.deepEqual(
        f.headers.map(h => h["early-data"]),
        ["1", undefined, undefined]
    )
    assert.equal(sent.filter(m => m.kind === AppKind.RESPONSE).length, 3)
})

test("end to end: a device's REQUEST as accepted 0-RTT data reaches the upstream with Early-Data: 1; a 1-RTT one without", async () => {
    const seen: { path: string; headers: IncomingHttpHeaders }[] = []
    const http = createServer((req, res) => {
        seen.push({ path: req.url ?? "", headers: req.headers })
        res.end("ok")
    })
    await new Promise<void>(r => http.listen(0, "127.0.0.1", r))
    cleanup.push(() => {
        http.closeAllConnections()
        return new Promise<void>(r => http.close(() => r()))
    })
    const addr = http.address()
    const port = typeof addr === "object" && addr !== null ? addr.port : 0
    const f: AppFixture = await appFixture({ config: { routes: { r: { url: `http://127.0.0.1:${port}/r`, devices: ["*"] } } } })
    cleanup.push(() => f.close())
    const p = await f.pair("zero-rtt")
    const d = f.device(p)
    // the out-of-band ticket's age is unknown: no early data; this REQUEST goes in a record (1-RTT)
    const first = await d.connect()
    assert.equal(first.resumed, true)
    assert.equal(first.earlyAccepted, false)
    assert.equal((await d.request("r", Buffer.from("1rtt"))).status, 200)
    await d.settled()
    await d.close()
    // queued while offline, then the resumption: STREAM and the REQUEST ride in RESUME_INIT
    const pending = d.request("r", Buffer.from("0rtt"))
    const second = await d.connect()
    assert.equal(second.resumed, true)
    assert.equal(second.earlyAccepted, true, "the fresh ticket's age is known: its early data is accepted")
    assert.equal((await pending).status, 200)
    await d.settled()
    // after a device restart the ticket's age is unknown again: the same REQUEST shape goes 1-RTT
    await d.close()
    ;(d.client.opts.store as MemoryTicketStore).restart()
    const late = d.request("r", Buffer.from("restarted"))
    const third = await d.connect()
    assert.equal(third.earlyAccepted, false)
    assert.equal((await late).status, 200)
    await d.close()
    assert.deepEqual(
        seen.map(s => s.headers["early-data"]),
        [undefined, "1", undefined]
    )
})
