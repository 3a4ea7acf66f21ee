// The Tether side of the TLS comparison (compare.mjs), measured exactly like the TLS peers
// (measure.mjs), against the real gateway in a child process (tether-server.mjs):
//
//   Tether, full handshake (KKpsk2)   HS_INIT -> HS_RESP, then the gateway's TICKET record
//   Tether, resumed (ticket, 0-RTT)   RESUME_INIT -> RESUME_RESP, then the TICKET record
//
// The client is the gateway package's own initiator code (session/handshake.js, session/resume.js,
// session/session.js, wire.js) on a plain socket, not TetherClient: TetherClient.connect()
// returns only after the TICKET, and the comparison needs the moment the handshake ends.
//
// What each measurement sees (the conn interface of measure.mjs):
//   raw         the socket's bytesWritten, and bytesRead counted in whole frames as the client
//               consumes them. The gateway writes HS_RESP (or RESUME_RESP) and the TICKET record
//               back to back, and both often arrive in one read; the client handles the frame
//               that ends the handshake, settles `ready`, and handles the next frames only
//               after a macrotask, so bytesRead at `ready` is the handshake alone and the
//               TICKET record falls into "ticket bytes", as TLS's NewSessionTicket does.
//               Full: 60 + 51 = 111 B; resumed: 65 + 32 = 97 B; TICKET record 85 B.
//   ready       settles when the handshake's last frame was handled (so the byte split above
//               is right). Its value is the time from which the client may send application
//               data: for the full handshake when HS_RESP was handled; for the resumption when
//               RESUME_INIT was written, because application data written at connect time
//               rides in it as early data (connect(port, { early }) does that, and a rejected
//               early data is sent again as a DATA record, PROTOCOL.md 6.2). The byte figures
//               send no early data: the handshake bytes exclude it.
//   write(buf)  application bytes as DATA records, no application layer (PROTOCOL.md 12's
//               app header is not added, as TLS carries the bench's bytes bare). A DATA
//               record holds at most 1006 bytes (MAX_FRAME_LEN 1024), so a 1 KiB write is two
//               records, 1006 + 18 bytes, each with its own 20 bytes of framing, type and tag.
//
// Devices: makePairings() pairs a pool in the parent (pairDevice on a memory registry, state
// in a temporary directory removed at exit) and hands the state directory and the registry
// records to the gateway process in its config. Each connection takes a free device from the
// pool and gives it back at close, so no device has two connections at once and a resumed
// device always offers the newest ticket it has received (its generation chain stays far
// below the chain limit of 64: a pool of 64 devices and about 1,000 resumptions per run).
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

// the gateway's public entry points: the library, its wire constants, and the Node twin of the
// device (the initiator's handshake messages)
const [wire, gateway, peer] = await Promise.all([import("tether-gateway/wire"), import("tether-gateway"), import("tether-gateway/peer")])
const [kk, resume, x25519, random, stateMod, memory, pairMod] = [peer, peer, gateway, gateway, gateway, gateway, gateway]
const { FrameType, InnerType, MAX_RECORD_CONTENT, EARLY_ACCEPTED, RESUME_NONCE_LEN, HEADER_LEN, encodeFrame, FrameDecoder } = wire

/** Devices in the pool. */
export const POOL = 64

/**
 * Pairs `n` devices with a fresh gateway state (identity and ticket keys) in a temporary
 * directory; returns the gateway's config and the devices' side (secrets stay in memory).
 */
export async function makePairings(n = POOL) {
    const dir = mkdtempSync(join(tmpdir(), "tether-bench-"))
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
    const stateDir = join(dir, "state")
    const state = stateMod.initState(stateDir)
    const registry = new memory.MemoryRegistry()
    const now = Math.floor(Date.now() / 1000)
    const devices = []
    for (let i = 0; i < n; i++) {
        const p = await pairMod.pairDevice({ registry, ticketKeys: state.ticketKeys, name: `bench-${i}`, now })
        devices.push({
            deviceId: p.deviceId,
            s: p.s,
            psk: p.psk,
            gatewayPublic: state.identity.publicKey,
            ss: undefined, // DH(s, gateway static), computed at the device's first full handshake
            ticket: p.ticket, // the out-of-band ticket; replaced by every TICKET record received
            busy: false,
        })
    }
    const records = (await registry.listDevices()).map(r => ({ ...r, publicKey: r.publicKey.toString("hex"), psk: r.psk.toString("hex") }))
    // every device connects from 127.0.0.1: the per-source limit would count the whole bench
    const config = { stateDir, records, policy: { perSourceAttempts: 1e9 } }
    return { config, devices }
}

/** The least recently used free device: connections spread over the whole pool. */
function takeDevice(pool) {
    const i = pool.findIndex(x => !x.busy)
    if (i < 0) throw new Error("tether-peers: no free device in the pool")
    const [d] = pool.splice(i, 1)
    pool.push(d)
    d.busy = true
    return d
}

/**
 * One connection. `mode` "full" runs KKpsk2 (the device's ss cached per pairing, as on the
 * device); "resume" offers the device's newest ticket.
 */
function tetherConnect(port, dev, mode, opts = {}) {
    const raw = net.connect(port, "127.0.0.1")
    raw.setNoDelay(true)
    const decoder = new FrameDecoder()
    const frames = []
    const listeners = []
    let consumed = 0 // bytes of the frames handled so far
    let session
    let pending
    let early = opts.early
    let readyAt
    let draining = false
    let closed = false
    let settle
    let fail
    const ready = new Promise((resolve, reject) => {
        settle = resolve
        fail = reject
    })
    ready.catch(() => {})
    const connected = new Promise(r => raw.once("connect", () => r(performance.now())))

    const sendFrame = (type, body) => raw.write(encodeFrame(type, body))
    const records = (type, content) => Buffer.concat(session.encrypt(type, content).map(b => encodeFrame(FrameType.RECORD, b)))

    raw.once("connect", () => {
        if (mode === "full") {
            dev.ss ??= x25519.x25519(dev.s.privateKey, dev.gatewayPublic)
            const e = x25519.generateKeyPair()
            pending = kk.writeHsInit({ deviceId: dev.deviceId, s: dev.s, rs: dev.gatewayPublic, psk: dev.psk, ss: dev.ss }, e)
            sendFrame(FrameType.HS_INIT, pending.body)
        } else {
            pending = resume.writeResumeInit(dev.ticket, random.randomBytes(RESUME_NONCE_LEN), early)
            sendFrame(FrameType.RESUME_INIT, pending.body)
            readyAt = performance.now() // early data, if any, is on its way in this frame
        }
    })

    function handle(f) {
        consumed += HEADER_LEN + f.body.length
        if (session === undefined) {
            let r
            if (mode === "full" && f.type === FrameType.HS_RESP) {
                r = kk.readHsResp(pending, f.body)
                readyAt = performance.now()
            } else if (mode === "resume" && f.type === FrameType.RESUME_RESP) {
                r = resume.readResumeResp(pending, f.body)
            }
            if (r === undefined)
                throw new Error(
                    `tether-peers: ${mode} handshake failed (frame type ${f.type}${f.type === FrameType.REJECT ? `, code ${f.body[0]}` : ""})`
                )
            session = r.session
            // "If EARLY_ACCEPTED is clear and it sent early data, it sends the same data again"
            if (mode === "resume" && early !== undefined && (r.flags & EARLY_ACCEPTED) === 0) raw.write(records(InnerType.DATA, early))
            if (mode === "full" && early !== undefined) raw.write(records(InnerType.DATA, early))
            early = undefined
            settle(readyAt)
            return true // yield: let `await ready` read the counters before the TICKET is handled
        }
        if (f.type !== FrameType.RECORD) throw new Error(`tether-peers: frame type ${f.type} after the handshake`)
        const r = session.decrypt(f.body)
        if (r === undefined) throw new Error("tether-peers: a record failed to decrypt")
        if (r.type === InnerType.TICKET) dev.ticket = peer.decodeTicketContent(r.content) ?? dev.ticket
        else if (r.type === InnerType.DATA) for (const l of listeners) l(r.content)
        else if (r.type === InnerType.CLOSE) destroy()
        return false
    }

    function drain(sync = false) {
        draining = false
        try {
            while (frames.length > 0 && !closed) {
                if (handle(frames.shift()) && !sync) {
                    draining = true
                    setImmediate(drain)
                    return
                }
            }
        } catch (e) {
            fail(e)
            destroy()
        }
    }

    raw.on("data", chunk => {
        try {
            frames.push(...decoder.push(chunk))
        } catch (e) {
            fail(e)
            destroy()
            return
        }
        if (!draining) drain()
    })
    raw.on("error", e => fail(e))
    raw.on("close", () => {
        fail(new Error("tether-peers: connection closed during the handshake"))
        release()
    })

    function release() {
        dev.busy = false
    }
    function destroy() {
        if (closed) return
        closed = true
        raw.destroy()
        release()
    }

    return {
        raw: {
            get bytesWritten() {
                return raw.bytesWritten
            },
            get bytesRead() {
                return consumed
            },
        },
        connected,
        ready,
        write(buf) {
            const out = []
            for (let i = 0; i < buf.length || i === 0; i += MAX_RECORD_CONTENT)
                out.push(records(InnerType.DATA, buf.subarray(i, i + MAX_RECORD_CONTENT)))
            return raw.write(out.length === 1 ? out[0] : Buffer.concat(out))
        },
        waitDrain: () => new Promise(r => raw.once("drain", r)),
        onData: f => listeners.push(f),
        close() {
            drain(true) // a TICKET already received is kept for the device's next connection
            destroy()
        },
    }
}

/** What the compare rows of the Tether peers count (appended to their notes). */
const NOTES = {
    full: {
        bytes: "HS_INIT 60 + HS_RESP 51, framing included, counted in whole frames at the client",
        tickets: "the TICKET record (3 + 1 + 65 + 16): the gateway's first record after the handshake",
        rtt: "ready when HS_RESP is handled",
        rate: "the real gateway, connection log off: KKpsk2 (3 X25519 + 1 keygen; ss cached per pairing), TICKET minted, one DATA answered",
        tput: "bare DATA records, no app header; a 1 KiB write is two records (1006 + 18 B): MAX_FRAME_LEN is 1024",
    },
    resumed: {
        bytes: "RESUME_INIT 65 (no early data sent) + RESUME_RESP 32, framing included",
        tickets: "the next TICKET record, issued after every resumption",
        rtt: "0-RTT: the client may send from the moment RESUME_INIT goes out, its data riding in it as early data (the tether group's first-answer rows show the effect)",
        rate: "the real gateway, connection log off: ticket MAC, SymmetricState, no X25519, next TICKET minted, one DATA answered",
        tput: "bare DATA records, no app header; a 1 KiB write is two records (1006 + 18 B)",
    },
}

/** The two Tether peers, on one pool of paired devices each. */
export async function tetherPeers() {
    const full = await makePairings()
    const resumed = await makePairings()
    return [
        {
            name: "Tether, full handshake (KKpsk2)",
            notes: NOTES.full,
            server: { kind: "tether", config: full.config },
            connect: (port, opts) => tetherConnect(port, takeDevice(full.devices), "full", opts),
        },
        {
            name: "Tether, resumed (ticket, 0-RTT)",
            notes: NOTES.resumed,
            server: { kind: "tether", config: resumed.config },
            connect: (port, opts) => tetherConnect(port, takeDevice(resumed.devices), "resume", opts),
        },
    ]
}
