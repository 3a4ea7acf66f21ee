// Noise's DH functions (revision 34 section 4.1) as the handshake code receives them: an object,
// injected so that tests count the scalar multiplications (a full handshake costs two on its
// critical path, ee and se, once the ephemeral and its es were prepared while idle; a
// resumption none) and vectors can be reproduced. The twin of the gateway's
// gateway-peer/src/noise/dh.ts: the same method names, async here (the VM's X25519 yields,
// src/crypto/x25519.ts), synchronous on the gateway.

/** An X25519 key pair. */
export interface KeyPair {
    privateKey: Buffer
    publicKey: Buffer
}

/**
 * The DH functions. x25519 must reject an all-zero output (PROTOCOL.md 1) by throwing.
 * Injected so that tests can count calls and vectors can be reproduced.
 */
export interface Dh {
    /** DH(scalar, u): X25519 of a private scalar and a public u-coordinate. */
    x25519(scalar: Buffer, u: Buffer): Promise<Buffer>
    /** The public key of a private scalar. */
    x25519Base(scalar: Buffer): Promise<Buffer>
}
