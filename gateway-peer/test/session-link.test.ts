// The application answers the session a DATA came on, not "the device": a new session gets
// nothing sequenced before the device's STREAM has opened it and the gateway's STREAM has gone
// first (PROTOCOL.md 12.1 "After every handshake each side first sends STREAM"). A gateway
// that sent through the device's newest session raced: a MESSAGE queued between the handshake
// and the device's STREAM reached the device before the gateway's STREAM, and the device
// closed the session with PROTOCOL_ERROR.
import { test } from "node:test"
import assert from "node:assert/strict"
import { MemoryTicketStore, TetherClient } from "../peer/initiator.js"
import { AppKind, decodeApp, encodeApp, type AppMessage } from "../src/app/codec.js"
import { appFixture, until } from "./app/app-helpers.js"

test("a MESSAGE queued between a new handshake and the device's STREAM waits for it, behind the gateway's STREAM", async () => {
    const f = await appFixture({ quiet: true })
    try {
        const p = await f.pair("racer")
        const id = p.deviceId.toString("hex")
        const client = (store: MemoryTicketStore) =>
            new TetherClient({
                pairing: { deviceId: p.deviceId, s: p.s, psk: p.psk, gatewayPublic: f.identity.publicKey },
                store,
                host: "127.0.0.1",
                port: f.g.gateway.port,
                timeoutMs: 3000,
            })
        const stream = (peerStreamId: number) => encodeApp({ kind: AppKind.STREAM, streamId: 77, peerStreamId, delivered: 0 } as AppMessage)
        const kinds = (c: Buffer) => decodeApp(c, "gateway").map(m => m.kind)

        // a first session, opened by both STREAMs
        const first = await client(new MemoryTicketStore(p.ticket)).connect()
        first.send(stream(0))
        const got = await first.recv()
        assert.ok(got)
        const gwStream = decodeApp(got, "gateway")[0] as Extract<AppMessage, { kind: typeof AppKind.STREAM }>
        assert.equal(gwStream.kind, AppKind.STREAM)
        first.close()
        assert.ok(await until(() => f.g.gateway.sessionsOf(id).length === 0))

        // a new session (full handshake); the gateway queues a MESSAGE before the device's STREAM
        const second = await client(new MemoryTicketStore()).connect()
        await f.g.app.sendMessage("racer", "cmd", Buffer.from("go"))
        assert.equal(await second.recv(300), undefined, "nothing before the device's STREAM")
        second.send(stream(gwStream.streamId))
        const out: number[] = []
        while (!out.includes(AppKind.MESSAGE)) {
            const c = await second.recv(2000)
            assert.ok(c, "the MESSAGE arrives after the STREAMs")
            out.push(...kinds(c))
        }
        assert.equal(out[0], AppKind.STREAM, "the gateway's STREAM goes first")
        assert.ok(second.isOpen())
        second.close()
    } finally {
        await f.close()
    }
})
