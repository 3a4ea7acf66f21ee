// The entry point `tether-gateway/reference`: a generic Noise HandshakeState with its patterns,
// Noise's AESGCM and the cacophony runner. Not part of the shipped gateway: it exists to check
// the gateway's Noise layers (CipherState, SymmetricState) against published vectors, and the
// KKpsk2 composition in src/session against a straightforward HandshakeState.
export { AESGCM } from "./aesgcm.js"
// the cipher function Tether ships, so the reference runs the same KKpsk2 as the gateway
export { AESCCM } from "../src/noise/cipher.js"
export { runCacophony, runCacophonyVector } from "./cacophony.js"
export type { CacophonyFile, CacophonyReport, CacophonyVector, VectorOutcome } from "./cacophony.js"
export { HandshakeState } from "./handshake-state.js"
export type { HandshakeOptions, HandshakeResult } from "./handshake-state.js"
export { lookupPattern } from "./patterns.js"
export type { HandshakePattern, Token } from "./patterns.js"
