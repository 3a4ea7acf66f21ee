// A real Mosquitto broker for the end-to-end tests that need MQTT 5 or shared subscriptions
// (aedes, in-process, has neither): the Debian package's binary on a free loopback port, with a
// password file, no persistence, stopped by the caller. Absent binary: `mosquittoMissing()` says
// why, and the test skips with that reason printed.
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import net from "node:net"
import { userInfo } from "node:os"
import { join } from "node:path"
import { freePort } from "tether-gateway/peer"
import { sleep } from "./harness.js"

/** Why the Mosquitto tests cannot run here, or undefined when `mosquitto` is on the PATH. */
export function mosquittoMissing(): string | undefined {
    const which = spawnSync("sh", ["-c", "command -v mosquitto"], { encoding: "utf8" })
    if (which.status === 0 && which.stdout.trim() !== "") return undefined
    return "mosquitto is not installed (Debian package mosquitto): the run against it is skipped"
}

export interface Mosquitto {
    url: string
    /** what the broker printed on stderr so far */
    stderr(): string
    stop(): void
}

/** Starts mosquitto under `dir` wanting `user`/`password`; resolves once it accepts connections. */
export async function startMosquitto(dir: string, user: string, password: string): Promise<Mosquitto> {
    const home = mkdtempSync(join(dir, "mosquitto-"))
    const port = await freePort()
    const pwfile = join(home, "passwd")
    writeFileSync(pwfile, "")
    const pw = spawnSync("mosquitto_passwd", ["-b", pwfile, user, password], { encoding: "utf8" })
    if (pw.status !== 0) throw new Error(`mosquitto_passwd: ${pw.stderr}`)
    const conf = join(home, "mosquitto.conf")
    writeFileSync(
        conf,
        `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${pwfile}\npersistence false\nuser ${userInfo().username}\n`
    )
    const child: ChildProcess = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr!.on("data", d => (stderr += d))
    for (let i = 0; ; i++) {
        const ok = await new Promise<boolean>(r => {
            const s = net.connect(port, "127.0.0.1", () => (s.destroy(), r(true)))
            s.on("error", () => r(false))
        })
        if (ok) break
        if (i >= 100 || child.exitCode !== null) {
            child.kill("SIGKILL")
            throw new Error(`mosquitto did not start: ${stderr}`)
        }
        await sleep(50)
    }
    return { url: `mqtt://127.0.0.1:${port}`, stderr: () => stderr, stop: () => void child.kill("SIGTERM") }
}
