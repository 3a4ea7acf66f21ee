// TLS 1.3 server for the comparison: `mode` "cert" (ECDSA P-256 certificate chain) or "psk"
// (external pre-shared key). It echoes nothing; it counts the application bytes it receives.
import tls from "node:tls"

export async function startServer({ mode, keyPem, chainPem, psk }) {
    let received = 0
    const opts =
        mode === "psk"
            ? { pskCallback: () => Buffer.from(psk, "hex"), minVersion: "TLSv1.3", ciphers: "TLS_AES_128_GCM_SHA256" }
            : { key: keyPem, cert: chainPem, minVersion: "TLSv1.3" }
    const server = tls.createServer(opts, s => {
        s.on("data", d => {
            received += d.length
            if (d[d.length - 1] === 0x21) s.write("!") // the probe: a trailing "!" is answered with "!"
        })
        s.on("error", () => {})
    })
    await new Promise(r => server.listen(0, "127.0.0.1", r))
    return {
        port: server.address().port,
        received: () => received,
        close: () => new Promise(r => server.close(() => r())),
    }
}
