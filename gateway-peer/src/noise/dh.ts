// Noise's DH functions (revision 34 section 4.1) as the handshake code receives them: an object,
// injected so that tests count the scalar multiplications (an unknown device must cost none)
// and vectors can be reproduced. The twin of the device's src/noise/dh.ts: the same method
// names, synchronous here (node:crypto X25519, crypto/x25519.ts), async on the device.

/**
 * The DH functions. x25519 must reject an all-zero output (PROTOCOL.md 1) by throwing.
 * Injected so that tests can count calls and vectors can be reproduced.
 */
export interface Dh {
    /** DH(scalar, u): X25519 of a private scalar and a public u-coordinate. */
    x25519(scalar: Buffer, u: Buffer): Buffer
    /** The public key of a private scalar. */
    x25519Base(scalar: Buffer): Buffer
}
