// The seam between protocol code and the network: a connection that carries whole Tether
// frames (./frame.ts). FramedSocket is the one on the device; MemoryTransport is its
// in-memory twin for tests. Protocol code (../tether/client.ts) sees only this interface and
// gets its connections from an injected Connector, so its state machine runs in tests
// without a socket.

/** One received frame. */
export interface Frame {
    /** The type byte, 0..255. */
    type: number
    /** The body (may be empty), at most MAX_FRAME - 1 bytes. */
    body: Buffer
}

/** A connection carrying frames both ways. */
export interface Transport {
    /**
     * Sends one frame.
     * @throws RangeError on a bad type or size; Error when the connection is closed
     */
    sendFrame(type: number, body: Buffer): Promise<void>
    /**
     * Receives the next frame.
     * @param timeoutMs how long to wait; forever when omitted
     * @returns the frame, `undefined` on timeout, `null` when the peer closed between frames
     * @throws Error on a framing violation, a connection that ended inside a frame, or use
     *     after close()
     */
    recvFrame(timeoutMs?: number): Promise<Frame | undefined | null>
    /** Closes the connection; idempotent. */
    close(): void
    /** True while frames can be sent. */
    isOpen(): boolean
}

/** Where to connect and how long to wait for the connection to open. */
export interface ConnectOptions {
    /** Host name or IP address of the gateway. */
    host: string
    /** TCP port, 1..65535. */
    port: number
    /** How long to wait for the connection to open. */
    timeoutMs?: number
}

/** Opens a Transport; the client's default is FramedSocket.connect. */
export type Connector = (options: ConnectOptions) => Promise<Transport>
