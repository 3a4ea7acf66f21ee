import { test } from "node:test"
import assert from "node:assert/strict"
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { IDENTITY_FILE, initState, loadState, StateError, TICKET_KEYS_FILE } from "../src/state.js"

test("initState writes 0600 files, refuses to overwrite; loadState reads them back", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tether-state-")), "state")
    try {
        const s = initState(dir, { now: 1000 })
        for (const f of [IDENTITY_FILE, TICKET_KEYS_FILE]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600)
        assert.throws(() => initState(dir), /refusing to overwrite/)
        const l = loadState(dir)
        assert.deepEqual(l.identity.publicKey, s.identity.publicKey)
        l.ticketKeys.rotate(2000)
        l.saveTicketKeys()
        assert.equal(statSync(join(dir, TICKET_KEYS_FILE)).mode & 0o777, 0o600)
        assert.equal(loadState(dir).ticketKeys.current.id, 1)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})

test("loadState: missing and corrupt state give clear errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-state-"))
    try {
        assert.throws(() => loadState(join(dir, "nope")), (e: unknown) => e instanceof StateError && /no state directory/.test(e.message))
        assert.throws(() => loadState(dir), /identity missing/)
        initState(join(dir, "s"))
        writeFileSync(join(dir, "s", IDENTITY_FILE), "{not json", { mode: 0o600 })
        assert.throws(() => loadState(join(dir, "s")), /identity is corrupt/)
        initState(join(dir, "t"))
        chmodSync(join(dir, "t", TICKET_KEYS_FILE), 0o644)
        assert.throws(() => loadState(join(dir, "t")), /readable by others/)
        chmodSync(join(dir, "t", TICKET_KEYS_FILE), 0o600)
        writeFileSync(join(dir, "t", TICKET_KEYS_FILE), JSON.stringify({ version: 1, keys: [] }))
        assert.throws(() => loadState(join(dir, "t")), /ticket keys are corrupt/)
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
