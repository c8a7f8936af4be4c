import { enableCompileCache } from 'node:module'
import { join } from 'node:path'
import { projectRoot } from './lib/project-root.js'

// V8's compile cache (filled when the image is built) before the rest of the server is loaded: a
// static import would be compiled before this line runs, so what follows is imported dynamically.
if (process.env.NODE_COMPILE_CACHE === undefined) enableCompileCache(join(projectRoot, 'dist', 'compile-cache'))
const [{ default: closeWithGrace }, { pino }, { buildApp }, { ConfigError, loadConfig }, { loggerOptions }, { startTelemetry }] = await Promise.all([
  import('close-with-grace'), import('pino'), import('./app.js'), import('./config.js'), import('./logger.js'), import('./telemetry/index.js')
])

// Choose log format by where stdout goes, not by NODE_ENV: JSON for Cloud Logging, pretty in a terminal.
const pretty = process.stdout.isTTY === true

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    pino(loggerOptions({ level: 'info', pretty })).fatal(err.message)
    process.exitCode = 1
    return
  }

  // Made here, not by Fastify: pino looks at its caller's stack (to resolve a transport), and with
  // --enable-source-maps each bundle file on that stack has its source map parsed; from here, only this one's.
  const logger = pino(loggerOptions({
    level: config.logLevel,
    pretty,
    projectId: config.projectId,
    serviceContext: { service: config.service.name, version: config.service.version }
  }))
  // Before the app: the Firestore client takes its tracer when it is made. Off: nothing of it is loaded.
  const telemetry = config.telemetry === undefined ? undefined : await startTelemetry(config.telemetry)
  const app = await buildApp(config, { telemetry, loggerInstance: logger })

  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    app.log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`)
    await app.close()
    process.exitCode = 1
    return
  }

  // Cloud Run sends SIGTERM and kills the instance 10 s later: finish what is in flight before that.
  closeWithGrace({ delay: config.shutdownTimeoutMs, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an unexpected error')
    else app.log.info({ signal }, 'closing: finishing the requests in flight')
    await app.close()
  })
}

await main()
