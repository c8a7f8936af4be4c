import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { freePort } from '../helpers/ports.js'
import { emulatorHost, redisTarget, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'

// Debian's Chromium: nothing is downloaded at run time.
const CHROMIUM = '/usr/bin/chromium'
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))

t.test('in a real browser, against the running server on Redis and the Firestore emulator', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install chromium)`)
    return
  }
  const redis = redisTarget()
  /** The built server on a port, with Redis and the emulator; stopped when the test ends, or by the caller. */
  async function serve (port: number, env: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn(process.execPath, [serverJs], {
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
        LOG_LEVEL: 'warn',
        ...env
      },
      stdio: 'ignore'
    })
    t.teardown(() => { child.kill('SIGTERM') })
    await waitFor('the server', async () => await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false), 10_000)
    return child
  }
  const port = await freePort()
  await serve(port, { SESSION_SECRET: 'a-test-secret-that-is-long-enough-for-signing' })
  const base = `http://127.0.0.1:${port}`

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run']
  })
  t.teardown(async () => { await browser.close() })
  // Our own pages must pass our own Content Security Policy.
  const violations: string[] = []
  async function newPage (viewport?: { width: number, height: number }): Promise<Page> {
    const page = await browser.newPage(viewport === undefined ? {} : { viewport })
    page.setDefaultTimeout(10_000)
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()) })
    return page
  }
  const page = await newPage()

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

  t.test('the stats page: a chart with a time axis, and when the numbers were counted', async (t) => {
    await page.goto(`${base}/stats`)
    t.match(await page.locator('main > p.note').first().textContent(), /^Counted at \d\d:\d\d:\d\d UTC \((just now|\d+ seconds? ago)\); counted again at most every 10 seconds\.$/)
    const labels = await page.locator('figure.chart svg text').allTextContents()
    t.ok(labels.includes('now') && labels.includes('100%'), `axis labels: ${labels.join(', ')}`)
    t.notMatch(await page.locator('h2').textContent(), /\b(0|1) minutes\b/)
  })

  t.test('at 390 px wide (a phone) no page scrolls sideways, and the stats stay readable', async (t) => {
    const phone = await newPage({ width: 390, height: 844 })
    t.teardown(async () => { await phone.close() })
    for (const path of ['/', '/guestbook', '/tasks', '/stats', '/no-such-page']) {
      await phone.goto(`${base}${path}`)
      const [scroll, client] = await phone.evaluate('[document.documentElement.scrollWidth, document.documentElement.clientWidth]') as [number, number]
      t.ok(scroll <= client, `${path}: ${scroll} px of content in ${client} px`)
    }
    await phone.goto(`${base}/stats`)
    // A namespace is one line, not a column of letters.
    const name = phone.locator('table.stats td:first-child').first()
    const box = (await name.boundingBox())!
    const lineHeight = Number.parseFloat(await phone.evaluate('getComputedStyle(document.querySelector("table.stats td:first-child")).lineHeight') as string)
    t.ok(box.height < 2 * lineHeight, `the namespace cell is ${box.height} px high, one line of ${lineHeight} px`)
    t.ok(box.width > 200, `and ${box.width} px wide`)
    t.equal(await phone.evaluate('getComputedStyle(document.querySelector("table.stats td[data-label=Hits]"), "::before").content'), '"Hits"', 'each number is labelled')
    const chart = (await phone.locator('figure.chart svg').boundingBox())!
    t.ok(chart.width <= 390 && chart.width > 300, `the chart fits: ${chart.width} px`)
  })

  t.test('every error is a page with a way home', async (t) => {
    const missing = await page.goto(`${base}/no-such-page`)
    t.equal(missing?.status(), 404)
    t.equal(await page.locator('h1').textContent(), 'Page not found')
    t.equal(await page.evaluate('getComputedStyle(document.querySelector("nav")).display'), 'flex', 'styled')
    await page.click('main a[href="/"]')
    await page.waitForURL(`${base}/`)
    t.equal(await page.locator('h1').textContent(), 'Last 10 visits')

    const tooLong = await page.goto(`${base}/guestbook?guestbook_name=${'x'.repeat(101)}`)
    t.equal(tooLong?.status(), 400)
    t.equal(await page.locator('main p').first().textContent(), 'In the address, guestbook_name must not have more than 100 characters.')

    // Cookies past the server's header limit: Node's parser refuses the request before any route.
    const context = page.context()
    await context.addCookies(Array.from({ length: 5 }, (_, i) => ({ name: `big${i}`, value: 'x'.repeat(4000), url: base })))
    const refused = await page.goto(`${base}/`)
    t.equal(refused?.status(), 431)
    t.equal(await page.locator('h1').textContent(), 'Request too large')
    await context.clearCookies()

    // Fetched, not opened: Chromium's image viewer styles itself inline, which our CSP refuses.
    for (const url of ['/favicon.ico', await page.getAttribute('link[rel=icon]', 'href')]) {
      const icon = await context.request.get(`${base}${url!}`)
      t.equal(icon.status(), 200, `${url!}: the icon is served`)
      t.match(icon.headers()['content-type'], /^image\//)
    }
  })

  t.test('a blank greeting: the form again, with one message and the name kept', async (t) => {
    const book = uniqueName('blank')
    await page.goto(`${base}/guestbook?guestbook_name=${book}`)
    await page.fill('textarea[name=content]', '   ')
    await page.fill('input[name=author]', 'Chromium')
    await page.click('form.sign button')
    await page.locator('p.flash').waitFor()
    t.equal(await page.locator('p.flash').count(), 1)
    t.equal(await page.locator('p.flash').textContent(), 'Write a message before signing.')
    t.equal(await page.inputValue('input[name=author]'), 'Chromium')
    t.equal(await page.locator('article.greeting').count(), 0)
  })

  t.test('a form open across a restart (no SESSION_SECRET): back to the form with what was typed, then signed', async (t) => {
    const restartPort = await freePort()
    const restartBase = `http://127.0.0.1:${restartPort}`
    const first = await serve(restartPort)
    const book = uniqueName('restart')
    await page.goto(`${restartBase}/guestbook?guestbook_name=${book}`)
    const message = `Typed before the restart <${book}>`
    await page.fill('textarea[name=content]', message)
    await page.fill('input[name=author]', 'Chromium')
    first.kill('SIGTERM')
    await once(first, 'exit')
    await serve(restartPort)
    const expired = page.waitForResponse((response) => response.url().startsWith(`${restartBase}/sign`))
    await page.click('form.sign button')
    t.equal((await expired).status(), 403)
    await page.locator('p.flash').waitFor()
    t.match(await page.locator('p.flash').textContent(), /^The form had expired, so your message was not posted\./)
    t.equal(await page.inputValue('textarea[name=content]'), message, 'the message is still there')
    t.equal(await page.inputValue('input[name=author]'), 'Chromium')
    await page.click('form.sign button')
    await page.waitForURL(/\/guestbook\?guestbook_name=/)
    t.equal(await page.locator('article.greeting blockquote').first().textContent(), message, 'and signed the second time')
  })

  t.test('no page broke the Content Security Policy', async (t) => {
    t.same(violations, [])
  })
})
