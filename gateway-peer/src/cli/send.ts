// `tether-gateway send NAME TOPIC [TEXT]`: queues a MESSAGE to a device in the store's durable
// outbox (PROTOCOL.md 12.1). It is stored before this command says so; whichever node holds the
// device's session sends it at once (told through the store), otherwise the node the device
// connects to next. The same bound as serve's queue applies.
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { checkMessage, DEFAULT_MAX_QUEUE } from "../app/gateway-app.js"
import { queueMessage, QueueMessageError } from "../app/queue-message.js"
import { CliError, intOption, JSON_HELP, openCliStore, parse, STATE_OPTION, STORE_HELP, type Io } from "./common.js"

export const SEND_USAGE = `usage: tether-gateway send NAME TOPIC [TEXT | --hex HEX | --file F] [--state DIR | --store URL] [--json]

Queues a message to device NAME on TOPIC: stored in the gateway's outbox before this command
returns, sent by whichever node holds the device's session, or when it next connects to any node;
kept until the device acknowledges it. Prints the message's id in the gateway's stream.

  TEXT          the payload as UTF-8 text (default: empty)
  --hex HEX     the payload as hex bytes instead
  --file F      the payload as the bytes of file F ("-": standard input)
  --max-queue N refuse when the device already has N unacknowledged messages (default ${DEFAULT_MAX_QUEUE})
${STORE_HELP}
${JSON_HELP}: { "device", "topic", "id" }`

/** Runs `send`. */
export async function send(argv: string[], io: Io): Promise<void> {
    const r = parse(
        argv,
        { ...STATE_OPTION, hex: { type: "string" }, file: { type: "string" }, "max-queue": { type: "string" }, json: { type: "boolean" } },
        SEND_USAGE,
        io,
        { min: 2, max: 3 }
    )
    if (r === undefined) return
    const [name, topic, text] = r.positionals as [string, string, string | undefined]
    const hex = r.values["hex"]
    const file = r.values["file"]
    if ([text, hex, file].filter(x => x !== undefined).length > 1) throw new CliError("give one of TEXT, --hex and --file", 2)
    if (typeof hex === "string" && !/^([0-9a-fA-F]{2})*$/.test(hex)) throw new CliError("--hex must be an even number of hex digits", 2)
    let payload: Buffer
    if (typeof hex === "string") payload = Buffer.from(hex, "hex")
    else if (typeof file === "string") {
        try {
            payload = readFileSync(file === "-" ? 0 : resolve(io.cwd, file))
        } catch (err) {
            throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`, 2)
        }
    } else payload = Buffer.from(text ?? "", "utf8")
    const max = intOption(r.values["max-queue"], "max-queue", DEFAULT_MAX_QUEUE, 1, 1_000_000)
    try {
        checkMessage("send", topic, payload)
    } catch (err) {
        throw new CliError((err as Error).message.replace(/^send: /, ""), 2)
    }
    const store = await openCliStore(r.values, io)
    try {
        const id = await queueMessage(store, name, topic, payload, max).catch((err: unknown) => {
            throw err instanceof QueueMessageError ? new CliError(err.message) : err
        })
        if (r.values.json === true) {
            io.out(JSON.stringify({ device: name, topic, id }))
            return
        }
        io.out(`queued message ${id} to ${name}`)
    } finally {
        await store.close()
    }
}
