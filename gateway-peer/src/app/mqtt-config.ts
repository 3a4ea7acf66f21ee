// The "mqtt" section of the serve configuration (PROTOCOL.md 12.3), and the topic templates:
//
//     { "mqtt": { "url": "mqtt://127.0.0.1:1883", "topicTemplate": "tether/{device}/{topic}",
//                 "commandTemplate": "tether/{device}/cmd/{topic}", "qos": 1,
//                 "protocolVersion": 4, "envelope": "json", "clientId": "tether-node-a",
//                 "shareGroup": "tether", "publishTimeoutMs": 10000,
//                 "usernameFile": "mqtt-user", "passwordFile": "mqtt-password",
//                 "ca": "ca.pem", "cert": "client.pem", "key": "client-key.pem" } }
//
// No import of the mqtt client here: parsing a configuration file must not load it.

/** The parsed "mqtt" section. File paths are as written (the caller resolves them). */
export interface MqttConfig {
    /** mqtt:// or mqtts://; `serve --mqtt URL` replaces it */
    readonly url?: string
    /** where a device's PUBLISH goes: {device} and {topic} each a whole level */
    readonly topicTemplate: string
    /** what the gateway subscribes to for messages to devices: {device} a level, {topic} the last */
    readonly commandTemplate: string
    /** of device PUBLISHes, 1 or 2: the bridge's guarantees need the broker's acknowledgement (commands: always 1) */
    readonly qos: 1 | 2
    /** 4 (MQTT 3.1.1) or 5 */
    readonly protocolVersion: 4 | 5
    /** "json": the payload in a JSON envelope with the ids; "raw": the payload as is (PROTOCOL.md 12.3) */
    readonly envelope: "json" | "raw"
    /** the client id, and the broker's persistent session (default tether-<node>) */
    readonly clientId?: string
    /**
     * the shared subscription group for commands ($share/<group>/...), so that one node of a
     * cluster takes each message; null subscribes plainly (default: "tether" on a PostgreSQL
     * store, null on SQLite, a single node)
     */
    readonly shareGroup?: string | null
    /** how long a device's PUBLISH waits for the broker before its session is closed with BUSY */
    readonly publishTimeoutMs: number
    readonly usernameFile?: string
    readonly passwordFile?: string
    readonly ca?: string
    readonly cert?: string
    readonly key?: string
}

export const DEFAULT_TOPIC_TEMPLATE = "tether/{device}/{topic}"
export const DEFAULT_COMMAND_TEMPLATE = "tether/{device}/cmd/{topic}"
export const DEFAULT_PUBLISH_TIMEOUT_MS = 10000

const KEYS = [
    "url",
    "topicTemplate",
    "commandTemplate",
    "qos",
    "protocolVersion",
    "envelope",
    "clientId",
    "shareGroup",
    "publishTimeoutMs",
    "usernameFile",
    "passwordFile",
    "ca",
    "cert",
    "key",
] as const

/** The URL without its password, for log lines and messages. */
export function redactMqttUrl(url: string): string {
    try {
        const u = new URL(url)
        if (u.password !== "") u.password = "***"
        return u.toString()
    } catch {
        return "mqtt://(unparsable URL)"
    }
}

/** Checks a broker URL. @returns an error message, or undefined when it is fine */
export function checkMqttUrl(url: string): string | undefined {
    let u: URL
    try {
        u = new URL(url)
    } catch {
        return "is not a URL"
    }
    if (u.protocol !== "mqtt:" && u.protocol !== "mqtts:") return "must be mqtt:// or mqtts://"
    if (u.hostname === "") return "names no host"
    return undefined
}

/**
 * Checks a template: levels separated by "/", `{device}` (when `needDevice`) and `{topic}` each
 * exactly once and a whole level, `{topic}` last when `topicLast`; no wildcard, no "$" start.
 * @returns an error message, or undefined
 */
export function checkTemplate(t: string, topicLast: boolean): string | undefined {
    if (t.length === 0 || t.startsWith("$")) return "must not be empty or start with $"
    const levels = t.split("/")
    if (levels.some(l => l.includes("+") || l.includes("#"))) return "must not contain + or #"
    const dev = levels.filter(l => l === "{device}").length
    const top = levels.filter(l => l === "{topic}").length
    if (dev !== 1 || top !== 1) return "needs {device} and {topic}, each once and as a whole level"
    if (levels.some(l => l !== "{device}" && l !== "{topic}" && /[{}]/.test(l))) return "knows only {device} and {topic}"
    if (topicLast && levels[levels.length - 1] !== "{topic}") return "must end with {topic}"
    return undefined
}

/** A problem in the section, in the words of parseConfig's ConfigError. */
export class MqttConfigError extends Error {}

/**
 * Validates the "mqtt" section. Unknown keys are errors.
 * @throws MqttConfigError naming the field
 */
export function parseMqttConfig(v: unknown): MqttConfig {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new MqttConfigError("mqtt must be an object")
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o))
        if (!(KEYS as readonly string[]).includes(k)) throw new MqttConfigError(`mqtt: unknown key ${k} (known: ${KEYS.join(", ")})`)
    const str = (k: string): string | undefined => {
        const x = o[k]
        if (x === undefined) return undefined
        if (typeof x !== "string" || x.length === 0) throw new MqttConfigError(`mqtt.${k} must be a non-empty string`)
        return x
    }
    const url = str("url")
    if (url !== undefined) {
        const bad = checkMqttUrl(url)
        if (bad !== undefined) throw new MqttConfigError(`mqtt.url ${bad}`)
        if (new URL(url).password !== "") throw new MqttConfigError("mqtt.url must not hold a password: use passwordFile")
    }
    const topicTemplate = str("topicTemplate") ?? DEFAULT_TOPIC_TEMPLATE
    let bad = checkTemplate(topicTemplate, false)
    if (bad !== undefined) throw new MqttConfigError(`mqtt.topicTemplate ${bad}`)
    const commandTemplate = str("commandTemplate") ?? DEFAULT_COMMAND_TEMPLATE
    bad = checkTemplate(commandTemplate, true)
    if (bad !== undefined) throw new MqttConfigError(`mqtt.commandTemplate ${bad}`)
    const qos = o.qos ?? 1
    if (qos !== 1 && qos !== 2) throw new MqttConfigError("mqtt.qos must be 1 or 2 (QoS 0 has no acknowledgement to wait for)")
    const protocolVersion = o.protocolVersion ?? 4
    if (protocolVersion !== 4 && protocolVersion !== 5) throw new MqttConfigError("mqtt.protocolVersion must be 4 (MQTT 3.1.1) or 5")
    const envelope = o.envelope ?? (protocolVersion === 5 ? "raw" : "json")
    if (envelope !== "json" && envelope !== "raw") throw new MqttConfigError('mqtt.envelope must be "json" or "raw"')
    const clientId = str("clientId")
    if (clientId !== undefined && Buffer.byteLength(clientId) > 65535) throw new MqttConfigError("mqtt.clientId is too long")
    let shareGroup: string | null | undefined
    if (o.shareGroup === null) shareGroup = null
    else {
        shareGroup = str("shareGroup")
        if (shareGroup !== undefined && /[/+#]/.test(shareGroup)) throw new MqttConfigError("mqtt.shareGroup must not contain / + or #")
    }
    const publishTimeoutMs = o.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS
    if (!Number.isInteger(publishTimeoutMs) || (publishTimeoutMs as number) < 1 || (publishTimeoutMs as number) > 600000)
        throw new MqttConfigError("mqtt.publishTimeoutMs must be an integer in 1..600000")
    return {
        url,
        topicTemplate,
        commandTemplate,
        qos,
        protocolVersion,
        envelope,
        clientId,
        shareGroup,
        publishTimeoutMs: publishTimeoutMs as number,
        usernameFile: str("usernameFile"),
        passwordFile: str("passwordFile"),
        ca: str("ca"),
        cert: str("cert"),
        key: str("key"),
    }
}

/** The characters a name cannot carry into an MQTT topic as they are; "/" only in a device name. */
const ENCODE_TOPIC = /[%+#\u0000]/g
const ENCODE_NAME = /[%+#\u0000/]/g
const pct = (c: string) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")
const DECODE = /%(25|2B|23|00|2F)/gi

/**
 * The MQTT topic of a device's PUBLISH: the template with {device} and {topic} replaced. "%",
 * "+", "#" and NUL are percent-encoded (and "/" in the device name): a Tether topic's "/"
 * separates MQTT levels.
 */
export function topicFor(template: string, device: string, topic: string): string {
    return template
        .split("/")
        .map(l => (l === "{device}" ? device.replace(ENCODE_NAME, pct) : l === "{topic}" ? topic.replace(ENCODE_TOPIC, pct) : l))
        .join("/")
}

/** The subscription of a command template: {device} as "+", {topic} as "#". */
export function commandFilter(template: string, shareGroup: string | null | undefined): string {
    const f = template
        .split("/")
        .map(l => (l === "{device}" ? "+" : l === "{topic}" ? "#" : l))
        .join("/")
    return shareGroup === null || shareGroup === undefined ? f : `$share/${shareGroup}/${f}`
}

/** A command topic's device name and Tether topic (percent-decoded), or undefined if it does not match. */
export function parseCommand(template: string, mqttTopic: string): { device: string; topic: string } | undefined {
    const t = template.split("/")
    const m = mqttTopic.split("/")
    if (m.length < t.length) return undefined
    let device: string | undefined
    for (let i = 0; i < t.length - 1; i++) {
        if (t[i] === "{device}") device = m[i]
        else if (t[i] !== m[i]) return undefined
    }
    const topic = m.slice(t.length - 1).join("/")
    if (device === undefined || device.length === 0 || topic.length === 0) return undefined
    const dec = (s: string) => s.replace(DECODE, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    return { device: dec(device), topic: dec(topic) }
}
