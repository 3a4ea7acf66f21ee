// The Tether side of the TLS comparison (compare.mjs), measured exactly like the TLS peers
// (measure.mjs), against the real gateway in a child process (tether-server.mjs), in protocol
// version 2 (PROTOCOL.md):
//
//   Tether, full handshake (KKpsk2)   HS_INIT -> HS_RESP; the client's first record; the TICKET
//   Tether, resumed (ticket, 0-RTT)   RESUME_INIT -> RESUME_RESP; the client's first record (or
//                                     early data the gateway accepted); the TICKET
//
// The client is a lean one built on the gateway package's own initiator messages (writeHsInit,
// readHsResp, writeResumeInit, readResumeResp, obfuscateAge, Session, wire.js) on a plain socket,
// not TetherClient: the comparison needs the moment the handshake ends, and counts bytes in whole
// frames. It behaves as the device does (gateway-peer/peer/initiator.ts is the reference):
//
//   - full handshake: `ss` is computed once per pairing and the next ephemeral key pair with its
//     `es` = DH(e, s_gateway) while idle (at pairing, then after each full handshake, off the
//     critical path: PROTOCOL.md 4.3), so the client's critical path is ee and se; an ephemeral
//     serves one attempt. HS_INIT names the device by the pseudonym of its last TICKET, or by
//     pseudonym0 before it has one (4.4).
//   - resumption: RESUME_INIT carries the obfuscated age of the ticket (Date.now() since its TICKET
//     arrived, plus the ticket's age_add, 6.2) and an 8-byte nonce_i. A ticket of unknown age (the
//     out-of-band ticket from pairing) carries random bytes and no early data: a resumed peer's
//     prepare() gives every device of its pool a session ticket first, so the rows that send
//     early data have it accepted.
//   - tickets: the gateway issues one only when the session is confirmed, by the client's first
//     record or by early data it accepted (6.3). Each TICKET's ticket, resumption secret and next
//     pseudonym are stored with their arrival time (Date.now()) and used by the device's next
//     connection. A connection closed after its first record keeps its socket until the TICKET
//     has arrived, as a device keeps its session: no ticket is lost, so every resumption offers
//     the device's newest ticket and its early data is accepted (6.4).
//
// The bench fails loudly: a REJECT, an unexpected frame or TICKET, a record that fails to
// decrypt, a CLOSE or a connection closed by the gateway, a chain used up, or early data refused
// (EARLY_ACCEPTED clear: every connection that sends early data expects it accepted) fail the
// connection (its `ready` and `failure` reject) and the pool: its next connection throws, and
// finish() throws.
//
// What each measurement sees (the conn interface of measure.mjs):
//   raw         the socket's bytesWritten, and bytesRead counted in whole frames as the client
//               consumes them. The client handles the frame that ends the handshake, settles
//               `ready`, and handles the next frames only after a macrotask, so bytesRead at
//               `ready` is the handshake alone. The TICKET follows the client's first record:
//               measureBytes sends it by confirm() (an empty DATA record, 20 B: in the
//               application the device's STREAM, application data, so counted in neither
//               figure), and the TICKET record falls into "ticket bytes", as TLS's
//               NewSessionTicket does. Full: 60 + 51 = 111 B; resumed: 65 + 32 = 97 B; TICKET
//               record 93 B (3 + 1 + 73 + 16).
//   ready       settles when the handshake's last frame was handled (so the byte split above
//               is right). Its value is the time from which the client may send application
//               data: for the full handshake when HS_RESP was handled; for the resumption with a
//               ticket of known age when RESUME_INIT was written, because application data
//               written at connect time rides in it as early data (connect(port, { early })
//               does that); with a ticket of unknown age when RESUME_RESP was handled. The byte
//               figures send no early data: the handshake bytes exclude it.
//   write(buf)  application bytes as DATA records, no application layer (PROTOCOL.md 12's
//               app header is not added, as TLS carries the bench's bytes bare). A DATA
//               record holds at most 1006 bytes (MAX_FRAME_LEN 1024), so a 1 KiB write is two
//               records, 1006 + 18 bytes, each with its own 20 bytes of framing, type and tag.
//               The first record confirms the session: the TICKET comes before the answer.
//   confirm()   the empty first record above; returns the bytes it wrote (0 if a record went
//               out already). `ticket` settles when this connection's TICKET is stored;
//               `failure` rejects on the connection's first error; `capture` (with
//               connect(port, { capture: true })) holds every byte written and read and the
//               fields the client put in its first frame, for the byte budget (tetherBudget).
//
// Devices: makePairings() pairs a pool in the parent (pairDevice on a memory registry, state
// in a temporary directory removed at exit) and hands the state directory and the registry
// records to the gateway process in its config. Each connection takes a free device from the
// pool and gives it back at close, so no device has two connections at once and a resumed
// device always offers the newest ticket it has received. Its chain (6.4: at most chainLimit - 1
// = 63 resumptions between two full handshakes) stays well below the limit, and the client
// refuses to go past it: a pool of 64 devices and at most about 1,600 resumptions per pool.
import { mkdtempSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startServerProcess } from "./measure.mjs"

// the gateway's public entry points: the library, its wire constants, and the Node twin of the
// device (the initiator's handshake messages)
const [wire, gateway, peer] = await Promise.all([import("tether-gateway/wire"), import("tether-gateway"), import("tether-gateway/peer")])
const {
    FrameType,
    InnerType,
    MAX_RECORD_CONTENT,
    EARLY_ACCEPTED,
    NONCE_I_LEN,
    HEADER_LEN,
    LEN_SIZE,
    CHAIN_LIMIT,
    VERSION,
    encodeFrame,
    FrameDecoder,
    codeName,
} = wire

/** Devices in a pool. */
export const POOL = 64

/** Resumptions a chain allows at the gateway's default chainLimit (6.4: issued - full < chainLimit - 1). */
const CHAIN_RESUMPTIONS = CHAIN_LIMIT - 1

/** How long a closed connection waits for the TICKET its first record is owed. */
const TICKET_WAIT_MS = 5000

/**
 * Idle work of a device (4.3): ss once per pairing, the next ephemeral and its es. A pool made
 * with `ephemerals: K` (the perf group's stubbed-crypto floor only) cycles K ephemerals made once
 * for all its devices, so that a gateway whose X25519 is memoized (lib/x25519-stub.mjs) sees a
 * finite set of DH inputs: never a device's behaviour, a bench device only.
 */
function prepare(dev) {
    dev.ss ??= gateway.x25519(dev.s.privateKey, dev.gatewayPublic)
    if (dev.next === undefined) {
        const pool = dev.ephemerals
        if (pool !== undefined) {
            dev.next = pool.list[pool.cursor++ % pool.list.length]
            return
        }
        const e = gateway.generateKeyPair()
        dev.next = { e, es: gateway.x25519(e.privateKey, dev.gatewayPublic) }
    }
}

/** The pools' state directories, removed at exit. */
const tempDirs = []

/** Buffers as { hex } for the gateway process's config (IPC is JSON). */
const toJson = r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Buffer.isBuffer(v) ? { hex: v.toString("hex") } : v]))

/**
 * Pairs `n` devices with a fresh gateway state (identity and ticket keys) in a temporary
 * directory; returns the gateway's config and the pool of devices (secrets stay in memory).
 */
export async function makePairings(n = POOL, opts = {}) {
    const dir = mkdtempSync(join(tmpdir(), "tether-bench-"))
    if (tempDirs.length === 0) process.once("exit", () => tempDirs.forEach(d => rmSync(d, { recursive: true, force: true })))
    tempDirs.push(dir)
    const stateDir = join(dir, "state")
    const state = gateway.initState(stateDir)
    const registry = new gateway.MemoryRegistry()
    const now = Math.floor(Date.now() / 1000)
    const devices = []
    const ephemerals =
        opts.ephemerals === undefined
            ? undefined
            : {
                  cursor: 0,
                  list: Array.from({ length: opts.ephemerals }, () => {
                      const e = gateway.generateKeyPair()
                      return { e, es: gateway.x25519(e.privateKey, state.identity.publicKey) }
                  }),
              }
    for (let i = 0; i < n; i++) {
        const p = await gateway.pairDevice({ registry, ticketKeys: state.ticketKeys, name: `bench-${i}`, now })
        const dev = {
            deviceId: p.deviceId,
            s: p.s,
            psk: p.psk,
            gatewayPublic: state.identity.publicKey,
            pseudonym0: gateway.pseudonym0(p.psk),
            ss: undefined, // DH(s, gateway static): idle work, once per pairing
            next: undefined, // { e, es }: the next full handshake's ephemeral and its es, idle work
            // the out-of-band ticket: no pseudonym (pseudonym0 is used) and no arrival time (its
            // age is unknown: no early data on it); replaced by every TICKET record received
            ticket: { ticket: p.ticket.ticket, secret: p.ticket.secret, pseudonym: undefined, receivedAt: undefined },
            chain: 0, // tickets issued in the ticket's chain after its first: resumptions confirmed
            busy: false,
            ephemerals,
        }
        prepare(dev)
        devices.push(dev)
    }
    const records = (await registry.listDevices()).map(toJson)
    // every device connects from 127.0.0.1: the per-source limit would count the whole bench
    const config = { stateDir, records, policy: { perSourceAttempts: 1e9 }, registry: opts.registry, stubX25519: opts.stubX25519 }
    return { config, pool: { devices, error: undefined, closing: new Set() } }
}

/** The least recently used free device: connections spread over the whole pool. */
function takeDevice(pool) {
    if (pool.error) throw pool.error
    const i = pool.devices.findIndex(x => !x.busy)
    if (i < 0) throw new Error("tether-peers: no free device in the pool")
    const [d] = pool.devices.splice(i, 1)
    pool.devices.push(d)
    d.busy = true
    return d
}

/**
 * One connection. `mode` "full" runs KKpsk2 (ss and es prepared, as on the device); "resume"
 * offers the device's newest ticket. opts.early: a DATA content sent as early data (resume; it
 * must be accepted) or as the first record (full); opts.capture: keep the bytes both ways.
 */
function tetherConnect(port, pool, dev, mode, opts = {}) {
    const raw = net.connect(port, "127.0.0.1")
    raw.setNoDelay(true)
    const decoder = new FrameDecoder()
    const frames = []
    const listeners = []
    const capture = opts.capture ? { out: [], in: [], fields: {} } : undefined
    let consumed = 0 // bytes of the frames handled so far
    let session
    let pending
    let early = opts.early
    let readyAt
    let draining = false
    let closed = false // the socket is gone
    let closing = false // close() was called
    let confirmed = false // the first record went out, or early data was accepted: a TICKET is owed (6.3)
    let ticketed = false // this connection's TICKET is stored
    let failed
    let settle, fail, failWith, gotTicket
    const ready = new Promise((resolve, reject) => {
        settle = resolve
        fail = reject
    })
    ready.catch(() => {})
    const failure = new Promise((_, reject) => (failWith = reject))
    failure.catch(() => {})
    const ticket = new Promise(r => (gotTicket = r))
    const connected = new Promise(r => raw.once("connect", () => r(performance.now())))

    const send = buf => {
        capture?.out.push(buf)
        return raw.write(buf)
    }
    const records = (type, content) => Buffer.concat(session.encrypt(type, content).map(b => encodeFrame(FrameType.RECORD, b)))

    /** The connection's first error: the connection and its pool fail. */
    function error(e) {
        if (failed !== undefined) return
        failed = e
        pool.error ??= e
        fail(e)
        failWith(e)
        destroy()
    }

    raw.once("connect", () => {
        try {
            if (mode === "full") {
                // es was prepared while idle with this ephemeral; one attempt only (4.3)
                if (dev.next === undefined) prepare(dev) // a device that had no idle time
                const { e, es } = dev.next
                dev.next = undefined
                const pseudonym = dev.ticket.pseudonym ?? dev.pseudonym0
                pending = peer.writeHsInit({ pseudonym, s: dev.s, rs: dev.gatewayPublic, psk: dev.psk, ss: dev.ss }, e, es)
                if (capture) capture.fields = { pseudonym, e: e.publicKey }
                send(encodeFrame(FrameType.HS_INIT, pending.body))
            } else {
                const t = dev.ticket
                if (dev.chain >= CHAIN_RESUMPTIONS)
                    throw new Error(
                        `tether-peers: the device's chain has issued ${dev.chain + 1} tickets, the most it may (6.4): the pool is too small for the run`
                    )
                if (early !== undefined && t.receivedAt === undefined)
                    throw new Error(
                        "tether-peers: early data asked for on a ticket of unknown age (the out-of-band ticket): prepare() the peer first"
                    )
                const ageMs = t.receivedAt === undefined ? undefined : Math.max(0, Date.now() - t.receivedAt)
                const age = peer.obfuscateAge(t.secret, ageMs, gateway.randomBytes)
                const nonceI = gateway.randomBytes(NONCE_I_LEN)
                pending = peer.writeResumeInit(t, dev.deviceId, age, nonceI, early)
                if (capture) capture.fields = { ticket: t.ticket, secret: t.secret, age, ageMs, nonceI }
                send(encodeFrame(FrameType.RESUME_INIT, pending.body))
                // early data, if any, is on its way in this frame; with a ticket of unknown age
                // the client may send only once RESUME_RESP is handled
                if (t.receivedAt !== undefined) readyAt = performance.now()
            }
        } catch (e) {
            error(e)
        }
    })

    function handle(f) {
        consumed += HEADER_LEN + f.body.length
        if (session === undefined) {
            if (f.type === FrameType.REJECT) throw new Error(`tether-peers: ${mode} handshake rejected: ${codeName(f.body[0])}`)
            let r
            if (mode === "full" && f.type === FrameType.HS_RESP) {
                r = peer.readHsResp(pending, f.body)
                readyAt = performance.now()
            } else if (mode === "resume" && f.type === FrameType.RESUME_RESP) {
                r = peer.readResumeResp(pending, f.body)
                readyAt ??= performance.now()
            } else throw new Error(`tether-peers: frame type ${f.type} in answer to the ${mode} handshake`)
            if (r === undefined) throw new Error(`tether-peers: bad ${mode === "full" ? "HS_RESP" : "RESUME_RESP"}`)
            session = r.session
            if (mode === "resume") {
                const accepted = (r.flags & EARLY_ACCEPTED) !== 0
                if (early !== undefined && !accepted)
                    throw new Error("tether-peers: early data refused (EARLY_ACCEPTED clear) where the run expects it accepted")
                // stricter than a device, which ignores the bit then (6.2): the gateway sets it
                // only for early data it delivered
                if (early === undefined && accepted) throw new Error("tether-peers: EARLY_ACCEPTED set without early data")
                // accepted early data confirms the session: the TICKET follows RESUME_RESP (6.3)
                if (accepted) confirmed = true
            } else {
                // payload1 is empty in version 2: application data goes as the first record
                if (early !== undefined) {
                    send(records(InnerType.DATA, early))
                    confirmed = true
                }
                setImmediate(() => prepare(dev)) // the next ephemeral and its es, off the critical path
            }
            early = undefined
            settle(readyAt)
            return true // yield: let `await ready` read the counters before the next frame is handled
        }
        if (f.type !== FrameType.RECORD) throw new Error(`tether-peers: frame type ${f.type} after the handshake`)
        const r = session.decrypt(f.body)
        if (r === undefined) throw new Error("tether-peers: a record failed to decrypt")
        if (r.type === InnerType.TICKET) {
            if (!confirmed) throw new Error("tether-peers: a TICKET before the session was confirmed (6.3)")
            if (ticketed) throw new Error("tether-peers: a second TICKET on one session")
            const t = peer.decodeTicketContent(r.content)
            if (t === undefined) throw new Error("tether-peers: a malformed TICKET")
            dev.ticket = { ...t, receivedAt: Date.now() } // the start of its age (6.2)
            dev.chain = mode === "full" ? 0 : dev.chain + 1
            ticketed = true
            gotTicket()
            if (closing) destroy()
        } else if (r.type === InnerType.DATA) for (const l of listeners) l(r.content)
        else if (r.type === InnerType.CLOSE) throw new Error(`tether-peers: the gateway closed the session (${codeName(r.content[0])})`)
        return false // KEY_UPDATE: applied by the session
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
            error(e)
        }
    }

    raw.on("data", chunk => {
        capture?.in.push(chunk)
        try {
            frames.push(...decoder.push(chunk))
        } catch (e) {
            error(e)
            return
        }
        if (!draining) drain()
    })
    raw.on("error", e => {
        if (!closed) error(e)
    })
    raw.on("close", () => {
        if (!closed)
            error(
                new Error(
                    `tether-peers: the gateway closed the connection (${session === undefined ? "during the handshake" : "after it"})`
                )
            )
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
        failure,
        ticket,
        get capture() {
            return capture && { out: Buffer.concat(capture.out), in: Buffer.concat(capture.in), fields: capture.fields }
        },
        confirm() {
            if (confirmed || closed) return 0
            const rec = records(InnerType.DATA, Buffer.alloc(0))
            send(rec)
            confirmed = true
            return rec.length
        },
        write(buf) {
            const out = []
            for (let i = 0; i < buf.length || i === 0; i += MAX_RECORD_CONTENT)
                out.push(records(InnerType.DATA, buf.subarray(i, i + MAX_RECORD_CONTENT)))
            confirmed = true
            return send(out.length === 1 ? out[0] : Buffer.concat(out))
        },
        waitDrain: () => new Promise(r => raw.once("drain", r)),
        onData: f => listeners.push(f),
        close() {
            if (closing || closed) return
            closing = true
            drain(true) // frames already received: a TICKET among them is stored
            if (closed) return
            if (confirmed && !ticketed) {
                // the TICKET its first record is owed is on its way: keep the socket until it
                // is stored, as the device keeps its session (the device stays busy meanwhile)
                const timer = setTimeout(
                    () => error(new Error(`tether-peers: no TICKET within ${TICKET_WAIT_MS} ms of the first record`)),
                    TICKET_WAIT_MS
                )
                const done = new Promise(r => raw.once("close", r)).then(() => {
                    clearTimeout(timer)
                    pool.closing.delete(done)
                })
                pool.closing.add(done)
                return
            }
            destroy()
        },
    }
}

/** What the compare rows of the Tether peers count (appended to their notes). */
const NOTES = {
    full: {
        bytes: "HS_INIT 60 + HS_RESP 51, framing included, counted in whole frames at the client",
        tickets:
            "the TICKET record (3 + 1 + 73 + 16: ticket, resumption secret, next pseudonym), issued once the client's first record (an empty DATA record here, 20 B, counted in neither figure) reached the gateway",
        rtt: "ready when HS_RESP is handled",
        rate: 'the real gateway, connection log off: KKpsk2 (3 X25519 + 1 keygen on the gateway; ss cached per pairing), the session confirmed by the client\'s DATA "!", TICKET minted, "!" answered',
        tput: "bare DATA records, no app header; a 1 KiB write is two records (1006 + 18 B): MAX_FRAME_LEN is 1024",
    },
    resumed: {
        bytes: "RESUME_INIT 65 (no early data sent) + RESUME_RESP 32, framing included",
        tickets: "the next TICKET record (93 B), issued after the client's first record, as after a full handshake",
        rtt: "0-RTT: with a ticket of known age the client may send from the moment RESUME_INIT goes out, its data riding in it as early data (the tether group's first-answer rows show the effect)",
        rate: 'the real gateway, connection log off: ticket unsealed (one AES block) and MAC checked, SymmetricState, no X25519, the session confirmed by the client\'s DATA "!", next TICKET minted, "!" answered',
        tput: "bare DATA records, no app header; a 1 KiB write is two records (1006 + 18 B)",
    },
}

/**
 * The two Tether peers, on one pool of paired devices each (`n` devices). The resumed peer's
 * prepare(port) resumes every device once with a first record, so each holds a session ticket
 * whose arrival time it knows (its early data is then accepted); finish() waits for the TICKETs
 * still on their way and throws the pool's first error.
 */
export async function tetherPeers(n = POOL, opts = {}) {
    const full = await makePairings(n, opts)
    const resumed = await makePairings(n, opts)
    const finish = pool => async () => {
        await Promise.all([...pool.closing])
        if (pool.error) throw pool.error
    }
    const resumedPeer = {
        name: "Tether, resumed (ticket, 0-RTT)",
        notes: NOTES.resumed,
        server: { kind: "tether", config: resumed.config },
        connect: (port, opts) => tetherConnect(port, resumed.pool, takeDevice(resumed.pool), "resume", opts),
        async prepare(port) {
            for (let i = 0; i < resumed.pool.devices.length; i++) {
                const c = resumedPeer.connect(port)
                await c.ready
                c.confirm()
                await Promise.race([c.ticket, c.failure])
                c.close()
            }
            await resumedPeer.finish()
        },
        finish: finish(resumed.pool),
    }
    return [
        {
            name: "Tether, full handshake (KKpsk2)",
            notes: NOTES.full,
            server: { kind: "tether", config: full.config },
            connect: (port, opts) => tetherConnect(port, full.pool, takeDevice(full.pool), "full", opts),
            finish: finish(full.pool),
        },
        resumedPeer,
    ]
}

/** Whole frames of a byte stream, cut by their length fields (PROTOCOL.md 2.1). */
function splitFrames(bytes) {
    const out = []
    for (let o = 0; o + LEN_SIZE <= bytes.length;) {
        const end = o + LEN_SIZE + bytes.readUInt16BE(o)
        out.push({ type: bytes[o + LEN_SIZE], bytes: bytes.subarray(o, end) })
        o = end
    }
    return out
}

/** Where `value` sits in `frame`; throws if it does not, or sits there twice. */
function locate(frame, value, what) {
    const i = frame.indexOf(value)
    if (i < 0 || frame.indexOf(value, i + 1) >= 0)
        throw new Error(`tetherBudget: ${what} ${i < 0 ? "not found" : "found twice"} in its frame`)
    return i
}

/**
 * One connection of a byte budget sample: the handshake, the client's first record, the TICKET;
 * returns the frames each way as the client's socket wrote and read them, and its fields.
 */
async function budgetConnection(p, port) {
    const c = p.connect(port, { capture: true })
    await c.ready
    c.confirm()
    await Promise.race([c.ticket, c.failure])
    c.close()
    const { out, in: inb, fields } = c.capture
    return { out: splitFrames(out), in: splitFrames(inb), fields }
}

function expectTypes(frames, types, what) {
    const got = frames.map(f => f.type)
    if (got.length !== types.length || got.some((t, i) => t !== types[i]))
        throw new Error(`tetherBudget: ${what} frames ${JSON.stringify(got)}, expected ${JSON.stringify(types)}`)
}

/**
 * The version 2 byte budget, measured from the frames on the wire: full handshake, resume
 * exchange and TICKET record sizes, and the HS_INIT/RESUME_INIT fields version 2 changed
 * (pseudonym, obfuscated_age, nonce_i), each located in the captured frame by the value the
 * client put there. Both peers on pools of 2 devices, so a device runs several connections
 * (its first full handshake names it by pseudonym0, the next ones by its TICKETs' pseudonyms).
 */
export async function tetherBudget(ctx, runs = 6) {
    const { median, spread } = ctx
    const [full, resumed] = await tetherPeers(2)
    const f = { init: [], resp: [], ticket: [], pseudonym: [], tag: [], seen: new Set(), p0: 0 }
    const r = { init: [], resp: [], ticket: [], age: [], nonce: [], ages: [], layout: true }
    const srvFull = await startServerProcess(full.server)
    try {
        for (let i = 0; i < runs; i++) {
            const s = await budgetConnection(full, srvFull.port)
            expectTypes(s.out, [FrameType.HS_INIT, FrameType.RECORD], "full handshake, client")
            expectTypes(s.in, [FrameType.HS_RESP, FrameType.RECORD], "full handshake, gateway")
            const init = s.out[0].bytes
            const pOff = locate(init, s.fields.pseudonym, "the pseudonym")
            const eOff = locate(init, s.fields.e, "the ephemeral key")
            if (init[pOff - 1] !== VERSION || pOff - 1 !== HEADER_LEN)
                throw new Error("tetherBudget: HS_INIT does not open with version, pseudonym")
            f.init.push(init.length)
            f.resp.push(s.in[0].bytes.length)
            f.ticket.push(s.in[1].bytes.length)
            f.pseudonym.push(eOff - pOff)
            f.tag.push(init.length - eOff - s.fields.e.length) // EncryptAndHash of the empty payload1
            f.seen.add(s.fields.pseudonym.toString("hex"))
            if (full.server.config.records.some(d => d.pseudonym0.hex === s.fields.pseudonym.toString("hex"))) f.p0++
        }
        await full.finish()
    } finally {
        await srvFull.stop()
    }
    const tag = median(f.tag)
    const srvRes = await startServerProcess(resumed.server)
    try {
        await resumed.prepare(srvRes.port) // session tickets of known age
        for (let i = 0; i < runs; i++) {
            const s = await budgetConnection(resumed, srvRes.port)
            expectTypes(s.out, [FrameType.RESUME_INIT, FrameType.RECORD], "resumption, client")
            expectTypes(s.in, [FrameType.RESUME_RESP, FrameType.RECORD], "resumption, gateway")
            const init = s.out[0].bytes
            const tOff = locate(init, s.fields.ticket, "the ticket")
            const aOff = locate(init, s.fields.age, "obfuscated_age")
            const nOff = locate(init, s.fields.nonceI, "nonce_i")
            if (init[tOff - 1] !== VERSION || tOff - 1 !== HEADER_LEN || aOff !== tOff + s.fields.ticket.length) r.layout = false
            r.init.push(init.length)
            r.resp.push(s.in[0].bytes.length)
            r.ticket.push(s.in[1].bytes.length)
            r.age.push(nOff - aOff)
            r.nonce.push(init.length - tag - nOff) // up to EncryptAndHash of the empty early data
            // the age the field says, with the ticket's age_add (6.2), is the one the client measured
            const decoded = (s.fields.age.readUInt32BE(0) - gateway.ageAdd(s.fields.secret) + 2 ** 32) % 2 ** 32
            if (decoded !== s.fields.ageMs)
                throw new Error(`tetherBudget: obfuscated_age says ${decoded} ms, the client measured ${s.fields.ageMs}`)
            r.ages.push(decoded)
        }
        if (!r.layout) throw new Error("tetherBudget: RESUME_INIT does not open with version, ticket, obfuscated_age")
        await resumed.finish()
    } finally {
        await srvRes.stop()
    }
    const sum = (a, b) => a.map((x, i) => x + b[i])
    const fullHs = sum(f.init, f.resp)
    const resumeHs = sum(r.init, r.resp)
    const tickets = [...f.ticket, ...r.ticket]
    const how = `${runs} connections of each kind, 2 devices per pool; whole frames cut by their length fields from the bytes the client's socket wrote and read`
    return [
        {
            name: "Tether v2 byte budget: full handshake (HS_INIT + HS_RESP)",
            value: median(fullHs),
            unit: "B",
            note: `${how}, ${spread(fullHs)}; HS_INIT ${median(f.init)} + HS_RESP ${median(f.resp)} (PROTOCOL.md 4.2: 111)`,
        },
        {
            name: "Tether v2 byte budget: resume exchange (RESUME_INIT + RESUME_RESP, no early data)",
            value: median(resumeHs),
            unit: "B",
            note: `same connections, ${spread(resumeHs)}; RESUME_INIT ${median(r.init)} + RESUME_RESP ${median(r.resp)} (6.2: 97)`,
        },
        {
            name: "Tether v2 byte budget: TICKET record",
            value: median(tickets),
            unit: "B",
            note: `the RECORD frame the gateway sent after the client's first record, ${spread(tickets)}: after a full handshake ${median(f.ticket)}, after a resumption ${median(r.ticket)} (6.3: 93, content ticket 33 + secret 32 + next_pseudonym 8)`,
        },
        {
            name: "Tether v2 byte budget: HS_INIT pseudonym field",
            value: median(f.pseudonym),
            unit: "B",
            note: `located in each captured HS_INIT: from the pseudonym the client sent (right after the version byte) to its ephemeral key, ${spread(f.pseudonym)}; ${f.p0} of ${runs} named the device by pseudonym0 (its first full handshake), the others by their last TICKET's next_pseudonym; ${f.seen.size} distinct pseudonyms in ${runs} connections (4.4: 8)`,
        },
        {
            name: "Tether v2 byte budget: RESUME_INIT obfuscated_age field",
            value: median(r.age),
            unit: "B",
            note: `located in each captured RESUME_INIT: from the obfuscated age the client sent (right after the ticket) to its nonce_i, ${spread(r.age)}; with the ticket's age_add it decodes to the age the client measured (${spread(r.ages)} ms since the TICKET arrived) (6.2: 4)`,
        },
        {
            name: "Tether v2 byte budget: RESUME_INIT nonce_i field",
            value: median(r.nonce),
            unit: "B",
            note: `located in each captured RESUME_INIT: from the nonce_i the client sent to the AEAD tag of the empty early data (${tag} B, measured as what follows e in the captured HS_INITs: the tag of the empty payload1), ${spread(r.nonce)} (6.2: 8)`,
        },
    ]
}
