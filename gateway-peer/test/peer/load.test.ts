// The load test: 2,000 concurrent clients on loopback, each the package's own
// initiator with the application twin; full handshakes, resumptions and records with nothing
// dropped, and a flood of 4,000 garbage connections while they keep their sessions. It runs in
// about 20-30 s on 2 cores (the gateway in a child process), so it is in the normal suite.
import { test } from "node:test"
import { loadScenario } from "./load-scenario.js"

test(
    "2,000 concurrent clients: handshakes, resumptions, records, a drop, a garbage flood; nothing dropped",
    { timeout: 180000 },
    async () => {
        await loadScenario(2000, 4000, s => console.log(`# ${s}`))
    }
)
