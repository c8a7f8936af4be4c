/**
 * Checks of the deploy files that need no cloud: service.yaml against what Cloud Run accepts of a
 * Knative Service (for the fields and annotations this project uses), and the gcloud commands of
 * the README against gcloud's own command tree (a dry parse of their flags; nothing runs).
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'

// A small JSON-schema subset: enough for a manifest, no dependency.
export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean'
  properties?: Record<string, Schema>
  required?: string[]
  /** false: no other keys (Cloud Run rejects unknown fields); a schema: every other key's value. */
  additionalProperties?: false | Schema
  /** For an object's keys (with additionalProperties as a schema). */
  propertyNames?: Schema
  items?: Schema
  minItems?: number
  maxItems?: number
  enum?: readonly unknown[]
  pattern?: string
  minimum?: number
  maximum?: number
  /** Exactly one must match. */
  oneOf?: Schema[]
  /** A last word: returns what is wrong, or undefined. */
  check?: (value: any) => string | undefined
}

export function validate (schema: Schema, value: unknown, path = ''): string[] {
  const at = path === '' ? '(root)' : path
  if (schema.oneOf !== undefined) {
    const matching = schema.oneOf.filter((s) => validate(s, value, path).length === 0)
    if (matching.length !== 1) {
      const why = schema.oneOf.map((s) => validate(s, value, path).join(', ')).join(' | ')
      return [`${at}: matches ${matching.length} of the ${schema.oneOf.length} allowed forms (${why})`]
    }
  }
  const errors: string[] = []
  switch (schema.type) {
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${at}: must be a mapping`]
      break
    case 'array':
      if (!Array.isArray(value)) return [`${at}: must be a list`]
      break
    case 'string':
      if (typeof value !== 'string') return [`${at}: must be a string (quote it in YAML), not ${JSON.stringify(value)}`]
      break
    case 'integer':
      if (!Number.isInteger(value)) return [`${at}: must be an integer, not ${JSON.stringify(value)}`]
      break
    case 'boolean':
      if (typeof value !== 'boolean') return [`${at}: must be true or false`]
      break
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) errors.push(`${at}: ${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`)
  if (schema.pattern !== undefined && typeof value === 'string' && !new RegExp(schema.pattern).test(value)) errors.push(`${at}: ${JSON.stringify(value)} does not match ${schema.pattern}`)
  if (schema.minimum !== undefined && typeof value === 'number' && value < schema.minimum) errors.push(`${at}: ${value} is below ${schema.minimum}`)
  if (schema.maximum !== undefined && typeof value === 'number' && value > schema.maximum) errors.push(`${at}: ${value} is above ${schema.maximum}`)
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${at}: at least ${schema.minItems} item(s)`)
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${at}: at most ${schema.maxItems} item(s)`)
    if (schema.items !== undefined) value.forEach((item, i) => errors.push(...validate(schema.items!, item, `${path}[${i}]`)))
  }
  if (schema.type === 'object') {
    const object = value as Record<string, unknown>
    for (const key of schema.required ?? []) if (!(key in object)) errors.push(`${at}: ${key} is required`)
    for (const [key, child] of Object.entries(object)) {
      const childPath = path === '' ? key : `${path}.${key}`
      const known = schema.properties?.[key]
      if (known !== undefined) errors.push(...validate(known, child, childPath))
      else if (schema.additionalProperties === false) errors.push(`${at}: unknown field ${key}`)
      else if (schema.additionalProperties !== undefined) {
        if (schema.propertyNames !== undefined) errors.push(...validate(schema.propertyNames, key, `${childPath} (the name)`))
        errors.push(...validate(schema.additionalProperties, child, childPath))
      }
    }
  }
  const extra = errors.length === 0 ? schema.check?.(value) : undefined
  if (extra !== undefined) errors.push(`${at}: ${extra}`)
  return errors
}

const stringOf = (pattern: string): Schema => ({ type: 'string', pattern })
const boolString: Schema = { type: 'string', enum: ['true', 'false'] }
const integerString = (minimum: number, maximum: number): Schema => ({
  type: 'string',
  pattern: '^[0-9]+$',
  check: (v: string) => Number(v) < minimum || Number(v) > maximum ? `must be from ${minimum} to ${maximum}` : undefined
})
const name = stringOf('^[a-z]([-a-z0-9]*[a-z0-9])?$')

/** Mebibytes of a Kubernetes memory quantity (512Mi, 1Gi, 1G). */
function mebibytes (quantity: string): number {
  const match = /^(\d+)(Mi|Gi|M|G)$/.exec(quantity)
  if (match === null) return NaN
  const n = Number(match[1])
  return { Mi: n, Gi: n * 1024, M: (n * 1e6) / 2 ** 20, G: (n * 1e9) / 2 ** 20 }[match[2] as 'Mi' | 'Gi' | 'M' | 'G']
}

const probe: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    httpGet: { type: 'object', additionalProperties: false, required: ['path'], properties: { path: stringOf('^/'), port: { type: 'integer', minimum: 1, maximum: 65535 } } },
    tcpSocket: { type: 'object', additionalProperties: false, properties: { port: { type: 'integer', minimum: 1, maximum: 65535 } } },
    initialDelaySeconds: { type: 'integer', minimum: 0, maximum: 240 },
    periodSeconds: { type: 'integer', minimum: 1, maximum: 240 },
    timeoutSeconds: { type: 'integer', minimum: 1, maximum: 240 },
    failureThreshold: { type: 'integer', minimum: 1 }
  },
  check: (p: { periodSeconds?: number, timeoutSeconds?: number, initialDelaySeconds?: number, failureThreshold?: number }) => {
    const period = p.periodSeconds ?? 10
    if ((p.timeoutSeconds ?? 1) > period) return 'timeoutSeconds must not exceed periodSeconds'
    if ((p.initialDelaySeconds ?? 0) + (p.failureThreshold ?? 3) * period > 240) return 'initialDelaySeconds + failureThreshold x periodSeconds must be at most 240 s'
    return undefined
  }
}

/**
 * What Cloud Run accepts of a Knative serving.knative.dev/v1 Service, for the fields and annotations
 * this project's service.yaml uses (and the alternatives its comments offer). Unknown fields and
 * annotations fail: Cloud Run rejects the former, and an annotation it does not know is a typo
 * that would silently do nothing. Annotation values are strings, as Kubernetes requires.
 */
export const cloudRunService: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { enum: ['serving.knative.dev/v1'] },
    kind: { enum: ['Service'] },
    metadata: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        // Cloud Run: lowercase letters, digits and hyphens, starting with a letter, at most 49 characters.
        name: { ...name, check: (v: string) => v.length > 49 ? 'at most 49 characters' : undefined },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        annotations: {
          type: 'object',
          additionalProperties: false,
          properties: {
            'run.googleapis.com/ingress': { enum: ['all', 'internal', 'internal-and-cloud-load-balancing'] },
            'run.googleapis.com/description': { type: 'string' }
          }
        }
      }
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['template'],
      properties: {
        template: {
          type: 'object',
          additionalProperties: false,
          required: ['spec'],
          properties: {
            metadata: {
              type: 'object',
              additionalProperties: false,
              properties: {
                annotations: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    'autoscaling.knative.dev/maxScale': integerString(1, 1000),
                    'autoscaling.knative.dev/minScale': integerString(0, 1000),
                    'run.googleapis.com/startup-cpu-boost': boolString,
                    'run.googleapis.com/cpu-throttling': boolString,
                    'run.googleapis.com/execution-environment': { enum: ['gen1', 'gen2'] },
                    // A connector's name in the service's region, or its full resource name.
                    'run.googleapis.com/vpc-access-connector': stringOf('^(projects/[^/]+/locations/[^/]+/connectors/)?[a-z][-a-z0-9]{0,23}[a-z0-9]$'),
                    'run.googleapis.com/vpc-access-egress': { enum: ['all-traffic', 'private-ranges-only'] },
                    // Direct VPC egress: a JSON list with one network interface.
                    'run.googleapis.com/network-interfaces': {
                      type: 'string',
                      check: (v: string) => {
                        try {
                          const list = JSON.parse(v) as unknown
                          return Array.isArray(list) && list.length === 1 && typeof list[0]?.network === 'string' ? undefined : 'a JSON list of one {"network": ..., "subnetwork": ...}'
                        } catch { return 'not JSON' }
                      }
                    }
                  },
                  check: (a: Record<string, string>) => a['run.googleapis.com/vpc-access-connector'] !== undefined && a['run.googleapis.com/network-interfaces'] !== undefined
                    ? 'a VPC connector and Direct VPC egress exclude each other'
                    : undefined
                }
              }
            },
            spec: {
              type: 'object',
              additionalProperties: false,
              required: ['containers'],
              properties: {
                containerConcurrency: { type: 'integer', minimum: 0, maximum: 1000 },
                timeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
                serviceAccountName: stringOf('^[a-z][-a-z0-9]{4,28}[a-z0-9](@[a-z][-a-z0-9]*\\.iam\\.gserviceaccount\\.com)?$|^[^@\\s]+@[^@\\s]+$'),
                containers: {
                  type: 'array',
                  minItems: 1,
                  maxItems: 1,
                  items: {
                    type: 'object',
                    additionalProperties: false,
                    required: ['image'],
                    properties: {
                      image: stringOf('^[a-z0-9.-]+(:[0-9]+)?/[^\\s:]+(:[\\w.-]+|@sha256:[0-9a-f]{64})?$'),
                      ports: {
                        type: 'array',
                        maxItems: 1,
                        items: {
                          type: 'object',
                          additionalProperties: false,
                          required: ['containerPort'],
                          properties: { name: { enum: ['http1', 'h2c'] }, containerPort: { type: 'integer', minimum: 1, maximum: 65535 } }
                        }
                      },
                      env: {
                        type: 'array',
                        items: {
                          oneOf: [
                            { type: 'object', additionalProperties: false, required: ['name', 'value'], properties: { name: { type: 'string' }, value: { type: 'string' } } },
                            {
                              type: 'object',
                              additionalProperties: false,
                              required: ['name', 'valueFrom'],
                              properties: {
                                name: { type: 'string' },
                                valueFrom: {
                                  type: 'object',
                                  additionalProperties: false,
                                  required: ['secretKeyRef'],
                                  properties: {
                                    secretKeyRef: {
                                      type: 'object',
                                      additionalProperties: false,
                                      required: ['name', 'key'],
                                      // key: a version number or latest.
                                      properties: { name: stringOf('^[A-Za-z0-9_-]{1,255}$'), key: stringOf('^([0-9]+|latest)$') }
                                    }
                                  }
                                }
                              }
                            }
                          ],
                          check: (e: { name: string }) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(e.name)
                            ? `${e.name}: not a variable name`
                            : ['PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION'].includes(e.name) || e.name.startsWith('X_GOOGLE_')
                                ? `${e.name} is set by Cloud Run itself`
                                : undefined
                        },
                        check: (env: Array<{ name: string }>) => new Set(env.map((e) => e.name)).size === env.length ? undefined : 'a variable set twice'
                      },
                      resources: {
                        type: 'object',
                        additionalProperties: false,
                        properties: {
                          limits: {
                            type: 'object',
                            additionalProperties: false,
                            properties: {
                              // Cloud Run: 1, 2, 4, 6 or 8 CPUs, or below 1 in millicpu.
                              cpu: { type: 'string', pattern: '^([1-9][0-9]{0,2}m|[0-9]+(\\.[0-9]+)?|[12468])$' },
                              memory: { type: 'string', check: (v: string) => mebibytes(v) >= 128 && mebibytes(v) <= 32 * 1024 ? undefined : 'from 128Mi to 32Gi' }
                            },
                            check: (l: { cpu?: string, memory?: string }) => l.cpu === '1' && l.memory !== undefined && mebibytes(l.memory) > 4096 ? '1 CPU allows at most 4Gi' : undefined
                          }
                        }
                      },
                      startupProbe: probe,
                      livenessProbe: probe,
                      volumeMounts: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name', 'mountPath'], properties: { name: { type: 'string' }, mountPath: stringOf('^/'), readOnly: { type: 'boolean' } } } }
                    }
                  }
                },
                volumes: { type: 'array', items: { type: 'object', required: ['name'] } }
              }
            }
          }
        }
      }
    }
  }
}

/** gcloud's static command tree (it ships with the Google Cloud CLI, for completion): every command, its flags, their choices. */
export interface GcloudTree { commands: Record<string, GcloudTree>, flags: Record<string, 'bool' | 'value' | 'dynamic' | string[]> }

/** The tree of the installed Google Cloud CLI, or undefined when there is none. */
export function gcloudTree (): GcloudTree | undefined {
  const which = spawnSync('sh', ['-c', 'command -v gcloud'], { encoding: 'utf8' })
  if (which.status !== 0) return undefined
  const bin = realpathSync(which.stdout.trim())
  const candidates = [join(dirname(bin), '..', 'data', 'cli', 'gcloud_completions.py'), join(dirname(bin), '..', 'lib', 'google-cloud-sdk', 'data', 'cli', 'gcloud_completions.py')]
  const file = candidates.find((f) => existsSync(f))
  if (file === undefined) return undefined
  const source = readFileSync(file, 'utf8')
  // A Python module holding one dict literal, written as JSON.
  return JSON.parse(source.slice(source.indexOf('{'))) as GcloudTree
}

/** Splits a shell command into words: quotes removed, $VARIABLES and $(...) kept as written. */
export function shellWords (line: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (c === "'") {
      const end = line.indexOf("'", i + 1)
      word += line.slice(i + 1, end)
      i = end
      inWord = true
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1)
      word += line.slice(i + 1, end)
      i = end
      inWord = true
    } else if (c === '$' && line[i + 1] === '(') {
      let depth = 0
      let j = i
      for (; j < line.length; j++) {
        if (line[j] === '(') depth++
        if (line[j] === ')' && --depth === 0) break
      }
      word += line.slice(i, j + 1)
      i = j
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (inWord) words.push(word)
  return words
}

/**
 * The commands of the ```sh blocks of a README section: continuation lines joined, comments and
 * a trailing & dropped, pipelines split, and the command inside VAR=$(...) taken out.
 */
export function shellCommands (markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n## ${heading}\n`)
  if (start === -1) throw new Error(`the README has no section "${heading}"`)
  const end = markdown.indexOf('\n## ', start + 1)
  const section = markdown.slice(start, end === -1 ? undefined : end)
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
  const commands: string[][] = []
  for (const block of blocks) {
    const lines = block.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    for (const line of lines) {
      const substituted = /^[A-Z_]+=\$\((.*)\)$/.exec(line)
      const command = (substituted?.[1] ?? line).replace(/\s*&$/, '')
      for (const part of command.split(/\s+\|\s+/)) commands.push(shellWords(part))
    }
  }
  return commands
}

/**
 * What is wrong with one gcloud command (its words after `gcloud`) by gcloud's command tree: an
 * unknown command or flag, a switch given a value, a flag without its value, a value outside the
 * flag's choices. Returns the command's path and the problems.
 */
export function checkGcloud (tree: GcloudTree, args: readonly string[]): { command: string, problems: string[] } {
  let node = tree
  const path: string[] = []
  let i = 0
  for (; i < args.length && !args[i]!.startsWith('-'); i++) {
    const next = node.commands[args[i]!]
    if (next === undefined) break
    node = next
    path.push(args[i]!)
  }
  const problems: string[] = []
  if (Object.keys(node.commands).length > 0) problems.push(`"gcloud ${path.join(' ')}" is a command group, not a command`)
  const flags = { ...tree.flags, ...node.flags }
  for (; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith('--')) continue // a positional: the service, instance, secret... name
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const kind = flags[flag] ?? (flag.startsWith('--no-') && flags[`--${flag.slice(5)}`] === 'bool' ? 'bool' : undefined)
    if (kind === undefined) {
      problems.push(`unknown flag ${flag}`)
      continue
    }
    if (kind === 'bool') {
      if (inline !== undefined) problems.push(`${flag} is a switch and takes no value`)
      continue
    }
    const value = inline ?? args[++i]
    if (value === undefined || (inline === undefined && value.startsWith('--'))) problems.push(`${flag} needs a value`)
    else if (Array.isArray(kind) && !kind.includes(value)) problems.push(`${flag}=${value}: not one of ${kind.join(', ')}`)
  }
  return { command: path.join(' '), problems }
}
