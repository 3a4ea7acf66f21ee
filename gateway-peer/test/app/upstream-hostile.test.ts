// Upstreams that misbehave (PROTOCOL.md 12.2): a real node:http server on 127.0.0.1 that
// answers status 600 and 999, a garbage status line, a body far over maxResponseBytes, no
// answer before the route's timeout, a connection reset, a body cut short. Each time the
// device gets its RESPONSE with the documented error code, and the gateway stays up: no
// unhandled rejection anywhere.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { createServer, type Server } from "node:http"
import { AppError } from "../../src/app/codec.js"
import { GatewayApp } from "../../src/app/gateway-app.js"
import { parseConfig } from "../../src/app/upstream.js"
import { AppKind, decodeApp, encodeApp, type AppMessage } from "../../src/app/codec.js"
import { appFixture, type AppFixture, memoryStores } from "./app-helpers.js"

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
process.on("unhandledRejection", onUnhandled)

const cleanup: (() => Promise<void> | void)[] = []
after(async () => {
    for (const c of cleanup.reverse()) await c()
    process.off("unhandledRejection", onUnhandled)
})

async function fx(opts: Parameters<typeof appFixture>[0] = {}): Promise<AppFixture> {
    const f = await appFixture(opts)
    cleanup.push(() => f.close())
    return f
}

/** An upstream that misbehaves in the way its path names. */
async function hostileUpstream(): Promise<string> {
    const server: Server = createServer((req, res) => {
        req.resume()
        switch (req.url) {
            case "/600":
                res.writeHead(600)
                res.end("six hundred")
                return
            case "/999":
                res.writeHead(999, { "content-length": "3" })
                res.end("999")
                return
            case "/garbage":
                // not an HTTP status line at all
                req.socket.end("HTTP/1.1 OK-ish garbage\r\n\r\n")
                return
            case "/huge":
                res.writeHead(200, { "content-length": String(1 << 20) })
                res.end(Buffer.alloc(1 << 20, 0x61))
                return
            case "/huge-chunked":
                for (let i = 0; i < 64; i++) res.write(Buffer.alloc(16 * 1024, 0x62))
                res.end()
                return
            case "/hang":
                return // never answers
            case "/reset":
                req.socket.resetAndDestroy()
                return
            case "/cut":
                // promises 100 bytes, sends 10, then the connection goes away
                res.writeHead(200, { "content-length": "100" })
                res.write("0123456789")
                setTimeout(() => req.socket.destroy(), 20)
                return
            default:
                res.end("fine")
        }
    })
    await new Promise<void>(r => server.listen(0, "127.0.0.1", r))
    const addr = server.address()
    const port = typeof addr === "object" && addr !== null ? addr.port : 0
    cleanup.push(() => {
        server.closeAllConnections()
        return new Promise<void>(r => server.close(() => r()))
    })
    return `http://127.0.0.1:${port}`
}

const CASES: [string, AppError][] = [
    ["600", AppError.UPSTREAM_FAILED],
    ["999", AppError.UPSTREAM_FAILED],
    ["garbage", AppError.UPSTREAM_FAILED],
    ["huge", AppError.UPSTREAM_TOO_LARGE],
    ["huge-chunked", AppError.UPSTREAM_TOO_LARGE],
    ["hang", AppError.UPSTREAM_TIMEOUT],
    ["reset", AppError.UPSTREAM_FAILED],
    ["cut", AppError.UPSTREAM_FAILED],
]

test("hostile upstreams: every REQUEST is answered with its error code and the gateway stays up", async () => {
    const up = await hostileUpstream()
    const routes: Record<string, unknown> = { fine: { url: `${up}/fine`, devices: ["*"] } }
    for (const [path] of CASES) routes[path] = { url: `${up}/${path}`, timeoutMs: 300, devices: ["*"] }
    const f = await fx({ config: { routes } })
    const d = f.device(await f.pair("victim-1"))
    await d.connect()
    for (const [path, code] of CASES) {
        const r = await d.request(path, Buffer.from("q"))
        assert.deepEqual([r.status, [...r.payload]], [0, [code]], path)
        // the gateway still serves, on the same session
        const ok = await d.request("fine", Buffer.alloc(0))
        assert.deepEqual([ok.status, ok.payload.toString()], [200, "fine"], `after ${path}`)
    }
    // all of them at once, too
    const all = await Promise.all(CASES.map(([path]) => d.request(path, Buffer.alloc(0))))
    assert.deepEqual(
        all.map(r => r.payload[0]),
        CASES.map(([, code]) => code)
    )
    assert.ok(f.logs.some(l => l.outcome === "request" && l.route === "600" && l.result === "UPSTREAM_FAILED" && l.detail === "status 600"))
    assert.equal(f.g.gateway.stats.sessions, 1, "the device's session is still up")
    await d.close()
    assert.deepEqual(unhandled, [], "no unhandled rejection")
})

test("a fetch that throws, or answers what no RESPONSE can carry, is answered UPSTREAM_FAILED", async () => {
    const device = { id: "00aa00aa00aa00aa", name: "dev-x" }
    const logs: Record<string, unknown>[] = []
    const sent: AppMessage[] = []
    const link = { send: (c: Buffer) => void sent.push(...decodeApp(c, "gateway")), close: () => {} }
    const config = parseConfig({ routes: { r: { url: "http://127.0.0.1:9/", devices: ["*"] } } })
    // a fetch hook that breaks every rule: it throws synchronously, or resolves with a
    // response-shaped object whose status no RESPONSE can carry
    const hooks: (typeof fetch)[] = [
        () => {
            throw new TypeError("boom")
        },
        async () => ({ status: 1234, headers: new Headers(), body: null }) as unknown as Response,
        async () => ({ status: 200.5, headers: new Headers(), body: null }) as unknown as Response,
    ]
    for (const hook of hooks) {
        sent.length = 0
        const app = new GatewayApp({
            ...memoryStores(),
            config,
            lookup: async () => device,
            fetch: hook,
            log: l => logs.push(l),
        })
        const stream = encodeApp({ kind: AppKind.STREAM, streamId: 7, peerStreamId: 0, delivered: 0 })
        app.data(device, Buffer.concat([stream, encodeApp({ kind: AppKind.REQUEST, id: 1, route: "r", payload: Buffer.alloc(0) })]), link)
        await app.idle()
        const r = sent.find(m => m.kind === AppKind.RESPONSE)
        assert.ok(r?.kind === AppKind.RESPONSE)
        assert.deepEqual([r.requestId, r.status, [...r.payload]], [1, 0, [AppError.UPSTREAM_FAILED]])
    }
    assert.deepEqual(unhandled, [], "no unhandled rejection")
})
