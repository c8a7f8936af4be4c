import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { emulatorHost, freePort, redisTarget, uniqueName, waitFor } from '../helper.js'

// Debian's Chromium: nothing is downloaded at run time.
const CHROMIUM = '/usr/bin/chromium'
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))

t.test('in a real browser, against the running server on Redis and the Firestore emulator', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install chromium)`)
    return
  }
  const port = await freePort()
  const redis = redisTarget()
  const server = spawn(process.execPath, [serverJs], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      REDISHOST: redis.host,
      REDISPORT: String(redis.port),
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      METADATA_SERVER_DETECTION: 'none',
      CACHE_NAMESPACE: uniqueName('e2e'),
      VISITS_COLLECTION: uniqueName('visits'),
      SESSION_SECRET: 'a-test-secret-that-is-long-enough-for-signing',
      LOG_LEVEL: 'warn'
    },
    stdio: 'ignore'
  })
  t.teardown(() => { server.kill('SIGTERM') })
  const base = `http://127.0.0.1:${port}`
  await waitFor('the server', async () => await fetch(`${base}/health`).then((r) => r.ok, () => false), 10_000)

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run']
  })
  t.teardown(async () => { await browser.close() })
  const page: Page = await browser.newPage()
  page.setDefaultTimeout(10_000)
  // Our own pages must pass our own Content Security Policy.
  const violations: string[] = []
  page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()) })

  t.test('the visits page lists the visit', async (t) => {
    await page.goto(`${base}/`)
    t.equal(await page.title(), 'VisitMe example')
    t.equal(await page.locator('h1').textContent(), 'Last 10 visits')
    t.match(await page.locator('ul.visits li').first().textContent(), /127\.0\.0\.0: .*HeadlessChrome/)
    // Runs in the page, where getComputedStyle exists.
    t.equal(await page.evaluate('getComputedStyle(document.querySelector("nav")).display'), 'flex', 'the stylesheet is loaded under the CSP')
  })

  t.test('a guestbook greeting appears right after signing', async (t) => {
    const book = uniqueName('book')
    await page.goto(`${base}/guestbook?guestbook_name=${book}`)
    const message = `Hello from the browser <${book}>`
    await page.fill('textarea[name=content]', message)
    await page.fill('input[name=author]', 'Chromium')
    await page.click('form.sign button')
    await page.waitForURL(/\/guestbook\?guestbook_name=/)
    t.equal(await page.locator('article.greeting blockquote').first().textContent(), message)
    t.match(await page.locator('article.greeting p').first().textContent(), 'Chromium wrote:')
  })

  t.test('a task is added and deleted; an empty name is refused once', async (t) => {
    const name = uniqueName('task')
    await page.goto(`${base}/tasks`)
    await page.fill('form.add input[name=name]', name)
    await page.click('form.add button')
    await page.waitForURL(`${base}/tasks`)
    const row = page.locator('li.task', { hasText: name })
    await row.waitFor()
    t.equal(await row.count(), 1, 'the task is listed')
    await row.locator('button').click()
    // Waits for the page after the redirect: the row is gone from it, not just from the old one.
    await row.waitFor({ state: 'detached' })
    t.equal(await page.locator('li.task', { hasText: name }).count(), 0, 'and gone after delete')

    await page.click('form.add button')
    await page.locator('p.flash').waitFor()
    t.equal(await page.locator('p.flash').textContent(), 'Task name is required.')
    await page.reload()
    t.equal(await page.locator('p.flash').count(), 0, 'shown once')
  })

  t.test('the stats page shows the chart', async (t) => {
    await page.goto(`${base}/stats`)
    t.equal(await page.locator('h1').textContent(), 'Cache stats')
    t.equal(await page.locator('figure.chart svg[role=img]').count(), 1)
    t.ok(await page.locator('table.stats tbody tr').count() >= 4, 'a row per namespace')
  })

  t.test('no page broke the Content Security Policy', async (t) => {
    t.same(violations, [])
  })
})
