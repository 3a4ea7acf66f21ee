// A minimal Tether gateway for the device end-to-end tests, assembled from the gateway
// package's own modules (Noise HandshakeState/SymmetricState with AESCCM, tickets, wire), so
// the device is checked against the gateway's crypto and key schedules byte for byte on a
// live socket. It implements PROTOCOL.md 4 and 6.2-6.4 as far as the tests need (registry
// lookup before X25519, ticket open, generation replay rule, TICKET after every handshake)
// and an application that answers each DATA record with "ack:" + content. It is a test
// twin, not the gateway server (gateway-peer/src/server.ts); the tests can move to that
// once it exists.
import { AESCCM } from "tether-gateway/noise/cipher"
import type { CipherState } from "tether-gateway/noise/cipher-state"
import { HandshakeState } from "tether-gateway/noise/handshake-state"
import { SymmetricState } from "tether-gateway/noise/symmetric-state"
import type { KeyPair } from "tether-gateway/crypto/x25519"
import { randomBytes } from "tether-gateway/crypto/random"
import { mintTicket, openTicket, TicketKeySet } from "tether-gateway/tickets"
import * as W from "tether-gateway/wire"
import { FrameConn, FrameServer, startFrameServer } from "./harness.js"

/** A paired device as the test peer knows it. */
export interface PeerDevice {
    id: Buffer
    publicKey: Buffer
    psk: Buffer
    issued: number
    accepted: number
}

/** What the peer saw, for the tests to assert on. */
export interface PeerLog {
    /** DATA contents delivered to the application, early data included, in order */
    delivered: string[]
    /** frame types received, per connection */
    frames: number[][]
    /** REJECT codes sent */
    rejects: number[]
    /** connections closed because a record failed */
    badRecords: number
    fullHandshakes: number
    resumptions: number
}

export interface TetherPeer {
    server: FrameServer
    port: number
    keySet: TicketKeySet
    log: PeerLog
    devices: PeerDevice[]
    close(): Promise<void>
}

const now = () => Math.floor(Date.now() / 1000)

export async function startTetherPeer(s: KeyPair, devices: PeerDevice[]): Promise<TetherPeer> {
    const keySet = TicketKeySet.create(now())
    const log: PeerLog = { delivered: [], frames: [], rejects: [], badRecords: 0, fullHandshakes: 0, resumptions: 0 }
    const find = (id: Buffer) => devices.find(d => d.id.equals(id))

    async function serve(conn: FrameConn, index: number) {
        const seen: number[] = []
        log.frames[index] = seen
        // REJECT closes the connection, except TICKET_REJECTED: the device runs the full
        // handshake on the same connection (PROTOCOL.md 6.2 and 8; section 7's "the gateway
        // closes after sending it" cannot apply to that code).
        const reject = (code: number) => {
            log.rejects.push(code)
            void conn.sendFrame(W.FrameType.REJECT, Buffer.from([code]))
            if (code !== W.Code.TICKET_REJECTED) void conn.end()
        }
        let send: CipherState | undefined
        let recv: CipherState | undefined
        let dev: PeerDevice | undefined
        for (;;) {
            const f = await conn.recvFrame(30000).catch(() => null)
            if (f === null) return
            seen.push(f.type)
            if (send === undefined) {
                if (f.type === W.FrameType.HS_INIT) {
                    if (f.body.length !== W.HS_INIT_BODY_LEN || f.body[0] !== W.VERSION) return reject(W.Code.PROTOCOL_ERROR)
                    const id = f.body.subarray(W.HS_INIT_DEVICE_ID_OFFSET, W.HS_INIT_MESSAGE_OFFSET)
                    dev = find(id)
                    if (dev === undefined) return reject(W.Code.UNKNOWN_DEVICE) // before any X25519
                    const hs = new HandshakeState({
                        pattern: "KKpsk2",
                        initiator: false,
                        cipher: AESCCM,
                        prologue: W.prologue(id),
                        s,
                        rs: dev.publicKey,
                        psks: [dev.psk],
                    })
                    const p1 = hs.readMessage(f.body.subarray(W.HS_INIT_MESSAGE_OFFSET))
                    if (p1 === undefined || p1.length !== 0) return reject(W.Code.HANDSHAKE_FAILED)
                    void conn.sendFrame(W.FrameType.HS_RESP, hs.writeMessage(Buffer.alloc(0)))
                    const r = hs.split()
                    send = r.send
                    recv = r.receive
                    log.fullHandshakes++
                } else if (f.type === W.FrameType.RESUME_INIT) {
                    if (f.body.length < W.RESUME_INIT_MIN_BODY_LEN || f.body[0] !== W.VERSION) return reject(W.Code.PROTOCOL_ERROR)
                    const ticket = f.body.subarray(W.RESUME_INIT_TICKET_OFFSET, W.RESUME_INIT_NONCE_OFFSET)
                    const t = openTicket(ticket, keySet, now())
                    if ("error" in t) {
                        reject(W.Code.TICKET_REJECTED)
                        continue
                    }
                    dev = find(t.deviceId)
                    if (dev === undefined) {
                        reject(W.Code.TICKET_REJECTED)
                        continue
                    }
                    const sym = new SymmetricState(AESCCM, W.RESUME_PROTOCOL_NAME)
                    sym.mixHash(W.prologue(t.deviceId))
                    sym.mixKeyAndHash(t.resumptionSecret)
                    sym.mixHash(ticket)
                    const nonceI = f.body.subarray(W.RESUME_INIT_NONCE_OFFSET, W.RESUME_INIT_PAYLOAD_OFFSET)
                    sym.mixHash(nonceI)
                    sym.mixKey(nonceI)
                    const early = sym.decryptAndHash(f.body.subarray(W.RESUME_INIT_PAYLOAD_OFFSET))
                    if (early === undefined) {
                        reject(W.Code.TICKET_REJECTED)
                        continue
                    }
                    const newer = t.generation > dev.accepted // the replay rule (6.4)
                    if (newer) dev.accepted = t.generation
                    const accept = newer && early.length > 0 && early[0] === W.InnerType.DATA
                    if (accept) log.delivered.push(early.subarray(1).toString())
                    const nonceR = randomBytes(W.RESUME_NONCE_LEN)
                    sym.mixHash(nonceR)
                    sym.mixKey(nonceR)
                    const ct = sym.encryptAndHash(Buffer.from([accept ? W.EARLY_ACCEPTED : 0]))
                    void conn.sendFrame(W.FrameType.RESUME_RESP, Buffer.concat([nonceR, ct]))
                    const { c1, c2 } = sym.split()
                    send = c2
                    recv = c1
                    log.resumptions++
                    sendTicketAndAck(accept ? early.subarray(1) : undefined)
                    continue
                } else return reject(W.Code.PROTOCOL_ERROR)
                sendTicketAndAck(undefined)
                continue
            }
            // Established: RECORD only, anything bad closes without answering.
            const pt = f.type === W.FrameType.RECORD ? recv!.decryptWithAd(Buffer.alloc(0), f.body) : undefined
            if (pt === undefined || pt.length < 1) {
                log.badRecords++
                void conn.end()
                return
            }
            if (pt[0] === W.InnerType.DATA) {
                const content = pt.subarray(1).toString()
                log.delivered.push(content)
                if (content === "tamper-me") {
                    const rec = record(W.InnerType.DATA, Buffer.from("tampered"))
                    rec[5] = (rec[5] as number) ^ 0x01
                    void conn.sendFrame(W.FrameType.RECORD, rec)
                } else void conn.sendFrame(W.FrameType.RECORD, record(W.InnerType.DATA, Buffer.from("ack:" + content)))
            } else if (pt[0] === W.InnerType.CLOSE) {
                void conn.end()
                return
            }
        }

        function record(type: number, content: Buffer): Buffer {
            return send!.encryptWithAd(Buffer.alloc(0), Buffer.concat([Buffer.from([type]), content]))
        }

        function sendTicketAndAck(early: Buffer | undefined) {
            const d = dev!
            const m = mintTicket({ deviceId: d.id, generation: ++d.issued, expiresAt: now() + W.TICKET_LIFETIME, keySet })
            void conn.sendFrame(W.FrameType.RECORD, record(W.InnerType.TICKET, Buffer.concat([m.ticket, m.resumptionSecret])))
            if (early !== undefined) void conn.sendFrame(W.FrameType.RECORD, record(W.InnerType.DATA, Buffer.from("ack:" + early.toString())))
        }
    }

    const server = await startFrameServer(serve)
    return {
        server,
        port: server.port,
        keySet,
        log,
        devices,
        close: () => server.close(),
    }
}
