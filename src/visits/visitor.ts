import ipaddr from 'ipaddr.js'

/** User agents are attacker-controlled; longer ones are cut before they are stored. */
const MAX_USER_AGENT_LENGTH = 512

export type IpMode = 'truncated' | 'full'

/**
 * The address as it is stored and shown. Truncated by default: an IPv4 address
 * loses its last octet, an IPv6 address its last 80 bits (the interface and
 * subnet part), which keeps visits apart by network but not by person.
 */
function displayIp (address: string | undefined, mode: IpMode): string {
  if (address === undefined || !ipaddr.isValid(address)) return 'unknown'
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  }
  if (mode === 'full') return parsed.toString()
  const bytes = parsed.toByteArray()
  bytes.fill(0, parsed.kind() === 'ipv4' ? 3 : 6)
  return ipaddr.fromByteArray(bytes).toString()
}

/** Addresses seen lately, as shown: a client sends many requests from one address. */
const shown = new Map<string, string>()
const SHOWN_MAX = 1000

function cachedDisplayIp (address: string | undefined, mode: IpMode): string {
  if (address === undefined) return 'unknown'
  const key = mode === 'full' ? `f ${address}` : address
  let display = shown.get(key)
  if (display === undefined) {
    display = displayIp(address, mode)
    if (shown.size >= SHOWN_MAX) shown.clear()
    shown.set(key, display)
  }
  return display
}

export function visitorOf (address: string | undefined, userAgent: string | undefined, mode: IpMode): string {
  let agent = userAgent ?? ''
  // Cut by code points so a surrogate pair is never split.
  if (agent.length > MAX_USER_AGENT_LENGTH) agent = Array.from(agent).slice(0, MAX_USER_AGENT_LENGTH).join('')
  return `${cachedDisplayIp(address, mode)}: ${agent}`
}
