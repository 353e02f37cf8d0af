// Runs one CloudFront Function (JavaScript runtime 2.0, viewer request) for the sandbox's gateway:
// one JSON request per stdin line, one JSON answer per stdout line (same order). Long-running:
// the gateway starts it once, so a WebSocket handshake pays a line round trip, not a Node start.
//
// argv[2]: the function's module (its code as deployed, followed by an export of `handler`),
//          next to a node_modules/cloudfront/ that stands in for the runtime's `cloudfront` module.
// First line out: {"ready": true} once the module is loaded, or {"ready": false, "error"}.
// Request:  {"id", "event": <CloudFront Functions event>, "stores": {<kvs id>: {"items", ...}}}
// Answer:   {"id", "result": <what the handler returned>} or {"id", "error": "<message>"}
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'

const CURRENT = Symbol.for('sandbox.cloudfront.kvs')
const write = (answer) => process.stdout.write(JSON.stringify(answer) + '\n')

let handler
try {
  const loaded = await import(pathToFileURL(process.argv[2]).href)
  handler = loaded.__sandboxHandler
  if (typeof handler !== 'function') throw new Error('the function code defines no handler(event)')
} catch (err) {
  write({ ready: false, error: String(err && err.stack ? err.stack : err) })
  process.exit(1)
}
write({ ready: true })

let chain = Promise.resolve()
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  if (!line.trim()) return
  chain = chain.then(async () => {
    let id = null
    try {
      const request = JSON.parse(line)
      id = request.id ?? null
      globalThis[CURRENT] = request.stores || {}
      const result = await handler(request.event)
      write({ id, result: result === undefined ? null : result })
    } catch (err) {
      write({ id, error: String(err && err.message ? err.message : err) })
    } finally {
      globalThis[CURRENT] = {}
    }
  })
})
lines.on('close', () => {
  chain.then(() => process.exit(0))
})
