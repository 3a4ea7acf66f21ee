// End to end: the device's FramedSocket (src/net/framed-socket.ts) in the DeviceScript
// simulator against Node peers on loopback TCP. Two device runs (each costs ~3 s of simulator
// start-up): test/e2e/device/framing-ok.ts and framing-bad.ts, one device test per scenario.
// Each node:test case below checks one scenario: the device test's `E2E-PASS` line and what
// the Node peer saw on its side of the wire.
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import { devicePassed, encodeFrame, FrameServer, MAX_FRAME_LEN, runDevice, DeviceRun, startFrameServer } from "./harness.js"

/** Byte j of body `seed` is (seed * 31 + j) & 0xff; the device programs use the same. */
function pattern(seed: number, len: number): Buffer {
    const b = Buffer.alloc(len)
    for (let j = 0; j < len; j++) b[j] = (seed * 31 + j) & 0xff
    return b
}

const GREETINGS = 5
const MERGED_COUNT = 40
const DEVICE_TIMEOUT_MS = 30000
/** Connections to the REJECT-and-close peer, each opened right after the previous one closed. */
const RECONNECTS = 20

function assertDevice(run: DeviceRun, name: string) {
    assert.ok(devicePassed(run, name), `device scenario ${name} did not pass:\n${run.out.split("\n").slice(-60).join("\n")}`)
}

describe("framing: frames both ways, split and merged", () => {
    let greet: FrameServer, split: FrameServer, merged: FrameServer, echo: FrameServer
    let run: DeviceRun
    const acks: string[] = []
    const echoed: number[] = []

    before(async () => {
        // (i) speaks first: the greeting is written the moment the connection is accepted
        greet = await startFrameServer(async (conn, i) => {
            await conn.sendFrame(0x21, Buffer.from("hello tether " + i))
            const f = await conn.recvFrame()
            assert.ok(f, "greeting: no ack")
            assert.equal(f.type, 0x22)
            acks.push(f.body.toString())
            await conn.end()
        })
        // (ii) three frames, one byte per write, 1 ms apart (Nagle off: one segment per write)
        split = await startFrameServer(async conn => {
            const data = Buffer.concat([
                encodeFrame(0x31, pattern(0x31, 200)),
                encodeFrame(0x32, Buffer.alloc(0)),
                encodeFrame(0x33, pattern(0x33, 50)),
            ])
            await conn.writeChunked(data, 1, 1)
            await conn.end()
        })
        // (iii) MERGED_COUNT frames and a largest-size frame in one write
        merged = await startFrameServer(async conn => {
            const frames: Buffer[] = []
            for (let i = 0; i < MERGED_COUNT; i++) frames.push(encodeFrame(i + 1, pattern(i, i * 5)))
            frames.push(encodeFrame(0x7e, pattern(0x7e, MAX_FRAME_LEN - 1)))
            await conn.write(Buffer.concat(frames))
            await conn.end()
        })
        // (iv) echo every frame; close without answering on "bye" (0x4f)
        echo = await startFrameServer(async conn => {
            for (;;) {
                const f = await conn.recvFrame(DEVICE_TIMEOUT_MS)
                if (!f) return
                if (f.type === 0x4f) {
                    await conn.end()
                    return
                }
                echoed.push(f.type)
                await conn.sendFrame(f.type, f.body)
            }
        })
        run = await runDevice(
            "test/e2e/device/framing-ok.ts",
            {
                PORT_GREET: greet.port,
                PORT_SPLIT: split.port,
                PORT_MERGED: merged.port,
                PORT_ECHO: echo.port,
                GREETINGS,
                MERGED_COUNT,
            },
            { timeoutMs: DEVICE_TIMEOUT_MS }
        )
        await Promise.all([greet.idle(), split.idle(), merged.idle(), echo.idle()])
    })

    after(async () => {
        await Promise.all([greet?.close(), split?.close(), merged?.close(), echo?.close()])
    })

    test("the server speaks first: connect works every time", () => {
        assertDevice(run, "greeting")
        assert.deepEqual(greet.errors, [])
        assert.equal(greet.conns.length, GREETINGS)
        assert.deepEqual(
            acks,
            Array.from({ length: GREETINGS }, (_, i) => "ack " + i)
        )
    })

    test("open, data and close before connect resumes (faked runtime events)", () => {
        assertDevice(run, "race")
    })

    test("a frame split across many 1-byte TCP writes is reassembled", () => {
        assertDevice(run, "split")
        assert.deepEqual(split.errors, [])
    })

    test("many frames in one TCP write are all delivered", () => {
        assertDevice(run, "merged")
        assert.deepEqual(merged.errors, [])
    })

    test("frames from the device are echoed intact, also after a busy write", () => {
        assertDevice(run, "echo")
        assert.deepEqual(echo.errors, [])
        // four sizes, the busy-retried frame exactly once, then the one-socket checks
        assert.deepEqual(echoed.slice(0, 5), [0x40, 0x41, 0x42, 0x43, 0x48])
        assert.ok(!echoed.includes(0x49), "a frame refused as busy was written")
        assert.ok(!echoed.includes(0x4a), "an oversized frame was written")
        assert.ok(!echo.conns.some(c => c.violation), "the device sent an invalid frame")
    })

    test("one socket at a time; a closed socket refuses use", () => {
        assertDevice(run, "single")
        assert.deepEqual(echoed.slice(5), [0x50, 0x51])
    })

    test("the device run passed as a whole", () => {
        assert.equal(run.failed, 0, run.out)
        assert.equal(run.passed, 6)
        assert.equal(run.code, 0)
    })
})

describe("framing: protocol violations and truncation", () => {
    let oversized: FrameServer, zero: FrameServer, trunc: FrameServer, reject: FrameServer
    let run: DeviceRun
    const closedByDevice: boolean[] = []

    /** Waits until the device closes the connection; the peer itself never closes here. */
    async function deviceCloses(done: Promise<void>) {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<boolean>(resolve => (timer = setTimeout(() => resolve(false), 10000)))
        closedByDevice.push(await Promise.race([done.then(() => true), timeout]))
        clearTimeout(timer)
    }

    before(async () => {
        oversized = await startFrameServer(async conn => {
            await conn.sendFrame(0x60, Buffer.from("fine"))
            const bad = Buffer.alloc(2 + 8)
            bad.writeUInt16BE(MAX_FRAME_LEN + 1, 0)
            await conn.write(bad)
            await deviceCloses(conn.done)
        })
        zero = await startFrameServer(async conn => {
            await conn.write(Buffer.from([0, 0, 0x60]))
            await deviceCloses(conn.done)
        })
        trunc = await startFrameServer(async (conn, i) => {
            if (i === 0) {
                await conn.sendFrame(0x61, Buffer.from("before"))
                // length 100 (type + 99 body bytes), then only 11 of them
                const partial = Buffer.concat([Buffer.from([0, 100, 0x62]), pattern(0x62, 10)])
                await conn.write(partial)
            } else {
                await conn.write(Buffer.from([0])) // half a length field
            }
            await conn.end()
        })
        // a gateway's REJECT: one frame (REJECT's type and a one-byte code), then the
        // connection closed at once, in the same tick
        reject = await startFrameServer(conn => {
            conn.socket.end(encodeFrame(0x7f, Buffer.from([0x02])))
        })
        run = await runDevice(
            "test/e2e/device/framing-bad.ts",
            { PORT_OVERSIZED: oversized.port, PORT_ZERO: zero.port, PORT_TRUNC: trunc.port, PORT_REJECT: reject.port, RECONNECTS },
            { timeoutMs: DEVICE_TIMEOUT_MS }
        )
        await Promise.all([oversized.idle(), zero.idle(), trunc.idle(), reject.idle()])
    })

    after(async () => {
        await Promise.all([oversized?.close(), zero?.close(), trunc?.close(), reject?.close()])
    })

    test("an oversized length field: the device reports it and closes the connection", () => {
        assertDevice(run, "oversized")
        assert.deepEqual(oversized.errors, [])
        assert.equal(closedByDevice[0], true)
    })

    test("a zero length field: the device reports it and closes the connection", () => {
        assertDevice(run, "zero")
        assert.deepEqual(zero.errors, [])
        assert.equal(closedByDevice[1], true)
    })

    test("a truncated frame followed by close: reported, no hang", () => {
        assertDevice(run, "truncated")
        assert.deepEqual(trunc.errors, [])
        assert.equal(trunc.conns.length, 2)
    })

    test("a REJECT and an immediate close, then an immediate reconnect, many times: every connect succeeds", () => {
        assertDevice(run, "reject-reconnect")
        assert.deepEqual(reject.errors, [])
        assert.equal(reject.conns.length, RECONNECTS)
    })

    test("the device run passed as a whole", () => {
        assert.equal(run.failed, 0, run.out)
        assert.equal(run.passed, 4)
        assert.equal(run.code, 0)
    })
})
