import { existsSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { alive, portAnswers } from '../bench/lib/processes.js'
import type { BenchResults } from '../bench/lib/report.js'
import { runHarness } from './helpers/harness-run.js'

// The benchmark harness in smoke mode (~1 s per scenario): that it runs, reports and cleans up.
// Benchmarks are not timed tests: no figure is asserted beyond "requests were served".
const root = fileURLToPath(new URL('..', import.meta.url))
const committed = join(root, 'bench', 'results', 'latest.json')

t.test('the benchmark harness runs every scenario in smoke mode, writes elsewhere and leaves nothing running', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'visitme-bench-test-'))
  t.teardown(async () => { await rm(out, { recursive: true, force: true }) })
  const committedBefore = existsSync(committed) ? statSync(committed).mtimeMs : undefined

  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_SMOKE: '1' }
  for (const name of ['BENCH_SECONDS', 'BENCH_WARMUP_SECONDS', 'BENCH_CONNECTIONS', 'BENCH_OUT', 'BENCH_SERVER', 'BENCH_COLD_EXPIRY', 'BENCH_COLD_TTL', 'BENCH_COLD_DELETE_MS', 'BENCH_TURNS', 'BENCH_TURN_SECONDS', 'BENCH_COLDSTART_ROUNDS', 'BENCH_NODE_OPTIONS']) delete env[name]
  // The test command's emulator saves the ~3 s start of another; the harness always runs its own redis-server.
  if (process.env.TEST_FIRESTORE_EMULATOR !== undefined && process.env.TEST_FIRESTORE_EMULATOR !== '') env.BENCH_FIRESTORE_EMULATOR = process.env.TEST_FIRESTORE_EMULATOR
  else delete env.BENCH_FIRESTORE_EMULATOR

  const started = performance.now()
  // Bounded: past 65 s (five scenarios and the library section; tap allows the file 90 s) the harness is interrupted (it then stops what it started) and the test fails.
  const { code, stdout, stderr } = await runHarness(t, ['--import', 'tsx', join(root, 'bench', 'run.ts'), '--smoke', '--out', out], { cwd: root, env, limitMs: 65_000 })
  if (code === 'timeout') {
    t.fail(`the smoke run took longer than 65 s\n${stderr}`)
    return
  }
  t.comment(`smoke run: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  t.equal(code, 0, 'exit code 0', { stderr })

  const results = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as BenchResults
  t.equal(results.mode, 'smoke')
  t.same(results.scenarios.map((s) => s.name), ['LIMIT', 'HIT', 'HIT+OTEL', 'NEW', 'COLD'], 'every scenario, in order')
  for (const s of results.scenarios) {
    t.ok(s.requests > 0 && s.reqPerSec > 0, `${s.name}: requests served (${s.requests})`)
    t.ok(Number.isFinite(s.latencyMs.p50) && Number.isFinite(s.latencyMs.p99), `${s.name}: latencies`)
    t.ok(Number.isInteger(s.errors) && Number.isInteger(s.non2xx), `${s.name}: errors and non-2xx counted`)
    t.ok(Number.isFinite(s.ratioToLimit), `${s.name}: ratio to LIMIT`)
    t.ok(s.rssMaxMB.length === s.servers && s.rssMaxMB.every((mb) => mb > 0), `${s.name}: RSS of each server process`)
    t.ok(s.redis !== null && Number.isFinite(s.redis.perRequest), `${s.name}: Redis commands counted`)
    if (s.name === 'LIMIT') {
      t.equal(s.firestore, null, 'LIMIT has no Firestore')
    } else {
      const fs = s.firestore
      t.ok(fs !== null && [fs.perRequest.queries, fs.perRequest.documentsRead, fs.perRequest.writes].every(Number.isFinite), `${s.name}: Firestore counted`)
      t.ok(s.nonHits !== null && Number.isInteger(s.nonHits), `${s.name}: non-hits counted`)
    }
  }
  const cold = results.scenarios.find((s) => s.name === 'COLD')
  t.equal(cold?.servers, 2, 'COLD runs two server processes')
  t.ok(Number.isInteger(cold?.cold?.expiries), 'COLD counts expiries')
  t.same(results.library.operations.map((o) => o.name).slice(0, 3), ['get (hit)', 'set', 'incr'], 'the library section measures get, set and incr')
  t.ok(results.library.operations.some((o) => o.name.startsWith('memoized')), 'and a memoized call')
  for (const o of results.library.operations) {
    t.ok(o.library.ops > 0 && o.bare.ops > 0 && Number.isFinite(o.ratio) && o.library.cpuMicrosPerOp > 0, `library: ${o.name} measured on both sides`)
  }
  t.match(stdout, /The cache library against bare ioredis[\s\S]*\| \*\*get \(hit\)\*\* \|/, 'and printed')
  t.equal(results.hitPath.visitsListed, 10, 'HIT and LIMIT serve the 10-visit page')
  t.ok(Number.isFinite(results.hitPath.cpuRatio) && Number.isFinite(results.hitPath.turnsCpuRatio) && Number.isFinite(results.hitPath.reqPerSecRatio), 'HIT against LIMIT: the ratios')
  t.same(results.hitPath.sideBySide.map((s) => s.name), ['Redis + emulator', 'Redis only'], 'side by side: the bench\'s HIT server, then one without a Firestore client')
  t.equal(results.hitPath.cpuRatio, results.hitPath.sideBySide[0]?.cpuRatio, 'the headline is the side-by-side ratio of the bench\'s HIT server')
  for (const side of results.hitPath.sideBySide) {
    t.equal(side.rounds.length, 1, `side by side (${side.name}): one round in smoke mode`)
    for (const round of side.rounds) {
      for (const [name, server] of [['HIT', round.hit], ['LIMIT', round.limit]] as const) {
        t.ok(server.requests > 0 && server.userMicrosPerResponse > 0 && server.systemMicrosPerResponse >= 0, `side by side (${side.name}): ${name} served and its CPU was read`)
        t.equal(server.errors + server.non2xx, 0, `side by side (${side.name}): ${name} answered every request`)
      }
      t.equal(round.hit.hits, round.hit.requests, `side by side (${side.name}): every HIT response was x-cache: hit`)
      t.ok(Number.isFinite(round.cpuRatio) && round.cpuRatio > 0, `side by side (${side.name}): a ratio`)
    }
  }
  t.notMatch(results.notes.join('\n'), /Redis-only HIT server answered/, 'the Redis-only HIT server served the HIT page from Redis')
  t.match(stdout, /### HIT and LIMIT side by side[\s\S]*\| \*\*Redis only\*\* \| \*\*median\*\* \|/, 'the side-by-side table is printed')
  for (const name of ['HIT', 'LIMIT']) {
    t.equal(results.scenarios.find((s) => s.name === name)?.turns?.length, 1, `${name}: one turn in smoke mode`)
  }
  t.same(results.coldStarts.series.map((s) => s.name), ['bare Fastify', 'embedded', 'Redis + emulator'], 'COLDSTART: the bare process and both set-ups')
  for (const s of results.coldStarts.series) {
    t.ok(s.ms.length === 1 && s.medianMs > 0 && s.cpuMedianMs >= 0 && s.firstRequestMedianMs > 0 && Number.isFinite(s.ratioToBare), `COLDSTART ${s.name}: measured`)
  }
  t.same(results.coldStarts.series[2]?.databaseCalls, [0], 'the first page of a process with the list in Redis makes no Firestore call')
  t.match(stdout, /### COLDSTART[\s\S]*\| \*\*Redis \+ emulator\*\* \|/, 'the COLDSTART table is printed')
  t.equal(results.coldStart.each.length, 4, 'a cold start per real server process (HIT+OTEL\'s in its note)')
  t.match(results.notes.join('\n'), /HIT\+OTEL: the server sent [1-9]\d* OTLP requests/, 'HIT+OTEL exported to the harness\'s sink')
  t.ok(results.coldStart.each.every((c) => c.ms > 0))
  t.match(stdout, /\| \*\*HIT\*\* \|/, 'the table is printed')
  t.match(await readFile(join(out, 'latest.md'), 'utf8'), /\| \*\*COLD\*\* \|/)
  t.match(await readFile(join(out, 'latest.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*LIMIT[\s\S]*<\/svg>\n$/)
  t.equal(existsSync(committed) ? statSync(committed).mtimeMs : undefined, committedBefore, 'bench/results/latest.json untouched')

  // Nothing it started is left: no process, no port answering.
  t.ok(results.started.length >= 6, 'the harness lists what it started')
  for (const { what, pid, port } of results.started) {
    t.notOk(alive(pid), `${what} (pid ${pid}) is gone`)
    if (port !== undefined) t.notOk(await portAnswers(port), `${what}: port ${port} no longer answers`)
  }
})
