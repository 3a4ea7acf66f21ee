// A module-resolution hook (node:module register) for the perf group's stubbed-crypto floor:
// in the one bench server process that registers it (tether-server.mjs with stubX25519), the
// gateway's crypto/x25519.js resolves to x25519-stub.mjs instead. Nothing in gateway-peer/src
// knows of it: `serve` can never load it.
const STUB = new URL("./x25519-stub.mjs", import.meta.url).href

export async function resolve(specifier, context, next) {
    const r = await next(specifier, context)
    if (r.url.endsWith("/dist/src/crypto/x25519.js") && context.parentURL !== STUB) return { ...r, url: STUB, shortCircuit: true }
    return r
}
