import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { loggerOptions } from './logger.js'
import { startTelemetry } from './telemetry/index.js'

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

  // Before the app: the Firestore client takes its tracer when it is made. Off: nothing of it is loaded.
  const telemetry = config.telemetry === undefined ? undefined : await startTelemetry(config.telemetry)
  const app = await buildApp(config, {
    telemetry,
    logger: loggerOptions({
      level: config.logLevel,
      pretty,
      projectId: config.projectId,
      serviceContext: { service: config.service.name, version: config.service.version }
    })
  })

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
