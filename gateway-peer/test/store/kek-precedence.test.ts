// An explicit --kek-file (StoreSpec.kekFile) wins over $TETHER_KEK, as every command's help says
// ($TETHER_KEK is the default). Before, a stale or foreign $TETHER_KEK silently replaced the file.
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createKekFile } from "../../src/crypto/kek.js"
import { initStore, openStore } from "../../src/store/open.js"

test("an explicit KEK file wins over $TETHER_KEK; without one, $TETHER_KEK is used", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tether-kek-"))
    try {
        const kekFile = join(dir, "kek-file")
        createKekFile(kekFile)
        const stateDir = join(dir, "state")
        const env = { TETHER_KEK: "not hex at all" }
        const s = await initStore({ stateDir, kekFile, env })
        await s.close()
        const again = await openStore({ stateDir, kekFile, env })
        await again.close()
        await assert.rejects(openStore({ stateDir, env }), /TETHER_KEK must hold 32 bytes/, "no file given: the variable is used")
    } finally {
        rmSync(dir, { recursive: true, force: true })
    }
})
