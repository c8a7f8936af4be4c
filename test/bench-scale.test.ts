import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { alive, portAnswers } from '../bench/lib/processes.js'
import type { ScaleResults } from '../bench/scale.js'
import { runHarness } from './helpers/harness-run.js'

// The scale simulation in smoke mode (2 s per process count): that it runs, checks coherence and
// cleans up. No throughput is asserted beyond "requests were served".
const root = fileURLToPath(new URL('..', import.meta.url))

t.test('the scale simulation runs 1 and 2 processes in smoke mode, finds the lists coherent and leaves nothing running', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'visitme-scale-test-'))
  t.teardown(async () => { await rm(out, { recursive: true, force: true }) })
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['SCALE_PROCESSES', 'SCALE_SECONDS', 'SCALE_CONNECTIONS', 'SCALE_SHARDS', 'SCALE_NEW_SHARE']) delete env[name]
  // The test command's emulator saves the start of another; the simulation always runs its own redis-server.
  env.BENCH_FIRESTORE_EMULATOR = process.env.TEST_FIRESTORE_EMULATOR ?? ''

  const file = join(out, 'scale.json')
  // Bounded: past 80 s the simulation is interrupted (it then stops what it started) and the test fails.
  const { code, stdout, stderr } = await runHarness(t, ['--conditions=visitme-source', '--import', 'tsx', join(root, 'bench', 'scale.ts'), '--smoke', '--out', file], { cwd: root, env, limitMs: 80_000 })
  if (code === 'timeout') {
    t.fail(`the smoke run took longer than 80 s\n${stderr}`)
    return
  }
  t.equal(code, 0, 'exit code 0: every check held', { stderr, stdout })

  const results = JSON.parse(await readFile(file, 'utf8')) as ScaleResults
  t.equal(results.mode, 'smoke')
  t.same(results.runs.map((r) => r.processes), [1, 2], 'one process, then two')
  for (const run of results.runs) {
    t.ok(run.requests > 0 && (run.xCache.hit ?? 0) > 0 && run.visitsStored > 0, `${run.processes}: hits and stored visits (${JSON.stringify(run.xCache)})`)
    t.same(run.checks.filter((c) => !c.ok), [], `${run.processes}: every coherence check held`)
    t.equal(run.checks.filter((c) => c.name.endsWith('lists the 10 latest stored')).length, run.processes, `${run.processes}: each process's list checked`)
    t.ok(run.serverCpuPercent.length === run.processes && Number.isFinite(run.serverMicrosPerResponse), `${run.processes}: server CPU of each process`)
    t.ok(run.redis.evalshaPerStoredVisit > 0 && run.redis.evalshaMicrosPerCall > 0, `${run.processes}: the list scripts measured`)
  }
  t.match(stdout, /\| processes \| req\/s \|[\s\S]*\n\| 2 \|/, 'the table is printed')

  // Nothing it started is left: no process, no port answering.
  t.ok(results.started.length >= 4, 'it lists what it started')
  for (const { what, pid, port } of results.started) {
    t.notOk(alive(pid), `${what} (pid ${pid}) is gone`)
    if (port !== undefined) t.notOk(await portAnswers(port), `${what}: port ${port} no longer answers`)
  }
})
