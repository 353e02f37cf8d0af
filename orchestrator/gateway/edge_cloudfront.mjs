// The `cloudfront` module of CloudFront Functions' JavaScript runtime 2.0, as the sandbox's
// edge runner provides it (orchestrator/gateway/edge.py): `import cf from 'cloudfront'` in the
// function's own code resolves to this file.
//
// cf.kvs([id]) returns a handle on the associated KeyValueStore; its reads see the store as it
// is for the request being handled (the runner installs the contents, read from the sandbox's
// KeyValueStore stand-in, before each call of the handler):
//   get(key, {format: 'string' | 'json' | 'bytes'})  rejects when the key does not exist
//   exists(key)                                       true / false
//   meta()                                            {creationDateTime, lastUpdatedDateTime, keyCount}
const CURRENT = Symbol.for('sandbox.cloudfront.kvs')

function storeFor(id) {
  const stores = globalThis[CURRENT] || {}
  const ids = Object.keys(stores)
  if (id === undefined || id === null) {
    if (ids.length !== 1) {
      throw new Error(`cf.kvs() needs exactly one associated key value store, the function has ${ids.length}`)
    }
    return stores[ids[0]]
  }
  const found = stores[String(id)]
  if (!found) {
    throw new Error(`The key value store ${id} is not associated with this function`)
  }
  return found
}

function handle(id) {
  return {
    async get(key, options) {
      const store = storeFor(id)
      const items = store.items || {}
      if (!Object.prototype.hasOwnProperty.call(items, key)) {
        throw new Error(`Key ${key} does not exist`)
      }
      const value = items[key]
      const format = (options && options.format) || 'string'
      if (format === 'json') return JSON.parse(value)
      if (format === 'bytes') return new TextEncoder().encode(value)
      return value
    },
    async exists(key) {
      const items = storeFor(id).items || {}
      return Object.prototype.hasOwnProperty.call(items, key)
    },
    async meta() {
      const store = storeFor(id)
      return {
        creationDateTime: store.created || null,
        lastUpdatedDateTime: store.lastModified || null,
        keyCount: Object.keys(store.items || {}).length
      }
    }
  }
}

export default {
  kvs(id) {
    return handle(id)
  }
}
