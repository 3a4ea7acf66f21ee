// The state directory's lock for `serve`: one serve per state directory (two would both write
// the SQLite registry and hand out the same stream ids). An O_EXCL file holding the holder's pid;
// a lock whose pid is not running (a serve killed with SIGKILL, a crash) is taken over. A
// PostgreSQL store needs none: its nodes share it by design (the live view keeps one session per
// device).
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs"
import { join } from "node:path"
import { CliError } from "./common.js"

/** The lock file's name in the state directory. */
export const LOCK_FILE = "serve.lock"

function running(pid: number): boolean {
    try {
        process.kill(pid, 0)
        return true
    } catch (err) {
        return (err as NodeJS.ErrnoException).code === "EPERM" // alive, another user's
    }
}

/**
 * Takes `dir`'s lock for this process. Returns the release function (idempotent; also run at
 * process exit).
 * @throws CliError naming the holder's pid when a running process holds it
 */
export function lockStateDir(dir: string): () => void {
    const path = join(dir, LOCK_FILE)
    for (let attempt = 0; ; attempt++) {
        let fd: number
        try {
            fd = openSync(path, "wx", 0o600)
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new CliError(`cannot lock ${dir}: ${(err as Error).message}`)
            let pid = NaN
            try {
                pid = Number.parseInt(readFileSync(path, "utf8"), 10)
            } catch {
                // removed meanwhile: try again
            }
            if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && running(pid))
                throw new CliError(`the state directory ${dir} is in use by serve pid ${pid} (lock ${path}); stop it first`)
            if (pid === process.pid) throw new CliError(`the state directory ${dir} is already served by this process`)
            // an empty file may be a serve between creating and writing it: stale only when old
            if (!Number.isSafeInteger(pid) && Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 2000)
                throw new CliError(`the state directory ${dir} is being locked by another serve (lock ${path})`)
            if (attempt >= 3) throw new CliError(`cannot take the lock ${path}: it keeps changing`)
            // stale (dead pid, or a file torn by a crash between create and write): take it over
            rmSync(path, { force: true })
            continue
        }
        writeSync(fd, `${process.pid}\n`)
        closeSync(fd)
        let held = true
        const release = () => {
            if (!held) return
            held = false
            process.off("exit", release)
            try {
                if (Number.parseInt(readFileSync(path, "utf8"), 10) === process.pid) rmSync(path, { force: true })
            } catch {
                // already gone
            }
        }
        process.on("exit", release)
        return release
    }
}
