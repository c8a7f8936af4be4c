import { storeKey } from '@visitme/memcache'

/** The visits' cache namespace, under the app's. */
export const visitsNamespace = (cacheNamespace: string): string => `${cacheNamespace}/visits`

/** The list of recent visits of a collection. The version changes whenever the cached value's shape does. */
export const recentVisitsKey = (collection: string): string => `recent:v1:${collection}`

/** The list's key as the store holds it: for the tests and the bench, which read the store itself. */
export const recentVisitsStoreKey = (cacheNamespace: string, collection: string): string =>
  storeKey(recentVisitsKey(collection), visitsNamespace(cacheNamespace))
