// The TLS 1.3 side of the comparison, on node:tls over loopback:
//   tls-cert     ECDSA P-256 server certificate issued by a CA, the client verifying the chain
//   tls-psk      external pre-shared key (psk_dhe_ke is what OpenSSL negotiates)
//   tls-resumed  the certificate server, resumed with a session ticket from an earlier connection
//
// Certificates are made fresh for each run with @peculiar/x509 on WebCrypto (no files, no
// openssl binary). Each peer's `connect(port)` returns the raw TCP socket (where bytes are
// counted) and a promise that settles when the client may send application data.
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { webcrypto, randomBytes } from "node:crypto"
import net from "node:net"
import tls from "node:tls"

x509.cryptoProvider.set(webcrypto)

function pem(label, der) {
    const b64 = Buffer.from(der)
        .toString("base64")
        .match(/.{1,64}/g)
        .join("\n")
    return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}

/** A CA and a server certificate it issued, both ECDSA P-256 with SHA-256. */
export async function makeCertificates() {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
    const notBefore = new Date(Date.now() - 3600e3)
    const notAfter = new Date(Date.now() + 86400e3)
    const caKeys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: "01",
        name: "CN=Tether Bench CA",
        notBefore,
        notAfter,
        keys: caKeys,
        signingAlgorithm: alg,
        extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    })
    const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])
    const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: "02",
        subject: "CN=gateway.local",
        issuer: ca.subject,
        notBefore,
        notAfter,
        signingKey: caKeys.privateKey,
        publicKey: keys.publicKey,
        signingAlgorithm: alg,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "gateway.local" }])],
    })
    return {
        keyPem: pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)),
        chainPem: leaf.toString("pem") + "\n" + ca.toString("pem") + "\n",
        caPem: ca.toString("pem") + "\n",
    }
}

function tlsConnect(port, options) {
    const raw = net.connect(port, "127.0.0.1")
    raw.setNoDelay(true)
    const c = tls.connect({ socket: raw, minVersion: "TLSv1.3", ...options })
    let session
    c.on("session", s => (session = s))
    const connected = new Promise(r => raw.once("connect", () => r(performance.now())))
    const ready = new Promise((resolve, reject) => {
        c.once("secureConnect", () => resolve(performance.now()))
        c.once("error", reject)
    })
    c.on("error", () => {})
    return {
        raw,
        connected,
        ready,
        session: () => session,
        reused: () => c.isSessionReused(),
        write: b => c.write(b),
        waitDrain: () => new Promise(r => c.once("drain", r)),
        onData: f => c.on("data", f),
        close: () => c.destroy(),
    }
}

/** The three TLS peers, sharing one certificate set and one PSK. */
export async function tlsPeers() {
    const certs = await makeCertificates()
    const psk = randomBytes(32).toString("hex")
    const certClient = port => tlsConnect(port, { servername: "gateway.local", ca: certs.caPem })
    const cert = {
        name: "TLS 1.3, certificate",
        server: { kind: "tls", config: { mode: "cert", keyPem: certs.keyPem, chainPem: certs.chainPem } },
        connect: certClient,
    }
    const pskPeer = {
        name: "TLS 1.3, external PSK",
        server: { kind: "tls", config: { mode: "psk", psk } },
        connect: port =>
            tlsConnect(port, {
                pskCallback: () => ({ psk: Buffer.from(psk, "hex"), identity: "device-1" }),
                ciphers: "TLS_AES_128_GCM_SHA256",
                checkServerIdentity: () => undefined,
            }),
    }
    // Resumption needs a session from the same server: `prepare` makes one full connection
    // first and keeps its ticket; every measured connection then offers it.
    let ticket
    const resumed = {
        name: "TLS 1.3, resumed (ticket)",
        server: cert.server,
        async prepare(port) {
            const c = certClient(port)
            await c.ready
            await new Promise(r => setTimeout(r, 50))
            ticket = c.session()
            c.close()
            if (!ticket) throw new Error("no TLS session ticket received")
        },
        connect: port => {
            const c = tlsConnect(port, { servername: "gateway.local", ca: certs.caPem, session: ticket })
            c.ready.then(() => {
                if (!c.reused()) throw new Error("TLS session was not resumed")
            })
            return c
        },
    }
    return [cert, pskPeer, resumed]
}
