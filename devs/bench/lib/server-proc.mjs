// A server in a child process of its own, so its CPU time per handshake can be read apart
// from the clients' (process.cpuUsage() of the server process alone, on one core).
//
// The parent sends {cmd: "start", kind, config}; the child answers {port}. {cmd: "cpu"} answers
// {cpu: microseconds of user+system time}. {cmd: "stats"} answers {stats: server.stats()}, what
// a server counts for the bench (node-server.mjs: its store calls). {cmd: "stop"} ends it.
// `kind` names a module in this folder exporting `async function startServer(config) -> { port,
// close(), stats?() }`.
import { pathToFileURL } from "node:url"
import { join, dirname } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
let server

// a bench that ended without {cmd: "stop"} (an error, a Ctrl-C) takes its servers with it
process.on("disconnect", () => process.exit(0))

process.on("message", async msg => {
    try {
        if (msg.cmd === "start") {
            const mod = await import(pathToFileURL(join(here, `${msg.kind}-server.mjs`)).href)
            server = await mod.startServer(msg.config)
            process.send({ port: server.port })
        } else if (msg.cmd === "cpu") {
            const u = process.cpuUsage()
            process.send({ cpu: u.user + u.system, received: server.received ? server.received() : 0 })
        } else if (msg.cmd === "stats") {
            process.send({ stats: server.stats ? await server.stats() : undefined })
        } else if (msg.cmd === "stop") {
            if (server) await server.close()
            process.exit(0)
        }
    } catch (e) {
        process.send({ error: String(e && e.stack ? e.stack : e) })
    }
})
