/** The stats page's memoized count of the cache, under the app's namespace. */
export const statsPageNamespace = (cacheNamespace: string): string => `${cacheNamespace}/stats-page`
