// The README's "Use it as a library" example, as it is quoted there; test/e2e/library-example.test.ts runs it.
import { createGateway } from "tether-gateway"

const gateway = await createGateway({
    store: { stateDir: process.env.TETHER_STATE ?? ".tether" }, // made by `tether-gateway init` and `pair`
    port: Number(process.env.PORT ?? 4433),
    mqtt: process.env.MQTT_URL ? { url: process.env.MQTT_URL } : undefined, // optional: bridge to a broker
})
const greeted = new Set()
gateway.on("session", s => console.log(`${s.device} ${s.state} (${s.resumed ? "resumed" : "full handshake"})`))
gateway.on("publish", async m => {
    console.log(`${m.device} ${m.topic} #${m.id}: ${m.payload.toString()}`)
    if (greeted.has(m.device)) return
    greeted.add(m.device)
    const id = await gateway.send(m.device, "led", "on") // stored, then sent: exactly once, in order
    console.log(`queued led=on for ${m.device} as message ${id}`)
})
gateway.on("acked", a => console.log(`${a.device} has every message up to ${a.id}`))
process.once("SIGINT", () => gateway.close()) // CLOSE(SHUTDOWN) to every session, then the store
console.log(`listening on port ${gateway.port}`)
