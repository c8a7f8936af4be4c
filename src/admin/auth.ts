import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { OAuth2Client } from 'google-auth-library'

/** PEM public keys by key id, as IAP publishes them. */
export type PublicKeys = Record<string, string>

/** Who made a request to the console, and how they proved it: what the audit lines name. */
export interface Operator {
  who: string
  via: 'iap' | 'bearer' | 'session'
}

/** IAP's public keys by key id; `refresh` asks for them again rather than from a copy. */
export type IapKeySource = (refresh: boolean) => Promise<PublicKeys>

export const IAP_ISSUER = 'https://cloud.google.com/iap'
export const IAP_HEADER = 'x-goog-iap-jwt-assertion'
/** How long Google's keys are used before being fetched again (they rotate over days). */
const KEYS_KEPT_MS = 3600_000

/** How long a request may wait for Google's keys. */
const KEYS_TIMEOUT_MS = 5000

/** IAP's keys could not be had: the console cannot tell who anyone is for now (503, not 401). */
export class IapKeysUnavailableError extends Error {
  override name = 'IapKeysUnavailableError'
}

/**
 * Google's IAP keys (https://www.gstatic.com/iap/verify/public_key), fetched at most once an hour
 * unless a key id is new, by one request at a time, within KEYS_TIMEOUT_MS.
 */
export function googleIapKeys (client = new OAuth2Client()): IapKeySource {
  let kept: { keys: PublicKeys, at: number } | undefined
  let fetching: Promise<PublicKeys> | undefined
  const fetchKeys = async (): Promise<PublicKeys> => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no answer within ${KEYS_TIMEOUT_MS} ms`)) }, KEYS_TIMEOUT_MS)
    })
    try {
      const { pubkeys } = await Promise.race([client.getIapPublicKeys(), late])
      kept = { keys: pubkeys, at: Date.now() }
      return pubkeys
    } finally {
      clearTimeout(timer)
    }
  }
  return async (refresh) => {
    if (kept !== undefined && !refresh && Date.now() - kept.at <= KEYS_KEPT_MS) return kept.keys
    fetching ??= fetchKeys().finally(() => { fetching = undefined })
    return await fetching
  }
}

/** The proof refused, with the reason (for the log; the client hears only "not signed in"). */
export class AuthError extends Error {
  override name = 'AuthError'
}

/**
 * Checks IAP's signed header: an ES256 JWT whose signature one of IAP's keys verifies, for our
 * audience, from IAP's issuer, not expired. google-auth-library does the checking; the keys come
 * from `keys`, so a test can sign with a key pair of its own.
 */
export class IapVerifier {
  readonly #client = new OAuth2Client()

  constructor (readonly audience: string, readonly keys: IapKeySource) {}

  async verify (assertion: string): Promise<Operator> {
    // IAP signs with ES256 only: any other algorithm named in the header is refused before the keys are consulted.
    let alg: unknown
    try {
      alg = (JSON.parse(Buffer.from(assertion.split('.')[0] ?? '', 'base64url').toString()) as { alg?: unknown }).alg
    } catch {
      throw new AuthError('IAP assertion is not a JWT')
    }
    if (alg !== 'ES256') throw new AuthError(`IAP assertion signed with ${String(alg)}, not ES256`)
    let ticket
    try {
      ticket = await this.#verify(assertion, await this.#keys(false))
    } catch (err) {
      if (err instanceof IapKeysUnavailableError) throw err
      // A key id we have not seen: Google may have rotated its keys since we fetched them.
      if (!/No pem found/.test((err as Error).message)) throw new AuthError((err as Error).message)
      try {
        ticket = await this.#verify(assertion, await this.#keys(true))
      } catch (again) {
        if (again instanceof IapKeysUnavailableError) throw again
        throw new AuthError((again as Error).message)
      }
    }
    const payload = ticket.getPayload()
    const who = payload?.email ?? payload?.sub
    if (who === undefined) throw new AuthError('IAP assertion names nobody')
    return { who, via: 'iap' }
  }

  async #keys (refresh: boolean): Promise<PublicKeys> {
    try {
      return await this.keys(refresh)
    } catch (err) {
      throw new IapKeysUnavailableError(`IAP's public keys could not be fetched: ${(err as Error).message}`, { cause: err })
    }
  }

  async #verify (assertion: string, keys: PublicKeys): Promise<Awaited<ReturnType<OAuth2Client['verifySignedJwtWithCertsAsync']>>> {
    return await this.#client.verifySignedJwtWithCertsAsync(assertion, keys, this.audience, [IAP_ISSUER])
  }
}

/** Whether `given` is the token, in a time that does not depend on where they differ (or on their lengths). */
export function tokenMatches (given: string, token: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest()
  return timingSafeEqual(digest(given), digest(token))
}

export const SESSION_COOKIE = 'admin_session'
/** How long a sign-in with the token lasts. */
export const SESSION_MS = 8 * 3600_000

/**
 * A sign-in as a cookie value: its end, and a MAC of it keyed by the token. Any instance that has
 * the token checks it, and changing the token signs everybody out.
 */
export function sessionCookie (token: string, now = Date.now()): string {
  const until = String(now + SESSION_MS)
  return `${until}.${createHmac('sha256', token).update(`admin-session:${until}`).digest('base64url')}`
}

export function sessionValid (token: string, cookie: string | undefined, now = Date.now()): boolean {
  if (cookie === undefined) return false
  const [until, mac] = cookie.split('.')
  if (until === undefined || mac === undefined || !/^\d{1,15}$/.test(until) || Number(until) <= now) return false
  const expected = createHmac('sha256', token).update(`admin-session:${until}`).digest('base64url')
  return tokenMatches(mac, expected)
}

export interface AdminAuthOptions {
  token?: string
  iap?: IapVerifier
}

/**
 * Who the request comes from, or undefined when it proves nothing: IAP's header first (when IAP
 * is configured, a request that carries a bad one is refused, not tried with the token), then
 * `Authorization: Bearer <token>`, then the sign-in cookie.
 */
export async function operatorOf (request: FastifyRequest, { token, iap }: AdminAuthOptions): Promise<Operator | undefined> {
  const assertion = request.headers[IAP_HEADER]
  if (iap !== undefined && typeof assertion === 'string') return await iap.verify(assertion)
  if (token === undefined) return undefined
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1]
  if (bearer !== undefined) {
    if (!tokenMatches(bearer, token)) throw new AuthError('wrong bearer token')
    return { who: 'token (bearer)', via: 'bearer' }
  }
  if (sessionValid(token, request.cookies?.[SESSION_COOKIE])) return { who: 'token (signed in)', via: 'session' }
  return undefined
}
