/**
 * JSON that keeps the types JSON loses: a Date comes back as a Date, a Buffer as a
 * Buffer, a bigint as a bigint. Tagged values are one-key objects ({"$date": ...});
 * an object of the caller's whose keys start with "$" gets one more "$" on those
 * keys, so it can never be mistaken for a tag. A number or bigint on its own is
 * bare decimal, so Redis can increment it in place.
 */
const DATE = '$date'
const BUFFER = '$buffer'
const BIGINT = '$bigint'
const INTEGER = /^-?\d+$/

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function replacer (this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `value` has been through toJSON already; the original sits on the holder.
  const original = this[key]
  if (original instanceof Date) return { [DATE]: original.getTime() }
  if (Buffer.isBuffer(original)) return { [BUFFER]: original.toString('base64') }
  if (typeof value === 'bigint') return { [BIGINT]: value.toString() }
  if (isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.startsWith('$') ? `$${k}` : k, v]))
  }
  return value
}

function reviver (_key: string, value: unknown): unknown {
  if (!isPlainObject(value)) return value
  const keys = Object.keys(value)
  if (keys.length === 1) {
    if (keys[0] === DATE && typeof value[DATE] === 'number') return new Date(value[DATE])
    if (keys[0] === BUFFER && typeof value[BUFFER] === 'string') return Buffer.from(value[BUFFER], 'base64')
    if (keys[0] === BIGINT && typeof value[BIGINT] === 'string') return BigInt(value[BIGINT])
  }
  if (!keys.some((k) => k.startsWith('$'))) return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.startsWith('$$') ? k.slice(1) : k, v]))
}

export function encode (value: unknown): string {
  if (typeof value === 'bigint') return value.toString()
  const text = JSON.stringify(value, replacer)
  if (text === undefined) throw new TypeError(`Cannot cache a value of type ${typeof value}`)
  return text
}

export function decode<T = unknown> (text: string): T {
  // A counter past 2^53 would lose digits as a number.
  if (INTEGER.test(text) && !Number.isSafeInteger(Number(text))) return BigInt(text) as T
  return JSON.parse(text, reviver) as T
}
