#!/usr/bin/env node
// The installed command. It is a committed file, not a build output, so that npm links it on the
// very first `npm install` (npm links bins before the build in `postinstall` has run).
let cli
try {
    cli = await import("../dist/src/cli.js")
} catch (err) {
    if (err && err.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist")) {
        process.stderr.write("tether-gateway: the gateway is not built; run `npm run build` in the project first\n")
        process.exit(1)
    }
    throw err
}
process.exitCode = await cli.main(process.argv.slice(2))
