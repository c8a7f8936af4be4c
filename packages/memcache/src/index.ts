export {
  Cache, createCache,
  type CasItem, type InspectedItem, type PeekedItem, type CacheOptions, type Counter, type DeleteOptions, type Lookup,
  type OffsetOptions, type PrefixOption, type ViewOptions, type WriteOptions
} from './cache.js'
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, storeKey, ValueTooLargeError, type NamespaceOption } from './keys.js'
export type { CacheLogger } from './logger.js'
export type { KeySampler } from './core.js'
export type { CacheCounters, CacheStats } from './stats.js'
export type { Memoized, MemoizeOptions } from './memoize.js'
export type { ListAddOptions, ListEntry, ListLookup, ListReservationLookup, ListReserveOptions, ListState } from './lists.js'
export { UncacheableValueError } from './codec.js'
export { CircuitBreaker, type BreakerOptions, type BreakerState } from './breaker.js'
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { RedisStore } from './stores/redis/store.js'
export {
  clientReady, closeClient, createReadClient, createRedisClient, describeClient, evictionHint, redisHint,
  watchClient, type RedisClient, type RedisConnection, type SettingNames
} from './stores/redis/client.js'
export {
  CounterOverflowError, listItemId, withLists, MAX_COUNTER, type CacheStore, type Census, type CounterStore, type KeyValueStore, type ListItem, type ListStore, type PubSubStore, type ListReservation, type ListReservationRequest, type ListReservations, type PeekedEntry, type Store, type StoredEntry, type StoredList, type StoreWrite,
  type Subscription, type SubscribeHandlers, type WriteMode
} from './stores/store.js'
export { fragmentRenderer, RouteCache, type CachedResponse, type RouteCacheTicket } from './route-cache.js'
