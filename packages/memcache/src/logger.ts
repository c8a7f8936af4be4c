/** The pino-compatible subset the cache logs through. */
export interface CacheLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  debug (obj: object, msg: string): void
}

export const silent: CacheLogger = { info () {}, warn () {}, debug () {} }
