import type { FastifyInstance, FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify'
import type { AdminConfig } from '../config.js'
import { sendAnswer } from '../http/error-pages.js'
import forms from '../http/forms.js'
import { prefersJson } from '../http/negotiation.js'
import { AuthError, googleIapKeys, IapKeysUnavailableError, IapVerifier, operatorOf, SESSION_COOKIE, SESSION_MS, sessionCookie, tokenMatches, type IapKeySource, type Operator } from './auth.js'
import { CacheConsole, InputError, MAX_SHOWN, UnavailableError, VALUE_TYPES, type ValueType } from './cache-console.js'
import { minutesChart } from './chart.js'
import type { Recording } from './recording.js'
import { serverInfo } from './redis-info.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is using the cache console (set by its auth hook). */
    operator: Operator | null
  }
  interface FastifyContextConfig {
    /** A console page anyone may load: the sign-in form. */
    adminPublic?: boolean
  }
}

export interface AdminOptions extends AdminConfig {
  /** Signs the CSRF cookies. */
  secret: string
  /** The namespaces always listed (the features'), besides the ones this instance has read from. */
  namespaces: readonly string[]
  /** What every instance records (src/admin/recording.ts): the minutes and hot keys the console reads. */
  recording: Recording
  /** IAP's public keys; Google's unless a test hands in its own. */
  iapKeys?: IapKeySource
}

/** The chart's ranges, in minutes. */
const RANGES = [60, 360, 1440] as const
/** The hot keys' window, in minutes. */
const HOT_WINDOW = 5
const MAX_NAMESPACE = 1000
/** A key travels in the address of a find: browsers and Node take addresses up to 8–16 KB. */
const MAX_KEY = 8000
/** A value may be memcache's 1 MB, in a form, encoded. */
const BODY_LIMIT = 4 * 1024 * 1024
const MAX_TTL = 60 * 24 * 3600 * 365 * 100

const keyQuery = {
  type: 'object',
  properties: {
    namespace: { type: 'string', maxLength: MAX_NAMESPACE },
    key: { type: 'string', maxLength: MAX_KEY },
    done: { type: 'string', enum: ['saved', 'deleted', 'missing', 'flushed'] }
  }
} as const
const setBody = {
  type: 'object',
  required: ['namespace', 'key', 'type', 'value'],
  properties: {
    namespace: { type: 'string', minLength: 1, maxLength: MAX_NAMESPACE },
    key: { type: 'string', maxLength: MAX_KEY },
    type: { type: 'string', enum: VALUE_TYPES },
    value: { type: 'string' },
    ttl: { type: 'integer', minimum: 0, maximum: MAX_TTL, default: 0 },
    _csrf: { type: 'string' }
  }
} as const
const deleteBody = {
  type: 'object',
  required: ['namespace', 'key'],
  properties: {
    namespace: { type: 'string', minLength: 1, maxLength: MAX_NAMESPACE },
    key: { type: 'string', maxLength: MAX_KEY },
    lockSeconds: { type: 'integer', minimum: 0, maximum: MAX_TTL, default: 0 },
    _csrf: { type: 'string' }
  }
} as const
const flushBody = {
  type: 'object',
  required: ['namespace', 'confirm'],
  properties: {
    namespace: { type: 'string', minLength: 1, maxLength: MAX_NAMESPACE },
    confirm: { type: 'string', maxLength: MAX_NAMESPACE },
    _csrf: { type: 'string' }
  }
} as const

/** Shown of a key in lists and logs. */
const cut = (text: string, max = 200): string => text.length > max ? `${text.slice(0, max)}…` : text

/**
 * The cache console under /admin/ (registered with that prefix only when configured): stats per
 * namespace across instances, their history, the Redis servers, the hot keys, and finding,
 * writing, deleting and flushing. Every request proves who sends it (IAP, the token as a bearer,
 * or a sign-in with it); every form post carries a CSRF token; every change is one audit line.
 */
export default async function adminPlugin (app: FastifyInstance, options: AdminOptions): Promise<void> {
  const { token, iapAudience, secret, recording } = options
  await app.register(forms, { secret })
  const iap = iapAudience === undefined ? undefined : new IapVerifier(iapAudience, options.iapKeys ?? googleIapKeys())
  const redis = app.hasDecorator('redis') ? app.redis : undefined
  const minutes = recording.minutes
  app.log.info({ consoleAuth: [...(iap === undefined ? [] : [`IAP (audience ${iap.audience})`]), ...(token === undefined ? [] : ['ADMIN_TOKEN'])] }, 'cache console on at /admin/')
  const console_ = new CacheConsole({
    cache: app.cache,
    // Counting items scans the keyspace: a read replica takes that load off the primary, as for /stats.
    statsCache: app.cache.namespaced(app.cache.namespace, { reads: 'replica' }),
    namespaces: () => [...options.namespaces, ...app.cache.namespaces()],
    minutes,
    servers: async () => await serverInfo(redis)
  })

  app.decorateRequest('operator', null)
  app.addHook('onRequest', async (request, reply) => {
    // Nothing of the console may be stored by a browser or a proxy, or indexed.
    reply.header('cache-control', 'no-store').header('x-robots-tag', 'noindex')
    if (request.routeOptions.config.adminPublic === true) return
    let operator: Operator | undefined
    try {
      operator = await operatorOf(request, { token, iap })
    } catch (err) {
      if (err instanceof IapKeysUnavailableError) {
        request.log.warn({ err }, 'cache console: IAP keys unavailable')
        return await sendAnswer(app, request, reply, {
          statusCode: 503,
          title: 'Cannot check who you are',
          message: 'The keys that prove a request came through Identity-Aware Proxy could not be fetched.',
          advice: 'Try again in a moment.',
          headers: { 'retry-after': '5' }
        })
      }
      if (!(err instanceof AuthError)) throw err
      request.log.warn({ reason: err.message, ip: request.ip }, 'cache console: credentials refused')
      return await refuse(request, reply, 'The credentials sent were refused.')
    }
    if (operator !== undefined) {
      request.operator = operator
      return
    }
    // A person at a browser is shown the sign-in form; a program is told how to authenticate.
    if (token !== undefined && request.method === 'GET' && !prefersJson(request)) {
      return await reply.redirect(`/admin/login?${new URLSearchParams({ next: request.url }).toString()}`, 303)
    }
    return await refuse(request, reply, iap !== undefined && token === undefined
      ? 'This console is served behind Identity-Aware Proxy; the request did not come through it.'
      : 'Sign in with the console\'s token, or send it as Authorization: Bearer.')
  })

  async function refuse (request: FastifyRequest, reply: FastifyReply, message: string): Promise<FastifyReply> {
    return await sendAnswer(app, request, reply, {
      statusCode: 401,
      title: 'Not signed in',
      message,
      advice: token === undefined ? 'Open the console through its IAP-protected address.' : 'Go to /admin/login.',
      headers: token === undefined ? {} : { 'www-authenticate': 'Bearer realm="cache console"' }
    })
  }

  /** The CSRF check for a change a browser sends; a bearer token is no ambient credential, so it needs none. */
  const csrfUnlessBearer: preValidationHookHandler = function (request, reply, done) {
    if (request.operator?.via === 'bearer') {
      done()
      return
    }
    app.csrfProtection.call(this, request, reply, done)
  }

  /** One line per change, through the app's logger: who, what, when. */
  function audit (request: FastifyRequest, action: string, details: Record<string, unknown>): void {
    const { who, via } = request.operator!
    request.log.info({ audit: { who, via, ip: request.ip, action, ...details, at: new Date().toISOString() } }, `cache console: ${action}`)
  }

  /** A refused change, or the cache not answering, on the page or as JSON. */
  async function failed (request: FastifyRequest, reply: FastifyReply, err: unknown): Promise<FastifyReply> {
    if (err instanceof InputError) return await sendAnswer(app, request, reply, { statusCode: 400, title: 'Not accepted', message: err.message, advice: 'Go back, correct it and send it again.' })
    if (err instanceof UnavailableError) return await sendAnswer(app, request, reply, { statusCode: 503, title: 'Cache unavailable', message: `Nothing was changed: ${err.message}.`, advice: 'Try again in a moment.' })
    throw err
  }

  if (token !== undefined) {
    async function loginPage (reply: FastifyReply, next: string, notice?: string): Promise<string> {
      return await reply.viewAsync('admin/login', { next, notice, csrfToken: reply.generateCsrf() })
    }
    // Only a page of the console may be the destination: never another site.
    const nextOf = (next: unknown): string => typeof next === 'string' && /^\/admin(\/[^/\\]|\/?$|\/?\?)/.test(next) ? next : '/admin/'

    app.get<{ Querystring: { next?: string } }>('/login', { config: { adminPublic: true } }, async (request, reply) => {
      return await loginPage(reply, nextOf(request.query.next))
    })

    app.post<{ Body: { token?: string, next?: string } }>('/login', {
      config: { adminPublic: true },
      preValidation: app.csrfProtection,
      preHandler: app.limitWrites,
      schema: { body: { type: 'object', properties: { token: { type: 'string', maxLength: 1000 }, next: { type: 'string', maxLength: 2000 }, _csrf: { type: 'string' } } } }
    }, async (request, reply) => {
      if (!tokenMatches(request.body.token ?? '', token)) {
        request.log.warn({ ip: request.ip }, 'cache console: wrong token at sign-in')
        reply.code(401)
        return await loginPage(reply, nextOf(request.body.next), 'That is not the console\'s token.')
      }
      request.log.info({ ip: request.ip }, 'cache console: signed in with the token')
      reply.setCookie(SESSION_COOKIE, sessionCookie(token), { path: '/admin', httpOnly: true, sameSite: 'strict', secure: 'auto', maxAge: SESSION_MS / 1000 })
      return await reply.redirect(nextOf(request.body.next), 303)
    })

    app.post('/logout', { preValidation: csrfUnlessBearer }, async (_request, reply) => {
      reply.clearCookie(SESSION_COOKIE, { path: '/admin' })
      return await reply.redirect('/admin/login', 303)
    })
  }

  app.get<{ Querystring: { minutes?: number, namespace?: string, flushed?: string } }>('/', {
    schema: {
      querystring: {
        type: 'object',
        properties: {
          minutes: { type: 'integer', enum: RANGES },
          namespace: { type: 'string', maxLength: MAX_NAMESPACE },
          flushed: { type: 'string', maxLength: MAX_NAMESPACE }
        }
      }
    }
  }, async (request, reply) => {
    const range = request.query.minutes ?? RANGES[0]
    const chartOf = request.query.namespace === '' ? undefined : request.query.namespace
    // This instance's latest counts and samples first, as getStats() flushes its own counters.
    await recording.flush()
    const [rows, servers, hot, history] = await Promise.all([
      console_.rows(), console_.servers(), console_.hotKeys(HOT_WINDOW), console_.history(range, chartOf)
    ])
    if (prefersJson(request)) return { namespaces: rows, servers, hotKeys: hot === undefined ? null : { windowMinutes: HOT_WINDOW, ...hot }, history: history ?? null, sharedHistory: minutes.shared }
    return await reply.viewAsync('admin/overview', {
      rows,
      servers,
      hot,
      hotWindow: HOT_WINDOW,
      chart: history === undefined ? undefined : minutesChart(history),
      range,
      ranges: RANGES,
      chartOf,
      flushed: request.query.flushed,
      namespaces: console_.namespaces(),
      shared: minutes.shared,
      operator: request.operator,
      csrfToken: reply.generateCsrf(),
      canSignOut: request.operator?.via === 'session',
      cut
    })
  })

  app.get<{ Querystring: { namespace?: string, key?: string, done?: string } }>('/key', { schema: { querystring: keyQuery } }, async (request, reply) => {
    const { namespace, key, done } = request.query
    let found
    try {
      found = namespace === undefined || namespace === '' || key === undefined ? undefined : await console_.find(namespace, key)
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err
      found = 'unavailable' as const
    }
    if (prefersJson(request)) {
      if (found === 'unavailable') return await failed(request, reply, new UnavailableError('the cache did not answer'))
      return found ?? {}
    }
    return await reply.viewAsync('admin/key', {
      namespace: namespace ?? app.cache.namespace,
      key: key ?? '',
      found,
      done,
      namespaces: console_.namespaces(),
      types: VALUE_TYPES,
      maxShown: MAX_SHOWN,
      csrfToken: reply.generateCsrf(),
      cut
    })
  })

  const keyPage = (namespace: string, key: string, done: string): string =>
    `/admin/key?${new URLSearchParams({ namespace, key, done }).toString()}`

  app.post<{ Body: { namespace: string, key: string, type: ValueType, value: string, ttl: number } }>('/key', {
    bodyLimit: BODY_LIMIT,
    preValidation: csrfUnlessBearer,
    preHandler: app.limitWrites,
    schema: { body: setBody }
  }, async (request, reply) => {
    const { namespace, key, type, value, ttl } = request.body
    try {
      await console_.set(namespace, key, type, value, ttl)
    } catch (err) {
      return await failed(request, reply, err)
    }
    audit(request, 'set', { namespace, key: cut(key), keyLength: key.length, type, valueLength: value.length, ttl })
    if (prefersJson(request)) return { ok: true }
    return await reply.redirect(keyPage(namespace, key, 'saved'), 303)
  })

  app.post<{ Body: { namespace: string, key: string, lockSeconds: number } }>('/key/delete', {
    preValidation: csrfUnlessBearer,
    preHandler: app.limitWrites,
    schema: { body: deleteBody }
  }, async (request, reply) => {
    const { namespace, key, lockSeconds } = request.body
    let result
    try {
      result = await console_.delete(namespace, key, lockSeconds)
    } catch (err) {
      return await failed(request, reply, err)
    }
    audit(request, 'delete', { namespace, key: cut(key), keyLength: key.length, lockSeconds, result })
    if (prefersJson(request)) return { ok: true, result }
    return await reply.redirect(keyPage(namespace, key, result), 303)
  })

  app.get<{ Querystring: { namespace?: string } }>('/flush', {
    schema: { querystring: { type: 'object', properties: { namespace: { type: 'string', maxLength: MAX_NAMESPACE } } } }
  }, async (request, reply) => {
    return await reply.viewAsync('admin/flush', { namespace: request.query.namespace ?? '', namespaces: console_.namespaces(), csrfToken: reply.generateCsrf() })
  })

  app.post<{ Body: { namespace: string, confirm: string } }>('/flush', {
    preValidation: csrfUnlessBearer,
    preHandler: app.limitWrites,
    schema: { body: flushBody }
  }, async (request, reply) => {
    const { namespace, confirm } = request.body
    if (confirm !== namespace) {
      return await failed(request, reply, new InputError('the namespace typed to confirm is not the one to flush: nothing was flushed'))
    }
    try {
      await console_.flush(namespace)
    } catch (err) {
      return await failed(request, reply, err)
    }
    audit(request, 'flush', { namespace })
    if (prefersJson(request)) return { ok: true }
    return await reply.redirect(`/admin/?${new URLSearchParams({ flushed: namespace }).toString()}`, 303)
  })
}
