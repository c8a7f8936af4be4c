import { createSign, generateKeyPairSync } from 'node:crypto'
import type { IapKeySource } from '../../src/admin/auth.js'

/**
 * An IAP of the test's own: a P-256 key pair made here, its public key served as IAP's would be,
 * and assertions signed with its private key (or another's, to test a bad signature).
 */
export class TestIap {
  readonly kid = 'test-key-1'
  readonly #pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  /** How often the verifier asked for the keys. */
  fetches = 0

  readonly keys: IapKeySource = async () => {
    this.fetches++
    return { [this.kid]: this.#pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() }
  }

  /** An ES256 JWT as IAP signs it; every claim can be overridden, and another key can sign. */
  assertion (claims: Record<string, unknown>, { kid = this.kid, alg = 'ES256', otherKey = false } = {}): string {
    const now = Math.floor(Date.now() / 1000)
    const header = { alg, kid, typ: 'JWT' }
    const payload = { iss: 'https://cloud.google.com/iap', iat: now - 10, exp: now + 600, sub: 'accounts.google.com:1234', email: 'ops@example.com', ...claims }
    const encode = (part: object): string => Buffer.from(JSON.stringify(part)).toString('base64url')
    const signed = `${encode(header)}.${encode(payload)}`
    const key = otherKey ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey : this.#pair.privateKey
    // JWS wants the raw r||s signature, not DER.
    const signature = createSign('SHA256').update(signed).sign({ key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    return `${signed}.${signature}`
  }
}
