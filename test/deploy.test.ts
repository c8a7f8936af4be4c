import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig, variables } from '../src/config.js'
import { checkGcloud, cloudRunService, gcloudTree, shellCommands, validate } from './deploy-checks.js'

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

/**
 * service.yaml as the README deploys it: its sed command run on the file with the README's example
 * project and region (and a Memorystore address), so no placeholder is left.
 */
function deployedService (): { text: string, service: any } {
  const sed = shellCommands(read('README.md'), 'Deploy to Cloud Run').find((words) => words[0] === 'sed' && words.includes('service.yaml'))
  if (sed === undefined) throw new Error('the README no longer fills in service.yaml with sed')
  const values: Record<string, string> = { PROJECT_ID: 'my-project', REGION: 'europe-west1', REDISHOST: '10.1.2.3' }
  let text = read('service.yaml')
  sed.forEach((word, i) => {
    if (sed[i - 1] !== '-e') return
    const [, from, to, flags] = /^s\/([^/]*)\/([^/]*)\/(g?)$/.exec(word) ?? []
    if (from === undefined) throw new Error(`unexpected sed expression ${word}`)
    const replacement = to!.replace(/\$([A-Z_]+)/g, (_m, name: string) => values[name] ?? `$${name}`)
    text = flags === 'g' ? text.replaceAll(from, replacement) : text.replace(from, replacement)
  })
  return { text, service: parse(text) }
}

t.test('service.yaml, filled in as the README says, is a Knative service Cloud Run accepts: its fields, annotation names and values', async (t) => {
  const { text, service } = deployedService()
  t.notMatch(text.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n'), /PROJECT_ID|REGION/, 'no placeholder left')
  t.same(validate(cloudRunService, service), [], 'no unknown field or annotation, every value of the right type and within Cloud Run\'s limits')
  // The alternative the comments offer (Direct VPC egress) is valid too, in place of the connector.
  const direct = /run\.googleapis\.com\/network-interfaces: (.+)$/m.exec(text)?.[1]
  t.ok(direct !== undefined, 'the comments show the Direct VPC egress annotation')
  const annotations = { ...service.spec.template.metadata.annotations }
  delete annotations['run.googleapis.com/vpc-access-connector']
  annotations['run.googleapis.com/network-interfaces'] = parse(direct!)
  t.same(validate(cloudRunService, { ...service, spec: { template: { ...service.spec.template, metadata: { annotations } } } }), [], 'with Direct VPC egress instead of the connector')
  const container = service.spec.template.spec.containers[0]
  t.equal(container.startupProbe.httpGet.port, container.ports[0].containerPort, 'the startup probe asks the port the container serves')
  t.ok(service.spec.template.spec.timeoutSeconds * 1000 > loadConfig({}).shutdownTimeoutMs, 'a request may take longer than the shutdown window')
  // Schema-invalid variants are caught: the check itself is tested.
  const broken = structuredClone(service)
  broken.spec.template.metadata.annotations['autoscaling.knative.dev/maxScale'] = 10
  broken.spec.template.metadata.annotations['run.googleapis.com/vpc-access-egres'] = 'all-traffic'
  broken.spec.template.spec.containers[0].env.push({ name: 'PORT', value: '8080' }, { name: 'REDISPORT', value: 6379 })
  broken.spec.template.spec.containers[0].startupProbe.timeoutSeconds = 5
  t.same(validate(cloudRunService, broken).length, 5, `a number as an annotation, an unknown annotation, PORT, a number as a value and a probe timeout above its period are each refused:\n${validate(cloudRunService, broken).join('\n')}`)
})

t.test('the README\'s gcloud commands pass gcloud\'s own flag parsing (a dry parse, nothing runs)', async (t) => {
  const tree = gcloudTree()
  if (tree === undefined) {
    t.fail('the Google Cloud CLI is not installed: its command tree checks the README\'s commands (Debian, Google\'s repository: apt-get install google-cloud-cli)')
    return
  }
  const readme = read('README.md')
  const commands = [...shellCommands(readme, 'Local development'), ...shellCommands(readme, 'Deploy to Cloud Run'),
    ...shellCommands(readme, 'Coming from App Engine with your data'), ...shellCommands(readme, 'The cache console')].filter((words) => words[0] === 'gcloud')
  t.ok(commands.length >= 15, `${commands.length} gcloud commands`)
  for (const words of commands) {
    const { command, problems } = checkGcloud(tree, words.slice(1))
    t.same(problems, [], `gcloud ${command}`)
  }
  const deploy = commands.find((w) => w[1] === 'run' && w[2] === 'deploy')!
  const { service } = deployedService()
  t.equal(deploy[3], service.metadata.name, 'gcloud run deploy and service.yaml name the same service')
  const flag = (name: string) => deploy.find((w) => w.startsWith(`${name}=`))?.slice(name.length + 1)
  t.equal(flag('--vpc-egress'), service.spec.template.metadata.annotations['run.googleapis.com/vpc-access-egress'], 'the same VPC egress')
  t.match(flag('--set-env-vars') ?? '', /^([A-Z_]+=[^,]+)(,[A-Z_]+=[^,]+)*$/, '--set-env-vars is NAME=value,...')
  t.match(flag('--set-secrets') ?? '', /^([A-Z_]+=[a-z0-9-]+:(latest|[0-9]+))(,[A-Z_]+=[a-z0-9-]+:(latest|[0-9]+))*$/, '--set-secrets is NAME=secret:version,...')
  // The checker itself refuses what gcloud would.
  t.same(checkGcloud(tree, ['run', 'deploy', 'x', '--vpc-egress=private', '--allow-unauthenticated=yes', '--regoin=x']).problems.length, 3, 'a bad choice, a switch with a value and an unknown flag are refused')
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

t.test('every package script that runs a built file (node dist/...) names one the build writes', async (t) => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
  const targets = Object.entries(scripts).flatMap(([name, command]) => [...command.matchAll(/\bnode (dist\/\S+\.js)/g)].map(([, file]) => ({ name, file: file! })))
  t.ok(targets.some(({ name }) => name === 'migrate:shards'), 'the scripts are read')
  // npm test builds before the tests: dist/ is what `npm run build` wrote.
  for (const { name, file } of targets) t.ok(existsSync(new URL(`../${file}`, import.meta.url)), `npm run ${name}: ${file} is built`)
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
