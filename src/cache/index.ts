export {
  Cache, createCache, MAX_KEY_BYTES, MAX_VALUE_BYTES, ValueTooLargeError,
  type CacheCounters, type CacheLogger, type CasItem, type PeekedItem, type CacheStats, type Memoized, type MemoizeOptions, type CacheOptions, type Counter, type DeleteOptions, type ListEntry, type ListLookup, type ListReservationLookup, type ListState, type Lookup,
  type NamespaceOption, type OffsetOptions, type PrefixOption, type WriteOptions
} from './cache.js'
export { UncacheableValueError } from './codec.js'
export { CircuitBreaker, type BreakerOptions, type BreakerState } from './breaker.js'
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { RedisStore, type RedisClient } from './stores/redis.js'
export {
  CounterOverflowError, listItemId, MAX_COUNTER, type Census, type ListItem, type ListReservation, type ListReservationRequest, type ListReservations, type PeekedEntry, type Store, type StoredEntry, type StoredList, type StoreWrite,
  type Subscription, type SubscribeHandlers, type WriteMode
} from './stores/store.js'
export { fragmentRenderer, RouteCache, type CachedResponse, type RouteCacheTicket } from './route-cache.js'
