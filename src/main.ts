// A small Tether firmware: the link from the paired settings (`tether-gateway pair` writes
// .env.local, deployed to the device's settings with the program), a simulated temperature
// sensor published as "telemetry" every few seconds, and commands from the gateway:
//
//     topic "interval"  payload: milliseconds (500..600000)   changes the telemetry period
//     topic "led"       payload: "on" | "off"                  switches the (simulated) LED
//     topic "request"   payload: a route name                  makes an upstream request
//
// Log lines are stable and grep-able (one event per line, key=value, no secrets):
//
//     LINK connecting | LINK handshaking
//     LINK up resumed=1 ms=16 fallback=0 early=1 sessions=2 x25519=0 endpoint=0
//     LINK down failures=1 reason=<text>
//     TELEMETRY id=5 temp=21.4
//     TELEMETRY dropped reason=<text>
//     COMMAND interval=2000 | COMMAND led=on | COMMAND request=<route>
//     RESPONSE route=<route> status=200 bytes=12 | RESPONSE route=<route> error=<code>
//
// Messages queued in RAM while the link is down are lost if the device restarts; nothing the
// gateway acknowledged is lost.
import * as ds from "@devicescript/core"
import { startLink, RequestError } from "./link"

const MIN_PERIOD_MS = 500
const MAX_PERIOD_MS = 600000

let periodMs = 5000
let led = false
let temp = 21

/** The firmware's link; board entries (src/boards/*.ts) add their own inputs to it. */
export const link = await startLink()

link.onState((state, s) => {
    if (state === "up")
        console.log(
            "LINK up resumed=" +
                (s.resumed ? 1 : 0) +
                " ms=" +
                s.handshakeMs +
                " fallback=" +
                (s.fellBack ? 1 : 0) +
                " early=" +
                (s.earlyAccepted ? 1 : 0) +
                " sessions=" +
                s.sessions +
                " x25519=" +
                s.x25519 +
                " endpoint=" +
                s.endpoint
        )
    else if (state === "down") console.log("LINK down failures=" + s.failures + " reason=" + (s.lastError || "none"))
    else console.log("LINK " + state)
})

async function upstream(route: string) {
    try {
        const r = await link.request(route, Buffer.alloc(0), { timeoutMs: 20000 })
        console.log("RESPONSE route=" + route + " status=" + r.status + " bytes=" + r.payload.length)
    } catch (e) {
        const code = e instanceof RequestError ? (e as RequestError).code : -1
        console.log("RESPONSE route=" + route + " error=" + code)
    }
}

link.onMessage((topic, payload) => {
    const text = payload.toString()
    if (topic === "interval") {
        const ms = parseInt(text)
        if (ms >= MIN_PERIOD_MS && ms <= MAX_PERIOD_MS) {
            periodMs = ms
            console.log("COMMAND interval=" + ms)
        } else console.log("COMMAND ignored topic=interval")
    } else if (topic === "led") {
        led = text === "on"
        console.log("COMMAND led=" + (led ? "on" : "off"))
    } else if (topic === "request") {
        console.log("COMMAND request=" + text)
        // not awaited here: the RESPONSE arrives on the fiber that runs this handler
        const run = async () => {
            await upstream(text)
        }
        run.start()
    } else console.log("COMMAND ignored topic=" + topic)
})

// The simulated sensor: a bounded random walk around 21 degrees, one decimal, on its own
// fiber so that a board entry importing this module keeps running.
const telemetry = async () => {
    while (true) {
        temp = Math.max(15, Math.min(30, temp + (Math.random() - 0.5) * 0.4))
        const t = Math.round(temp * 10) / 10
        try {
            const id = link.publish("telemetry", Buffer.from('{"temp":' + t + ',"led":' + (led ? 1 : 0) + "}"))
            console.log("TELEMETRY id=" + id + " temp=" + t)
        } catch (e) {
            console.log("TELEMETRY dropped reason=" + (e as Error).message)
        }
        await ds.sleep(periodMs)
    }
}
telemetry.start()
