import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'
import t from 'tap'
import { createCache, RedisStore } from '@visitme/memcache'
import { guestbookNamespace, greetingsKey } from '../../src/guestbook/cache-keys.js'
import { freePort } from '../helpers/ports.js'
import { redisReady, redisTarget, testRedis, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'
import { TOKEN } from './admin-app.js'

// Debian's Chromium: nothing is downloaded at run time.
const CHROMIUM = '/usr/bin/chromium'
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))

t.test('the cache console in a real browser, against the built server on Redis', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install chromium)`)
    return
  }
  const redis = redisTarget()
  const cacheNamespace = uniqueName('console')
  const port = await freePort()
  const child = spawn(process.execPath, [serverJs], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      REDISHOST: redis.host,
      REDISPORT: String(redis.port),
      METADATA_SERVER_DETECTION: 'none',
      CACHE_NAMESPACE: cacheNamespace,
      RATE_LIMIT_WRITES: '0',
      LOG_LEVEL: 'warn',
      SESSION_SECRET: 'a-test-secret-that-is-long-enough-for-signing',
      ADMIN_TOKEN: TOKEN
    },
    stdio: 'ignore'
  })
  t.teardown(() => { child.kill('SIGTERM') })
  const base = `http://127.0.0.1:${port}`
  await waitFor('the server', async () => await fetch(`${base}/health`).then((r) => r.ok, () => false), 10_000)

  // The app's cache as another instance sees it: same Redis, same namespaces.
  const cache = createCache({ store: new RedisStore(await redisReady(testRedis(t))), namespace: `${cacheNamespace}/e2e` })
  const other = cache.namespaced(`${cacheNamespace}/other`)
  await cache.set('greeting', { text: 'hello <b>world</b>', n: 1 }, { ttl: 600 })
  await other.set('kept', 'still here')

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run']
  })
  t.teardown(async () => { await browser.close() })
  const violations: string[] = []
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()) })

  t.test('refused without credentials: sent to the sign-in form, and a wrong token is refused', async (t) => {
    const response = await page.goto(`${base}/admin/`)
    t.match(page.url(), /\/admin\/login\?next=%2Fadmin%2F$/)
    t.equal(response?.status(), 200)
    const json = await fetch(`${base}/admin/`, { headers: { accept: 'application/json' } })
    t.equal(json.status, 401, 'a program without credentials')
    await page.fill('input[name=token]', 'not the token')
    await page.click('form.login button')
    t.equal(await page.locator('p.flash').textContent(), 'That is not the console\'s token.')
  })

  t.test('signs in and sees every namespace, the chart and Redis', async (t) => {
    await page.fill('input[name=token]', TOKEN)
    await page.click('form.login button')
    await page.waitForURL(`${base}/admin/`)
    t.equal(await page.locator('h1').textContent(), 'Cache console')
    t.ok(await page.locator(`tr[data-namespace="${cacheNamespace}/visits"]`).count(), 'the features\' namespaces are listed')
    t.match(await page.locator('figure.chart svg').getAttribute('aria-label'), /^Hit ratio \(line\) and reads per minute \(bars\), \d\d:\d\d to \d\d:\d\d UTC$/)
    t.match(await page.locator('table.servers').textContent(), /\d+\.\d+\.\d+.*(noeviction|allkeys|volatile)/s, 'the Redis version and eviction policy')
  })

  t.test('finds a key the test set through the cache API, edits it, and the API sees the change', async (t) => {
    await page.click('nav.admin a[href="/admin/key"]')
    await page.fill('form.find input[name=namespace]', `${cacheNamespace}/e2e`)
    await page.fill('form.find input[name=key]', 'greeting')
    await page.click('form.find button')
    t.equal(await page.locator('section.found h2').textContent(), 'Found: greeting')
    t.equal(await page.locator('dd.type').textContent(), 'object')
    t.equal(await page.locator('pre.value').textContent(), JSON.stringify({ text: 'hello <b>world</b>', n: 1 }, null, 2), 'shown as text, not markup')
    t.equal(await page.locator('pre.value b').count(), 0)
    t.match(await page.locator('dd.ttl').textContent(), /^\d+ s$/)
    await page.fill('form.edit textarea[name=value]', '{"text":"edited in the browser","n":2}')
    await page.fill('form.edit input[name=ttl]', '300')
    await page.click('form.edit button')
    t.equal(await page.locator('p.flash').textContent(), 'Saved.')
    t.same(await cache.get('greeting'), { text: 'edited in the browser', n: 2 })
    await page.selectOption('form.edit select[name=type]', 'number')
    await page.fill('form.edit textarea[name=value]', '7')
    await page.click('form.edit button')
    t.equal(await cache.get('greeting'), 7, 'typed: a number')
  })

  t.test('a hammered key rises to the top of the hot keys', async (t) => {
    const book = uniqueName('hot')
    for (let i = 0; i < 400; i++) {
      const response = await fetch(`${base}/guestbook?guestbook_name=${book}`)
      await response.arrayBuffer()
    }
    await page.goto(`${base}/admin/`)
    const first = page.locator('table.hot tbody tr').first()
    t.equal(await first.locator('td').first().textContent(), greetingsKey(book))
    t.equal(await first.locator('td[data-label=Namespace]').textContent(), guestbookNamespace(cacheNamespace))
    t.match(await first.locator('td[data-label=Share]').textContent(), /^\d+\.\d %$/)
  })

  t.test('flushes one namespace after confirming it; other namespaces are untouched', async (t) => {
    await page.goto(`${base}/admin/flush?namespace=${encodeURIComponent(`${cacheNamespace}/e2e`)}`)
    t.equal(await page.locator('form.flush input[name=namespace]').inputValue(), `${cacheNamespace}/e2e`)
    await page.fill('form.flush input[name=confirm]', 'not it')
    await page.click('form.flush button')
    t.match(await page.locator('h1').textContent(), 'Not accepted')
    t.equal(await cache.get('greeting'), 7, 'not flushed without the confirmation')

    await page.goBack()
    await page.fill('form.flush input[name=namespace]', `${cacheNamespace}/e2e`)
    await page.fill('form.flush input[name=confirm]', `${cacheNamespace}/e2e`)
    await page.click('form.flush button')
    await page.waitForURL(/\/admin\/\?flushed=/)
    t.match(await page.locator('p.flash').textContent(), `Namespace ${cacheNamespace}/e2e flushed.`)
    t.equal(await cache.get('greeting'), undefined, 'the namespace is empty')
    t.equal(await other.get('kept'), 'still here', 'another namespace is untouched')
  })

  t.test('a fresh browser without credentials is refused', async (t) => {
    const stranger = await browser.newPage()
    t.teardown(async () => { await stranger.close() })
    await stranger.goto(`${base}/admin/key?namespace=x&key=y`)
    t.match(stranger.url(), /\/admin\/login\?next=/)
    const post = await fetch(`${base}/admin/flush`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'namespace=x&confirm=x' })
    t.equal(post.status, 401)
  })

  t.test('our own pages pass our own Content Security Policy', async (t) => {
    t.same(violations, [])
  })
})
