// The device's receiving half of the gateway's stream (PROTOCOL.md 12.1): "The receiver
// delivers a message only if its id is exactly one more than the last id it delivered from
// that stream; an id at or below it is a duplicate (dropped, acknowledged again); an id
// further ahead means this side lost its state for the stream: it forgets the stream and
// says so in a STREAM with `peer_stream_id` 0, which makes the gateway start a new stream; a
// gap again before anything was delivered since is a protocol error." The state (`stream_id`,
// `delivered`) lives in RAM for the life of the program and is reported in the device's
// STREAM after every handshake.
import { AppProtocolError } from "./codec"

/** What to do with an arriving sequenced message. */
export enum Arrival {
    /** the next one: deliver it */
    DELIVER = 1,
    /** at or below `delivered`: drop it and acknowledge again */
    DUPLICATE = 2,
    /** further ahead, the first time in this session: the stream is forgotten; send STREAM */
    LOST = 3,
    /** a message of the stream forgotten in this session: drop it, no ACK */
    IGNORE = 4,
}

/** The receiving half of the gateway's stream. */
export class InboundStream {
    /** the gateway's stream_id, 0 before its first STREAM */
    streamId = 0
    /** the highest id delivered from it */
    delivered = 0
    /** the gateway's STREAM arrived in this session */
    private synced = false
    /** a gap made this side forget the stream, and nothing was delivered since */
    private lost = false

    /** A new session: sequenced messages wait for the gateway's STREAM. */
    sessionStart(): void {
        this.synced = false
    }

    /**
     * The gateway's STREAM: "if the peer's stream_id differs from the one it was receiving,
     * it starts over at 0 for the new stream" (a restarted gateway).
     */
    peerStream(streamId: number): void {
        this.synced = true
        if (streamId !== this.streamId) {
            this.streamId = streamId
            this.delivered = 0
        }
    }

    /**
     * The verdict on a sequenced message; DELIVER also counts it as delivered, LOST forgets
     * the stream (stream_id 0, delivered 0) until the gateway's next STREAM.
     * @throws AppProtocolError on a gap again before anything was delivered since the last
     *     LOST (the gateway did not start its new stream at 1), or before the gateway's STREAM
     */
    arrive(id: number): Arrival {
        if (!this.synced) throw new AppProtocolError("sequenced message before STREAM")
        if (this.streamId === 0 && this.lost) return Arrival.IGNORE
        if (id <= this.delivered) return Arrival.DUPLICATE
        if (id !== this.delivered + 1) {
            if (this.lost) throw new AppProtocolError("id " + id + " after " + this.delivered)
            this.lost = true
            this.streamId = 0
            this.delivered = 0
            return Arrival.LOST
        }
        this.delivered = id
        this.lost = false
        return Arrival.DELIVER
    }
}
