import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { variables } from '../src/config.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')

t.test('docker-compose.yml is valid and runs the app with Redis and the Firestore emulator', async (t) => {
  const check = spawnSync('docker-compose', ['config', '-q'], { cwd: root, encoding: 'utf8' })
  if (check.error !== undefined) {
    t.fail('docker-compose is not installed: it validates the compose file (Debian: apt-get install docker-compose)')
    return
  }
  t.equal(check.status, 0, `docker-compose config: ${check.stderr}`)
  const compose = parse(read('docker-compose.yml'))
  t.same(Object.keys(compose.services).sort(), ['app', 'firestore', 'redis'])
  t.match(compose.services.app.environment, { REDISHOST: 'redis', REDISPORT: '6379', FIRESTORE_EMULATOR_HOST: 'firestore:8681' })
  t.match(compose.services.firestore.command.join(' '), /emulators firestore start --host-port=0\.0\.0\.0:8681/)
})

t.test('service.yaml is a Cloud Run service reaching Memorystore through a VPC connector', async (t) => {
  const service = parse(read('service.yaml'))
  t.equal(service.apiVersion, 'serving.knative.dev/v1')
  t.equal(service.kind, 'Service')
  const template = service.spec.template
  t.match(template.metadata.annotations['run.googleapis.com/vpc-access-connector'], /^projects\/.+\/locations\/.+\/connectors\/.+$/)
  t.equal(template.metadata.annotations['run.googleapis.com/vpc-access-egress'], 'private-ranges-only')
  t.type(template.spec.containerConcurrency, 'number')
  const container = template.spec.containers[0]
  const env = Object.fromEntries(container.env.map((e: { name: string, value: string }) => [e.name, e.value]))
  t.ok(env.REDISHOST, 'REDISHOST set')
  t.equal(env.REDISPORT, '6379')
  t.same(container.startupProbe.httpGet, { path: '/health', port: 8080 })
  t.equal(container.ports[0].containerPort, 8080)
})

t.test('the Dockerfile: multi-stage, a supported LTS, non-root, node as the command', async (t) => {
  const dockerfile = read('Dockerfile')
  const stages = [...dockerfile.matchAll(/^FROM node:(\d+)-slim/gm)]
  t.equal(stages.length, 2, 'a build stage and a runtime stage')
  for (const [, major] of stages) t.ok(Number(major) >= 22 && Number(major) % 2 === 0, `node ${major} is an LTS line`)
  t.match(dockerfile, /^USER node$/m)
  t.match(dockerfile, /^CMD \["node", "dist\/server\.js"\]$/m)
  t.notMatch(dockerfile, /CMD \["npm"/)
  t.match(read('.dockerignore'), /^node_modules$/m)
})

t.test('.env.example lists every variable the service reads, each with a comment', async (t) => {
  const lines = read('.env.example').split('\n')
  // A variable line may itself be commented out ("# NAME=value"); its comment is the prose above it.
  const variableLine = /^(?:# )?([A-Z_]+)=/
  const listed = lines.flatMap((line, i) => {
    const name = variableLine.exec(line)?.[1]
    const above = lines.slice(0, i).reverse().find((l) => !variableLine.test(l))
    return name === undefined ? [] : [{ name, commented: above?.startsWith('#') ?? false }]
  })
  const names = listed.map((v) => v.name)
  for (const variable of variables.filter((v) => v !== 'K_SERVICE' && v !== 'K_REVISION')) t.ok(names.includes(variable), `${variable} is listed`)
  for (const { name, commented } of listed) t.ok(commented, `${name} has a comment`)
  t.same(lines.filter((l) => /^[A-Z_]+=/.test(l)), [], 'every variable is optional: no line sets one, so a copy changes nothing')
})

t.test('the README\'s configuration table documents every variable the service reads', async (t) => {
  const documented = new Set([...read('README.md').matchAll(/^\| `([A-Z_]+)` \|/gm)].map(([, name]) => name))
  for (const variable of variables.filter((v) => v !== 'K_SERVICE' && v !== 'K_REVISION')) t.ok(documented.has(variable), `${variable} is documented`)
})

t.test('the Node.js versions: declared, the image\'s major among them, CI on it, types to match', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string }, devDependencies: Record<string, string>, allowScripts: Record<string, boolean> }
  const imageMajor = Number(/^FROM node:(\d+)-slim/m.exec(read('Dockerfile'))?.[1])
  // Node 22 is the oldest maintained LTS line, and what cookie@2 and @google-cloud/firestore 9 require.
  t.equal(pkg.engines.node, '>=22', 'every maintained LTS line, 20 (end of life) not')
  t.ok(imageMajor >= 22, `the image's Node ${imageMajor} is within engines`)
  t.equal(/^node_major=(\d+)$/m.exec(read('.ci/run'))?.[1], String(imageMajor), 'CI runs the tests on the image\'s major')
  t.match(pkg.devDependencies['@types/node'], new RegExp(`^\\^${imageMajor}\\.`), '@types/node of the image\'s major')
})

t.test('every install script is decided in allowScripts: none left for npm ci to warn about', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { allowScripts: Record<string, boolean> }
  // Both are denied: esbuild's postinstall checks the binary its platform package (an optional dependency
  // npm installs) already brings, or downloads one outside npm; tsx runs on esbuild without it. protobufjs's
  // only warns when a dependent names it with another version scheme.
  t.same(pkg.allowScripts, { esbuild: false, protobufjs: false })
  const listed = spawnSync('npm', ['install-scripts', 'ls', '--json'], { cwd: root, encoding: 'utf8' })
  t.equal(listed.status, 0, listed.stderr)
  t.same(JSON.parse(listed.stdout), { allowScripts: [] }, 'npm install-scripts ls finds nothing unreviewed')
})
