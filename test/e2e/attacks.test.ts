// End to end, attacks on the wire: the device (test/e2e/device/tether-attacks.ts,
// one simulator run) against the real gateway on loopback, through the FrameProxy, which
// tampers with, replaces, retypes or cuts frames. The device prints `E2E-STEP <name>` before
// each scenario and the proxy's hook switches on that line. Each scenario has its own paired
// device, so the gateway's log is read per device name:
//
// - a tampered byte in HS_INIT (e, then the tag): REJECT(HANDSHAKE_FAILED), logged, no session;
// - a tampered byte in HS_RESP: the device refuses it; the gateway's connection just ends;
// - a tampered byte in RESUME_INIT's ticket, then in its encrypted part: TICKET_REJECTED, then
//   the full handshake on the same connection, the early data delivered once;
// - a tampered byte in RESUME_RESP: the device refuses it and keeps its ticket;
// - a tampered TICKET record (it follows the device's first record, PROTOCOL.md 6.3), a
//   tampered DATA record each way: the receiver closes, nothing delivered, the tampered ticket
//   not stored;
// - garbage instead of the gateway's answer (valid length field, then an oversized one);
// - a frame of the wrong type: RECORD for HS_RESP, HS_RESP for RESUME_RESP, RESUME_RESP in a
//   session (the device closes), RECORD for HS_INIT (REJECT(PROTOCOL_ERROR)) and HS_INIT in a
//   session (the gateway closes);
// - half an HS_RESP, then the connection cut;
// - then the gateway serves a new device and the attacked ones, holds no connection or
//   handshake slot, and its log holds no key, ticket, secret or payload bytes.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import { type Paired, randomBytes } from "tether-gateway"
import { FrameType } from "tether-gateway/wire"
import { devicePassed, runDevice, sleep, type DeviceRun } from "./harness.js"
import { FrameProxy, startRealGateway, type ProxyFrame, type RealGateway, type Verdict } from "./tether-fixture.js"

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

const hexOf = (b: Buffer) => b.toString("hex")

/** A copy of `raw` with byte `i` flipped (a negative `i` counts from the end). */
function flip(raw: Buffer, i: number): Buffer {
    const out = Buffer.from(raw)
    const at = i < 0 ? out.length + i : i
    out[at] = (out[at] as number) ^ 0x01
    return out
}

/** A copy of `raw` with another type byte. */
function retype(raw: Buffer, type: number): Buffer {
    const out = Buffer.from(raw)
    out[2] = type
    return out
}

/** Where a frame stands: `k` frames of its connection and direction came before it, it is that
 * direction's `rec`-th RECORD (0 if not a RECORD), and its connection is the step's `nth`
 * (from 0). */
interface At {
    k: number
    rec: number
    nth: number
}

/** One scenario's proxy behaviour. */
type StepHook = (f: ProxyFrame, at: At) => Verdict | undefined

const drop: Verdict = { action: "drop" }

// Offsets in whole frames (length 2, type 1): HS_INIT's e after version and pseudonym;
// RESUME_INIT's ticket after version, its mac last.
const HS_INIT_E = 3 + 1 + 8
const RESUME_INIT_MAC_END = 3 + 1 + 33 - 1

const hooks: Record<string, StepHook> = {
    "hs-init-tamper": (f, at) =>
        f.dir === "up" && f.type === FrameType.HS_INIT
            ? { action: "pass", replace: flip(f.raw, at.nth === 0 ? HS_INIT_E : -1) }
            : undefined,
    "hs-resp-tamper": f => (f.dir === "down" && f.type === FrameType.HS_RESP ? { action: "pass", replace: flip(f.raw, -1) } : undefined),
    "resume-init-tamper": (f, at) =>
        f.dir === "up" && f.type === FrameType.RESUME_INIT
            ? { action: "pass", replace: flip(f.raw, at.nth === 0 ? RESUME_INIT_MAC_END : -1) }
            : undefined,
    "resume-resp-tamper": f =>
        f.dir === "down" && f.type === FrameType.RESUME_RESP ? { action: "pass", replace: flip(f.raw, -1) } : undefined,
    // the gateway's first record is the TICKET, the second the "ack:" of the device's DATA
    "ticket-tamper": (f, at) => (f.dir === "down" && at.rec === 1 ? { action: "pass", replace: flip(f.raw, 5) } : undefined),
    "data-tamper-down": (f, at) => (f.dir === "down" && at.rec === 2 ? { action: "pass", replace: flip(f.raw, 5) } : undefined),
    "data-tamper-up": (f, at) => (f.dir === "up" && at.rec === 1 ? { action: "pass", replace: flip(f.raw, 5) } : undefined),
    // the gateway's answer replaced, what follows it dropped. Random bytes under a valid length
    // field and the expected type byte, so that they reach the parser and the decryption (a
    // random type byte only takes the wrong-type path, covered below)
    "garbage-valid-length": (f, at) => {
        if (f.dir !== "down") return undefined
        if (at.k > 0) return drop
        const g = Buffer.concat([Buffer.alloc(3), randomBytes(f.raw.length - 3)])
        g.writeUInt16BE(f.raw.length - 2, 0)
        g[2] = f.type
        return { action: "pass", replace: g }
    },
    "garbage-oversized-length": (f, at) => {
        if (f.dir !== "down") return undefined
        if (at.k > 0) return drop
        return { action: "pass", replace: Buffer.concat([Buffer.from([0xff, 0xff]), randomBytes(f.raw.length - 2)]) }
    },
    "record-for-hs-resp": (f, at) =>
        f.dir !== "down"
            ? undefined
            : at.k === 0 && f.type === FrameType.HS_RESP
              ? { action: "pass", replace: retype(f.raw, FrameType.RECORD) }
              : drop,
    "hs-resp-for-resume-resp": (f, at) =>
        f.dir !== "down"
            ? undefined
            : at.k === 0 && f.type === FrameType.RESUME_RESP
              ? { action: "pass", replace: retype(f.raw, FrameType.HS_RESP) }
              : drop,
    "resume-resp-in-session": (f, at) =>
        f.dir === "down" && at.rec === 2 ? { action: "pass", replace: retype(f.raw, FrameType.RESUME_RESP) } : undefined,
    "record-for-hs-init": f =>
        f.dir === "up" && f.type === FrameType.HS_INIT ? { action: "pass", replace: retype(f.raw, FrameType.RECORD) } : undefined,
    "hs-init-in-session": (f, at) =>
        f.dir === "up" && at.rec === 1 ? { action: "pass", replace: retype(f.raw, FrameType.HS_INIT) } : undefined,
    "truncated-hs-resp": f =>
        f.dir === "down" && f.type === FrameType.HS_RESP
            ? { action: "pass", replace: f.raw.subarray(0, Math.floor(f.raw.length / 2)), cut: true }
            : undefined,
    clean: () => undefined,
}

/** Where a step began and the proxy connections it opened. */
interface StepInfo {
    log: number
    conns: number[]
}

describe("tether: attacks on the wire end to end (real gateway, device in the simulator)", () => {
    let g: RealGateway
    let proxy: FrameProxy
    let run: DeviceRun
    const devices: Record<string, Paired> = {}
    const steps = new Map<string, StepInfo>()
    const stepOrder: string[] = []
    const unknownSteps: string[] = []
    let statsAfter = { connections: -1, sessions: -1, handshakes: -1 }

    /** The proxy connections a step opened, in order. */
    const connsOf = (name: string) => steps.get(name)?.conns ?? []
    /** Log lines from the start of a step to the start of the next. */
    const logsOf = (name: string) => {
        const i = stepOrder.indexOf(name)
        const next = stepOrder[i + 1]
        return g.logs.slice(steps.get(name)?.log ?? 0, next === undefined ? undefined : steps.get(next)?.log)
    }
    const outcomesOf = (name: string) =>
        g.logs.filter(l => l["deviceName"] === name).map(l => `${l["outcome"]}${l["code"] === undefined ? "" : ":" + l["code"]}`)
    const deliveredTo = (name: string) => g.delivered.filter(d => d.device === name).map(d => d.content)

    before(async () => {
        g = await startRealGateway()
        proxy = await FrameProxy.start(g.port)
        const env: Record<string, string | number> = { PORT: proxy.port, GW_PUB: hexOf(g.state.identity.publicKey) }
        for (const name of ["HI", "HR", "RI", "RR", "RT", "GB", "WT", "TR", "OK"]) {
            const p = await g.pair(name)
            devices[name] = p
            env[name] = [p.deviceId, p.s.privateKey, p.s.publicKey, p.psk, p.ticket.ticket, p.ticket.secret].map(hexOf).join(":")
        }
        let current: { hook: StepHook; info: StepInfo } | undefined
        proxy.hook = f => {
            if (current === undefined) return undefined
            const { hook, info } = current
            if (!info.conns.includes(f.conn)) info.conns.push(f.conn)
            // the proxy records a frame before it asks the hook
            const seen = proxy.of(f.conn, f.dir)
            const rec = f.type === FrameType.RECORD ? seen.filter(x => x.type === FrameType.RECORD).length : 0
            return hook(f, { k: seen.length - 1, rec, nth: info.conns.indexOf(f.conn) })
        }
        run = await runDevice("test/e2e/device/tether-attacks.ts", env, {
            timeoutMs: 60000,
            onLine: line => {
                const m = /E2E-STEP (\S+)/.exec(line)
                if (!m) return
                const name = m[1] as string
                const hook = hooks[name]
                if (hook === undefined) {
                    unknownSteps.push(name)
                    return
                }
                const info: StepInfo = { log: g.logs.length, conns: [] }
                steps.set(name, info)
                stepOrder.push(name)
                current = { hook, info }
            },
        })
        // let the last closes reach the gateway
        for (let i = 0; i < 20 && g.gw.stats.connections > 0; i++) await sleep(50)
        statsAfter = g.gw.stats
    })
    after(async () => {
        if (process.env["TETHER_E2E_DEBUG"]) {
            for (const l of g.logs) console.log(JSON.stringify(l))
            for (const f of proxy.frames) console.log(f.conn, f.dir, f.type, f.raw.length)
        }
        await proxy?.close()
        await g?.close()
    })

    test("tampered HS_INIT (a byte of e, then of the tag): REJECT(HANDSHAKE_FAILED), logged, no session", () => {
        assertDevice(run, "hs-init-tamper")
        const conns = connsOf("hs-init-tamper")
        assert.equal(conns.length, 2)
        for (const c of conns) {
            // the gateway answered exactly one REJECT(HANDSHAKE_FAILED) and closed
            assert.deepEqual(
                proxy.of(c, "down").map(f => hexOf(f.raw)),
                ["00027f04"]
            )
        }
        const rejects = g.logs.filter(l => l["deviceName"] === "HI" && l["outcome"] === "reject")
        assert.deepEqual(
            rejects.slice(0, 2).map(l => [l["code"], l["detail"]]),
            [
                ["HANDSHAKE_FAILED", "HS_INIT: message 1 failed"],
                ["HANDSHAKE_FAILED", "HS_INIT: message 1 failed"],
            ]
        )
        assert.ok(logsOf("hs-init-tamper").every(l => l["outcome"] !== "full-handshake"))
    })
    test("tampered HS_RESP: the device refuses it; the gateway's connection ends, no record", () => {
        assertDevice(run, "hs-resp-tamper")
        const [c] = connsOf("hs-resp-tamper")
        assert.ok(c !== undefined)
        // the device sent nothing after HS_INIT: no record, no CLOSE
        assert.deepEqual(
            proxy.of(c, "up").map(f => f.type),
            [FrameType.HS_INIT]
        )
        assert.deepEqual(outcomesOf("HR"), ["full-handshake", "peer-gone"])
        assert.deepEqual(deliveredTo("HR"), [])
    })
    test("tampered RESUME_INIT (ticket mac, then encrypted part): TICKET_REJECTED, then the full handshake", () => {
        assertDevice(run, "resume-init-tamper")
        const conns = connsOf("resume-init-tamper")
        assert.equal(conns.length, 2)
        for (const c of conns) {
            assert.deepEqual(
                proxy
                    .of(c, "up")
                    .map(f => f.type)
                    .slice(0, 2),
                [FrameType.RESUME_INIT, FrameType.HS_INIT]
            )
            assert.equal(hexOf(proxy.of(c, "down")[0]!.raw), "00027f05")
        }
        const rejects = logsOf("resume-init-tamper").filter(l => l["outcome"] === "reject")
        assert.deepEqual(
            rejects.map(l => [l["code"], l["detail"]]),
            [
                ["TICKET_REJECTED", "ticket: bad mac or an older chain"],
                ["TICKET_REJECTED", "RESUME_INIT: early data failed to decrypt"],
            ]
        )
        assert.equal(g.outcomes("full-handshake", "RI").length, 2)
        assert.equal(g.outcomes("resumed", "RI").length, 0)
        // early data: sent again as a record after the fallback, delivered once each
        assert.deepEqual(deliveredTo("RI"), ["ri-early-0", "ri-early-1"])
    })
    test("tampered RESUME_RESP: the device refuses it and keeps its ticket", () => {
        assertDevice(run, "resume-resp-tamper")
        const [c] = connsOf("resume-resp-tamper")
        assert.deepEqual(
            proxy.of(c!, "up").map(f => f.type),
            [FrameType.RESUME_INIT]
        )
        assert.deepEqual(outcomesOf("RR").slice(0, 2), ["resumed", "peer-gone"])
    })
    test("tampered TICKET and DATA records (both ways): the receiver closes, nothing delivered, nothing stored", () => {
        assertDevice(run, "record-tamper")
        // TICKET: the device closed without a word; then the DATA record down: the same; then up:
        // the gateway closed without a word ("bad-record"), the content never delivered
        assert.deepEqual(outcomesOf("RT"), [
            "resumed",
            "confirmed",
            "peer-gone",
            "resumed",
            "confirmed",
            "peer-gone",
            "resumed",
            "bad-record",
        ])
        assert.deepEqual(deliveredTo("RT"), ["rt-ticket", "rt-down"])
        const [t, down, up] = ["ticket-tamper", "data-tamper-down", "data-tamper-up"].map(s => connsOf(s)[0]!)
        assert.deepEqual(
            proxy.of(t!, "up").map(f => f.type),
            [FrameType.RESUME_INIT, FrameType.RECORD]
        )
        assert.deepEqual(
            proxy.of(down!, "up").map(f => f.type),
            [FrameType.RESUME_INIT, FrameType.RECORD]
        )
        // RESUME_RESP alone: no TICKET for a session whose first record did not decrypt, and no answer
        assert.deepEqual(
            proxy.of(up!, "down").map(f => f.type),
            [FrameType.RESUME_RESP]
        )
    })
    test("garbage instead of the gateway's answer (valid length, oversized length): the device errors and closes", () => {
        assertDevice(run, "garbage")
        // each time the device sent its RESUME_INIT and nothing else
        for (const s of ["garbage-valid-length", "garbage-oversized-length"]) {
            const [c] = connsOf(s)
            assert.deepEqual(
                proxy.of(c!, "up").map(f => f.type),
                [FrameType.RESUME_INIT]
            )
        }
        assert.deepEqual(outcomesOf("GB"), ["resumed", "peer-gone", "resumed", "peer-gone"])
    })
    test("a frame of the wrong type at each step: the device closes, or the gateway rejects or closes", () => {
        assertDevice(run, "wrong-type")
        // RECORD for HS_RESP, HS_RESP for RESUME_RESP, RESUME_RESP in a session: the device
        // closed without a word each time (the gateway saw its peer go); RECORD for HS_INIT:
        // PROTOCOL_ERROR; HS_INIT in a session: the gateway closed
        assert.deepEqual(outcomesOf("WT"), [
            "full-handshake",
            "peer-gone",
            "resumed",
            "peer-gone",
            "resumed",
            "confirmed",
            "peer-gone",
            "resumed",
            "protocol-error",
        ])
        const [recForInit] = connsOf("record-for-hs-init")
        assert.deepEqual(
            proxy.of(recForInit!, "down").map(f => hexOf(f.raw)),
            ["00027f01"]
        )
        assert.ok(logsOf("record-for-hs-init").some(l => l["outcome"] === "reject" && l["code"] === "PROTOCOL_ERROR"))
        assert.deepEqual(deliveredTo("WT"), ["wt-ping"])
    })
    test("half an HS_RESP, then the connection cut: a clean error on the device", () => {
        assertDevice(run, "truncated")
        assert.deepEqual(outcomesOf("TR"), ["full-handshake", "peer-gone"])
    })
    test("afterwards the gateway serves a new device and the attacked ones; no slot left", () => {
        assertDevice(run, "still-serving")
        assert.deepEqual(outcomesOf("OK"), ["full-handshake", "confirmed", "closed-by-peer:NORMAL"])
        assert.deepEqual(deliveredTo("OK"), ["ok-after"])
        assert.ok(deliveredTo("HI").includes("hi-after"))
        assert.ok(deliveredTo("RR").includes("rr-after"))
        assert.equal(g.outcomes("error").length, 0)
        assert.deepEqual(statsAfter, { connections: 0, sessions: 0, handshakes: 0 })
    })
    test("the gateway's log holds no key, ticket, secret or payload bytes", () => {
        const text = JSON.stringify(g.logs)
        assert.ok(!text.includes("Buffer"), "a Buffer was logged")
        const secrets: [string, Buffer][] = [
            ["gateway private key", g.state.identity.privateKey],
            ["gateway public key", g.state.identity.publicKey],
            ...g.state.ticketKeys.toJSON().keys.map((k): [string, Buffer] => [`ticket key ${k.id}`, Buffer.from(k.key, "hex")]),
        ]
        for (const [name, p] of Object.entries(devices)) {
            secrets.push([`${name} private key`, p.s.privateKey], [`${name} public key`, p.s.publicKey], [`${name} psk`, p.psk])
            secrets.push(
                [`${name} ticket`, p.ticket.ticket],
                [`${name} ticket mac`, p.ticket.ticket.subarray(17)],
                [`${name} secret`, p.ticket.secret]
            )
        }
        // everything that crossed the wire: tickets in RESUME_INIT, ephemeral keys, tags,
        // ciphertexts, in 16-byte pieces
        for (const f of proxy.frames) {
            const body = f.raw.subarray(3)
            for (let i = 0; i + 16 <= body.length; i += 16)
                secrets.push([`frame ${f.conn}/${f.dir} bytes ${i}..`, body.subarray(i, i + 16)])
        }
        for (const [name, b] of secrets) {
            assert.ok(!text.includes(hexOf(b)), `${name} in the log (hex)`)
            assert.ok(!text.includes(b.toString("base64")), `${name} in the log (base64)`)
        }
        const payloads = ["ri-early-0", "ri-early-1", "rt-down", "rt-up-secret", "wt-ping", "wt-late", "ok-after", "hi-after", "rr-after"]
        for (const p of payloads) {
            assert.ok(!text.includes(p), `payload ${p} in the log`)
            assert.ok(!text.includes(hexOf(Buffer.from(p))), `payload ${p} in the log (hex)`)
        }
    })
    test("the device printed no key, ticket or secret", () => {
        for (const [name, p] of Object.entries(devices)) {
            for (const b of [p.s.privateKey, p.psk, p.ticket.ticket, p.ticket.secret])
                assert.ok(!run.out.includes(hexOf(b)), `a secret of ${name} in the device's output`)
        }
    })
    test("the device run passed as a whole; every step was known to the proxy", () => {
        assert.deepEqual(unknownSteps, [])
        assert.equal(run.code, 0, run.out.split("\n").slice(-40).join("\n"))
    })
})
