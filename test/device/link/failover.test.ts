// The link's failover between the gateway endpoints of a pairing (src/link.ts, PROTOCOL.md
// 6.8, 6.9), over the in-memory transport: one test-local gateway (../tether/mini-gateway.ts)
// answers for every endpoint that serves (the nodes of a cluster share keys and tickets),
// and a connector that routes by host name stands in for the rest: "down" refuses the
// connection, "busy" answers REJECT(BUSY), "hsfail" answers REJECT(HANDSHAKE_FAILED).
// @timeout 60000
import * as ds from "@devicescript/core"
import { describe, test, expect } from "@devicescript/test"
import { sha256 } from "../../../src/crypto/hash"
import { Endpoint, Link, startLink } from "../../../src/link"
import { memoryPair } from "../../../src/net/memory-transport"
import { ConnectOptions } from "../../../src/net/transport"
import { MemoryStorage } from "../../../src/tether/ticket-store"
import { Code, FrameType } from "../../../src/tether/wire"
import { MiniGateway, TOY_DH, until } from "../tether/mini-gateway"

const priv = sha256(Buffer.from("failover device"))
const gwPriv = sha256(Buffer.from("failover gateway"))
const deviceId = sha256(Buffer.from("failover id")).slice(0, 8)
const psk = sha256(Buffer.from("failover psk"))

/** The hosts the link tried, in order. */
let tried: string[] = []

/** A gateway end that answers the first handshake frame with REJECT(code) and closes. */
function rejecting(code: number) {
    const pair = memoryPair()
    const gw = pair.gateway
    const serve = async () => {
        try {
            const f = await gw.recvFrame(5000)
            if (f) await gw.sendFrame(FrameType.REJECT, Buffer.from([code]))
        } catch (e) {
            // the device went away first
        }
        gw.close()
    }
    serve.start()
    return pair.device
}

/** A gateway end that no longer knows the device: TICKET_REJECTED to its RESUME_INIT, UNKNOWN_DEVICE to the HS_INIT after it. */
function unknownDevice() {
    const pair = memoryPair()
    const gw = pair.gateway
    const serve = async () => {
        try {
            const f = await gw.recvFrame(5000)
            if (f && f.type === FrameType.RESUME_INIT) {
                await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.TICKET_REJECTED]))
                const h = await gw.recvFrame(5000)
                if (h) await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.UNKNOWN_DEVICE]))
            } else if (f) await gw.sendFrame(FrameType.REJECT, Buffer.from([Code.UNKNOWN_DEVICE]))
        } catch (e) {
            // the device went away first
        }
        gw.close()
    }
    serve.start()
    return pair.device
}

async function gateway(): Promise<MiniGateway> {
    return await new MiniGateway({ deviceId, s: { privateKey: priv, publicKey: priv }, gatewayPublic: gwPriv, psk }, gwPriv, TOY_DH).init()
}

async function start(gw: MiniGateway, hosts: string[], min: number, max: number): Promise<Link> {
    const serving = gw.connector()
    const endpoints: Endpoint[] = []
    for (const h of hosts) endpoints.push({ host: h, port: 4433 })
    const oob = gw.mint()
    tried = []
    return await startLink({
        settings: {
            deviceId,
            privateKey: priv,
            gatewayPublic: gwPriv,
            psk,
            host: hosts[0],
            port: 4433,
            endpoints,
            ticket: oob.ticket,
            secret: oob.secret,
        },
        storage: new MemoryStorage(),
        dh: TOY_DH,
        connect: async (o: ConnectOptions) => {
            tried.push(o.host)
            if (o.host === "down") throw new Error("socket: connection refused")
            if (o.host === "busy") return rejecting(Code.BUSY)
            if (o.host === "hsfail") return rejecting(Code.HANDSHAKE_FAILED)
            if (o.host === "gone") return unknownDevice()
            return await serving()
        },
        backoffMinMs: min,
        backoffMaxMs: max,
    })
}

describe("failover between the pairing's gateway endpoints", () => {
    test("past a refused and a BUSY endpoint; the same endpoint after a drop; the next after CLOSE(SHUTDOWN), wrapping", async () => {
        const gw = await gateway()
        const link = await start(gw, ["down", "busy", "gw1", "gw2"], 10, 50)
        const ups: string[] = []
        const downs: string[] = []
        link.onState((state, s) => {
            if (state === "up") ups.push(s.endpoint + ":" + s.host + ":" + s.port + (s.resumed ? ":r" : ":f"))
            if (state === "down") downs.push(s.lastError)
        })
        // 1. the primary refuses, the second answers BUSY: up on the third
        expect(await until(() => ups.length === 1, 5000)).toBe(true)
        expect(tried.join()).toBe("down,busy,gw1")
        expect(ups[0]).toBe("2:gw1:4433:r")
        expect(link.status().endpoint).toBe(2)
        expect(link.status().host).toBe("gw1")
        await ds.sleep(100) // the session's TICKET reaches the store
        // 2. dropped for another reason: the same endpoint again first
        link.dropConnection()
        expect(await until(() => ups.length === 2, 5000)).toBe(true)
        expect(tried.join()).toBe("down,busy,gw1,gw1")
        expect(ups[1]).toBe("2:gw1:4433:r")
        await ds.sleep(100)
        // 3. the node shuts down: the next endpoint, resuming with the ticket of the other node
        await gw.closeSession(Code.SHUTDOWN)
        expect(await until(() => ups.length === 3, 5000)).toBe(true)
        expect(tried.join()).toBe("down,busy,gw1,gw1,gw2")
        expect(ups[2]).toBe("3:gw2:4433:r")
        expect(downs[downs.length - 1]).toBe("gateway closed with code " + Code.SHUTDOWN)
        await ds.sleep(100)
        // 4. the last one shuts down: wraps to the primary, and on past it again
        await gw.closeSession(Code.SHUTDOWN)
        expect(await until(() => ups.length === 4, 5000)).toBe(true)
        expect(tried.join()).toBe("down,busy,gw1,gw1,gw2,down,busy,gw1")
        expect(ups[3]).toBe("2:gw1:4433:r")
        // 5. another close code is not a failover
        await ds.sleep(100)
        await gw.closeSession(Code.IDLE)
        expect(await until(() => ups.length === 5, 5000)).toBe(true)
        expect(tried.join()).toBe("down,busy,gw1,gw1,gw2,down,busy,gw1,gw1")
        expect(gw.seen.first.join("")).toBe("RRRRR")
        await link.stop()
    })
    test("the link is not down before its first attempt, and lastError describes only the attempt or session that ended", async () => {
        const gw = await gateway()
        const link = await start(gw, ["down", "gw1"], 10, 50)
        const states: string[] = []
        const errors: string[] = []
        link.onState((state, s) => {
            states.push(state)
            errors.push(s.lastError)
        })
        expect(await until(() => link.status().state === "up", 5000)).toBe(true)
        // at once "connecting" (nothing failed yet), then the refused endpoint's failure
        expect(states[0]).toBe("connecting")
        expect(errors[0]).toBe("")
        expect(states.indexOf("down") > 0).toBe(true)
        expect(errors[states.indexOf("down")]).toBe("socket: connection refused")
        // up: the refused attempt is history
        expect(link.status().lastError).toBe("")
        expect(errors[errors.length - 1]).toBe("")
        await ds.sleep(100)
        // a session that ends without a CLOSE says so, not the error of an older attempt
        const n = states.length
        link.dropConnection()
        expect(await until(() => states.length > n && states.indexOf("up", n) > 0, 5000)).toBe(true)
        expect(states[n]).toBe("down")
        expect(errors[n]).toBe("connection lost")
        expect(link.status().lastError).toBe("")
        await link.stop()
    })
    test("a REJECT other than BUSY is the cluster's answer: the same endpoint again", async () => {
        const gw = await gateway()
        const link = await start(gw, ["hsfail", "gw1"], 10, 20)
        expect(await until(() => tried.length >= 4, 5000)).toBe(true)
        expect(tried.join().indexOf("gw1") < 0).toBe(true)
        expect(link.status().state === "up").toBe(false)
        expect(link.status().endpoint).toBe(0)
        await link.stop()
    })
    test("a device the gateway no longer knows says so, and stops retrying at the backoff's pace", async () => {
        const gw = await gateway()
        const link = await start(gw, ["gone"], 10, 20)
        expect(await until(() => link.status().unpaired === "UNKNOWN_DEVICE", 5000)).toBe(true)
        expect(link.status().lastError.indexOf("UNKNOWN_DEVICE: ") === 0).toBe(true)
        await ds.sleep(500)
        // at a 10..20 ms backoff this would be dozens of attempts, each a full handshake
        expect(tried.length).toBe(1)
        await link.stop()
    })
    test("the backoff grows once per pass over the endpoints, after every failure with one", async () => {
        // delays drawn from [b/2, b], b = 100 ms doubling: with 4 endpoints b doubles after
        // every 4th failure (attempts 1..4 at b = 100, 5..8 at 200, 9..12 at 400: 8 to 12 of
        // them in 1300 ms); with one endpoint after each (5 at most, as before failover)
        const gw = await gateway()
        const four = await start(gw, ["down", "down", "down", "down"], 100, 100000)
        await ds.sleep(1300)
        const n4 = tried.length
        await four.stop()
        const one = await start(gw, ["down"], 100, 100000)
        await ds.sleep(1300)
        const n1 = tried.length
        await one.stop()
        console.log("attempts in 1300 ms: 4 endpoints " + n4 + ", 1 endpoint " + n1)
        expect(n4 >= 8 && n4 <= 12).toBe(true)
        expect(n1 >= 3 && n1 <= 5).toBe(true)
        expect(four.status().failures).toBe(n4)
    })
})
