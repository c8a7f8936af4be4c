import { Cluster } from 'ioredis'
import type { RedisClient } from '@visitme/memcache'

/** What the console shows of one Redis server (a cluster shows one per primary). */
export interface ServerInfo {
  /** host:port, or "embedded" for the memory store. */
  server: string
  version?: string
  usedMemory?: number
  /** 0: no limit. */
  maxMemory?: number
  maxMemoryPolicy?: string
  evictedKeys?: number
  connectedClients?: number
  /** Why the server could not be asked. */
  error?: string
}

/** INFO's "field:value" lines as a map. */
export function parseInfo (text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return fields
}

function numberOf (fields: Map<string, string>, name: string): number | undefined {
  const value = fields.get(name)
  return value === undefined || value === '' ? undefined : Number(value)
}

/**
 * The Redis side at a glance, per server: every primary of a cluster, or the one instance.
 * Without a client the cache lives in this process: "embedded".
 */
export async function serverInfo (client: RedisClient | undefined): Promise<ServerInfo[]> {
  if (client === undefined) return [{ server: 'embedded' }]
  const nodes = client instanceof Cluster ? client.nodes('master') : [client]
  return await Promise.all(nodes.map(async (node) => {
    const server = `${node.options.host ?? '?'}:${node.options.port ?? '?'}`
    try {
      // Only the sections needed: INFO everything costs the server more.
      const [serverSection, memory, stats, clients] = await Promise.all(['server', 'memory', 'stats', 'clients'].map(async (section) => await node.info(section)))
      const fields = parseInfo([serverSection, memory, stats, clients].join('\n'))
      return {
        server,
        version: fields.get('redis_version'),
        usedMemory: numberOf(fields, 'used_memory'),
        maxMemory: numberOf(fields, 'maxmemory'),
        maxMemoryPolicy: fields.get('maxmemory_policy'),
        evictedKeys: numberOf(fields, 'evicted_keys'),
        connectedClients: numberOf(fields, 'connected_clients')
      }
    } catch (err) {
      return { server, error: (err as Error).message }
    }
  }))
}
