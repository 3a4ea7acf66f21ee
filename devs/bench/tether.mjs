// Tether's own figures for `npm run bench` (issues 3, 4 and 6), next to what bounds them:
//
//   x25519      the gateway's X25519 module (gateway-peer/src/crypto/x25519.ts), ms per
//               operation as the gateway calls it (DH with its static key, fresh key pairs),
//               against node:crypto's own X25519 on KeyObjects made once: the cost of the
//               module's raw-bytes API over the primitive
//
// Every figure is a median over several runs; the note gives the run count and the spread.
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes } from "node:crypto"
import { join } from "node:path"
import { pathToFileURL } from "node:url"

const RUNS = 5

function gw(root, path) {
    return import(pathToFileURL(join(root, "gateway-peer", "dist", "src", path)).href)
}

/** ms per call of f, over `batch` calls (f gets the index). */
function msPerOp(f, batch) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) f(i)
    return Number(process.hrtime.bigint() - t0) / 1e6 / batch
}

/**
 * X25519 micro-bench: the gateway module's x25519(static scalar, peer u) and generateKeyPair(),
 * then node:crypto diffieHellman on KeyObjects built once and generateKeyPairSync: the floor.
 */
export async function x25519Figures(ctx, runs = RUNS, batch = 2000) {
    const { median, spread } = ctx
    const x = await gw(ctx.root, "crypto/x25519.js")
    const identity = x.generateKeyPair() // one Buffer object, reused like the gateway's identity
    const peers = Array.from({ length: 64 }, () => x.generateKeyPair().publicKey)
    const a = generateKeyPairSync("x25519")
    const b = generateKeyPairSync("x25519")
    const r = { dh: [], keygen: [], nodeDh: [], nodeKeygen: [] }
    for (let i = 0; i < runs; i++) {
        r.dh.push(msPerOp(j => x.x25519(identity.privateKey, peers[j & 63]), batch))
        r.keygen.push(msPerOp(() => x.generateKeyPair(), batch))
        r.nodeDh.push(msPerOp(() => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), batch))
        r.nodeKeygen.push(msPerOp(() => generateKeyPairSync("x25519"), batch))
    }
    const note = xs => `${runs} batches of ${batch}, ${spread(xs)}`
    return {
        raw: r,
        figures: [
            { name: "gateway x25519(): DH with its static key, raw bytes in and out", value: median(r.dh), unit: "ms/op", note: `${note(r.dh)}; 64 peer keys in turn` },
            { name: "gateway generateKeyPair(): fresh ephemeral, raw bytes out", value: median(r.keygen), unit: "ms/op", note: note(r.keygen) },
            { name: "node:crypto X25519 DH, KeyObjects made once (floor)", value: median(r.nodeDh), unit: "ms/op", note: note(r.nodeDh) },
            { name: "node:crypto X25519 generateKeyPairSync (floor)", value: median(r.nodeKeygen), unit: "ms/op", note: note(r.nodeKeygen) },
        ],
    }
}

export async function run(ctx) {
    const figures = []
    figures.push(...(await x25519Figures(ctx)).figures)
    return figures
}
