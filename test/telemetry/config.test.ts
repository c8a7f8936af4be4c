import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'

t.test('telemetry is off without an OTLP endpoint, and on for the signals that have one', async (t) => {
  t.equal(loadConfig({}).telemetry, undefined, 'off by default')
  t.equal(loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).telemetry, undefined, 'a protocol alone turns nothing on')
  t.same(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).telemetry,
    { traces: true, metrics: true, serviceName: 'visitme', serviceVersion: undefined })
  t.same(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector:4318/v1/traces', K_SERVICE: 'visitme-prod', K_REVISION: 'visitme-prod-00042' }).telemetry,
    { traces: true, metrics: false, serviceName: 'visitme-prod', serviceVersion: 'visitme-prod-00042' }, 'traces alone; named as Cloud Run names the service')
  t.same(loadConfig({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://localhost:4318/v1/metrics', OTEL_SERVICE_NAME: 'shop' }).telemetry,
    { traces: false, metrics: true, serviceName: 'shop', serviceVersion: undefined })
  t.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }).telemetry, undefined, 'OTEL_SDK_DISABLED wins')
})

t.test('a bad OTLP setting stops start-up, naming the variable', async (t) => {
  t.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http' }), new ConfigError(
    'Invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL="http" is invalid: must be one of http/protobuf, http/json, grpc'))
  t.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'json' }), { message: /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="json" is invalid/ })
  t.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), new ConfigError(
    'Invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318" is invalid: must be an http:// or https:// URL'))
  t.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://' }), { message: /OTEL_EXPORTER_OTLP_METRICS_ENDPOINT/ })
})
