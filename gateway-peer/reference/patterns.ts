// Noise handshake patterns (revision 34 section 7) as data, and the psk modifiers of
// section 9.4. Tether ships KKpsk2 (and KK for the plain case); the other rows are the
// one-way (7.4) and fundamental interactive (7.5) patterns, kept because each is one line of
// data and the cacophony vectors check every one of them, which exercises every token and
// every psk position through the same code. The deferred patterns (7.6: NK1, X1X, ...) are
// not listed: they add no new token semantics and Tether uses none of them.

/** A token of a message pattern (section 7.1). */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk"

/** A handshake pattern: pre-messages and message patterns, initiator first. */
export interface HandshakePattern {
    /** the name section of the protocol name, e.g. "KKpsk2" */
    readonly name: string
    /** the initiator's pre-message ("-> s" is ["s"]) */
    readonly preInitiator: readonly "s"[]
    /** the responder's pre-message ("<- s" is ["s"]) */
    readonly preResponder: readonly "s"[]
    /** message patterns; even indices are sent by the initiator */
    readonly messages: readonly (readonly Token[])[]
    /** whether the pattern is one-way (section 7.4): after it, only the initiator sends */
    readonly oneWay: boolean
}

type Row = readonly [pre: readonly ("->s" | "<-s")[], messages: readonly (readonly Token[])[]]

// Comments give each pattern as the spec prints it.
const BASE = {
    // N:  <- s  ...  -> e, es
    N: [["<-s"], [["e", "es"]]],
    // K:  -> s  <- s  ...  -> e, es, ss
    K: [["->s", "<-s"], [["e", "es", "ss"]]],
    // X:  <- s  ...  -> e, es, s, ss
    X: [["<-s"], [["e", "es", "s", "ss"]]],
    // NN: -> e  <- e, ee
    NN: [[], [["e"], ["e", "ee"]]],
    // NK: <- s  ...  -> e, es  <- e, ee
    NK: [
        ["<-s"],
        [
            ["e", "es"],
            ["e", "ee"],
        ],
    ],
    // NX: -> e  <- e, ee, s, es
    NX: [[], [["e"], ["e", "ee", "s", "es"]]],
    // KN: -> s  ...  -> e  <- e, ee, se
    KN: [["->s"], [["e"], ["e", "ee", "se"]]],
    // KK: -> s  <- s  ...  -> e, es, ss  <- e, ee, se
    KK: [
        ["->s", "<-s"],
        [
            ["e", "es", "ss"],
            ["e", "ee", "se"],
        ],
    ],
    // KX: -> s  ...  -> e  <- e, ee, se, s, es
    KX: [["->s"], [["e"], ["e", "ee", "se", "s", "es"]]],
    // XN: -> e  <- e, ee  -> s, se
    XN: [[], [["e"], ["e", "ee"], ["s", "se"]]],
    // XK: <- s  ...  -> e, es  <- e, ee  -> s, se
    XK: [
        ["<-s"],
        [
            ["e", "es"],
            ["e", "ee"],
            ["s", "se"],
        ],
    ],
    // XX: -> e  <- e, ee, s, es  -> s, se
    XX: [[], [["e"], ["e", "ee", "s", "es"], ["s", "se"]]],
    // IN: -> e, s  <- e, ee, se
    IN: [
        [],
        [
            ["e", "s"],
            ["e", "ee", "se"],
        ],
    ],
    // IK: <- s  ...  -> e, es, s, ss  <- e, ee, se
    IK: [
        ["<-s"],
        [
            ["e", "es", "s", "ss"],
            ["e", "ee", "se"],
        ],
    ],
    // IX: -> e, s  <- e, ee, se, s, es
    IX: [
        [],
        [
            ["e", "s"],
            ["e", "ee", "se", "s", "es"],
        ],
    ],
} as const satisfies Record<string, Row>

/** The base patterns this implementation supports. */
export type BasePatternName = keyof typeof BASE

function isBase(name: string): name is BasePatternName {
    return Object.prototype.hasOwnProperty.call(BASE, name)
}

const NAME = /^([A-Z]+)((?:psk\d)(?:\+psk\d)*)?$/

/**
 * The pattern for a name section such as "KK", "KKpsk2" or "XXpsk0+psk3", or undefined if
 * the base pattern is not supported. Section 9.4: "The modifier psk0 places a "psk" token at
 * the beginning of the first handshake message. The modifiers psk1, psk2, etc., place a
 * "psk" token at the end of the first, second, etc., handshake message."
 */
export function lookupPattern(name: string): HandshakePattern | undefined {
    const m = NAME.exec(name)
    const base = m?.[1]
    if (m === null || base === undefined || !isBase(base)) return undefined
    const [pre, msgs] = BASE[base]
    const messages: Token[][] = msgs.map(tokens => [...tokens])
    for (const mod of (m[2] ?? "").split("+").filter(s => s !== "")) {
        const i = Number(mod.slice(3))
        if (i === 0) messages[0]?.unshift("psk")
        else {
            const target = messages[i - 1]
            if (target === undefined) return undefined // psk placed after a message that does not exist
            target.push("psk")
        }
    }
    return {
        name,
        preInitiator: pre.some(p => p === "->s") ? ["s"] : [],
        preResponder: pre.some(p => p === "<-s") ? ["s"] : [],
        messages,
        oneWay: msgs.length === 1,
    }
}
