import { createHash } from 'node:crypto'
import { encode } from './codec.js'

/** Keys longer than memcache's limit are hashed, not refused. */
export const MAX_KEY_BYTES = 250
/**
 * memcache's value limit: on the UTF-8 bytes of a string, the bytes of a Buffer, and the
 * serialized form of any other value (memcache's pickle).
 */
export const MAX_VALUE_BYTES = 1_000_000

export class ValueTooLargeError extends RangeError {
  override name = 'ValueTooLargeError'
}

/**
 * Keys are strings, and nothing else: a number would be one key here and another there.
 * Misuse throws before the store is called, so it never counts as a store failure.
 */
export function checkKey (key: unknown, what = 'cache key'): asserts key is string {
  if (typeof key !== 'string') {
    throw new TypeError(`${what} must be a string, got ${key === null ? 'null' : typeof key}${typeof key === 'number' ? ` (${key})` : ''}`)
  }
}

/** The keys with the prefix, each checked. */
export function prefixed (keys: readonly string[], keyPrefix: string): string[] {
  checkKey(keyPrefix, 'keyPrefix')
  if (!Array.isArray(keys)) throw new TypeError('keys must be an array of strings')
  return keys.map((key) => {
    checkKey(key)
    return keyPrefix + key
  })
}

/** Every call may name the namespace it works in; the view's own is the default. */
export interface NamespaceOption {
  namespace?: string
}

/** Escaped namespaces, as every call names one: bounded, for namespaces made up per call. */
const prefixes = new Map<string, string>()

/** A namespace as it starts its keys: escaped, so that no namespace can reach into another. */
export function namespacePrefix (namespace: string): string {
  let prefix = prefixes.get(namespace)
  if (prefix === undefined) {
    checkKey(namespace, 'namespace')
    prefix = encodeURIComponent(namespace)
    if (prefixes.size >= 1000) prefixes.clear()
    prefixes.set(namespace, prefix)
  }
  return prefix
}

/** The prefixes under which a namespace keeps its values: plain keys, and hashed long ones. */
export function valuePrefixes (namespace: string): [string, string] {
  const ns = namespacePrefix(namespace)
  return [`${ns}:k:`, `${ns}:h:`]
}

/**
 * The key in the store: the namespace's prefix, then `k:` and the key, or `h:` and its SHA-256
 * when it is longer than memcache allows.
 */
export function storeKey (key: string, namespace: string): string {
  checkKey(key)
  // UTF-8 (Redis' bytes, and the hash's) writes every lone surrogate as U+FFFD: such keys would collide.
  if (!key.isWellFormed()) throw new TypeError(`cache key "${key.slice(0, 100)}" is not well-formed Unicode (a lone surrogate)`)
  const ns = namespacePrefix(namespace)
  // A UTF-16 unit is at most 3 bytes of UTF-8: a short key needs no count.
  if (key.length * 3 <= MAX_KEY_BYTES || Buffer.byteLength(key) <= MAX_KEY_BYTES) return `${ns}:k:${key}`
  return `${ns}:h:${createHash('sha256').update(key).digest('base64url')}`
}

/** The value serialized, within memcache's size limit. */
export function encodeValue (key: string, value: unknown): string {
  const text = encode(value)
  const bytes = typeof value === 'string' ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : Buffer.byteLength(text)
  if (bytes > MAX_VALUE_BYTES) {
    throw new ValueTooLargeError(`the value for cache key "${key.slice(0, 100)}" is ${bytes} bytes; the limit is ${MAX_VALUE_BYTES}`)
  }
  return text
}
