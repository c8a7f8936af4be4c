/**
 * JSON that keeps the types JSON loses, and refuses the values it cannot bring back:
 * every value either comes back with its type or throws an UncacheableValueError.
 * Kept: Date, Buffer, bigint, Map, Set, NaN, ±Infinity, -0, and undefined in arrays,
 * as one-key tag objects ({"$date": ...}); an object of the caller's whose keys start
 * with "$" gets one more "$" on those keys, so it can never be mistaken for a tag.
 * Refused: functions, symbols, and every object that is not a plain object, an array
 * or one of the kept types (class instances, RegExp, typed arrays other than Buffer...).
 * An integer or bigint on its own is bare decimal (a bigint with an "n" after it), so a
 * store can increment it in place and keep its type.
 */
const DATE = '$date'
const BUFFER = '$buffer'
const BIGINT = '$bigint'
const NUMBER = '$number'
const MAP = '$map'
const SET = '$set'
const UNDEFINED = '$undefined'
const INTEGER = /^-?\d+$/
const BIGINT_TEXT = /^-?\d+n$/

/** A value that would not come back as it was stored: refused at set time. */
export class UncacheableValueError extends TypeError {
  override name = 'UncacheableValueError'
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function describe (value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return 'a symbol'
  const name = (value as object).constructor?.name
  return name === undefined || name === '' ? 'an object with a prototype' : `a ${name}`
}

function replacer (this: unknown, key: string, value: unknown): unknown {
  // `value` has been through toJSON already; the original sits on the holder.
  const original = (this as Record<string, unknown>)[key]
  if (original instanceof Date) return { [DATE]: Number.isNaN(original.getTime()) ? null : original.getTime() }
  if (Buffer.isBuffer(original)) return { [BUFFER]: original.toString('base64') }
  if (typeof value === 'bigint') return { [BIGINT]: value.toString() }
  if (typeof value === 'number' && (!Number.isFinite(value) || Object.is(value, -0))) {
    return { [NUMBER]: Object.is(value, -0) ? '-0' : String(value) }
  }
  // JSON would write null in an array; in an object the key is dropped, which reads the same.
  if (value === undefined && Array.isArray(this)) return { [UNDEFINED]: 1 }
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new UncacheableValueError(`${describe(value)} cannot be cached${key === '' ? '' : ` (at "${key}")`}`)
  }
  if (original instanceof Map) return { [MAP]: [...original] }
  if (original instanceof Set) return { [SET]: [...original] }
  if (original !== null && typeof original === 'object' && !Array.isArray(original) && !isPlainObject(original)) {
    throw new UncacheableValueError(`${describe(original)} cannot be cached${key === '' ? '' : ` (at "${key}")`}: it would not come back as one`)
  }
  if (isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.startsWith('$') ? `$${k}` : k, v]))
  }
  return value
}

function reviver (_key: string, value: unknown): unknown {
  if (!isPlainObject(value)) return value
  const keys = Object.keys(value)
  if (keys.length === 1) {
    const tagged = value[keys[0]!]
    switch (keys[0]) {
      case DATE: if (typeof tagged === 'number' || tagged === null) return new Date(tagged ?? NaN)
        break
      case BUFFER: if (typeof tagged === 'string') return Buffer.from(tagged, 'base64')
        break
      case BIGINT: if (typeof tagged === 'string') return BigInt(tagged)
        break
      case NUMBER: if (typeof tagged === 'string') return Number(tagged)
        break
      case MAP: if (Array.isArray(tagged)) return new Map(tagged as Array<[unknown, unknown]>)
        break
      case SET: if (Array.isArray(tagged)) return new Set(tagged)
        break
      case UNDEFINED: return undefined
    }
  }
  if (!keys.some((k) => k.startsWith('$'))) return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.startsWith('$$') ? k.slice(1) : k, v]))
}

export function encode (value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  // Bare, it would read back as a counter past 2^53: a bigint.
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) return JSON.stringify({ [NUMBER]: String(value) })
  // get() answers undefined for a miss: a stored undefined could not be told apart.
  if (value === undefined) throw new UncacheableValueError('undefined cannot be cached: get() answers undefined for a miss; store null')
  return JSON.stringify(value, replacer)
}

export function decode<T = unknown> (text: string): T {
  const first = text.charCodeAt(0)
  // Only a text that starts with a digit or a minus can be a counter.
  if ((first >= 0x30 && first <= 0x39) || first === 0x2d) {
    if (BIGINT_TEXT.test(text)) return BigInt(text.slice(0, -1)) as T
    // A counter past 2^53 would lose digits as a number.
    if (INTEGER.test(text) && !Number.isSafeInteger(Number(text))) return BigInt(text) as T
  }
  // Every tag, and every key of the caller's that starts with "$", is written as "$ in the text:
  // without one there is nothing to revive, and JSON.parse runs at full speed.
  return (text.includes('"$') ? JSON.parse(text, reviver) : JSON.parse(text)) as T
}
