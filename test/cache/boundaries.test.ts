import { readdir, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const source = fileURLToPath(new URL('../../packages/memcache/src', import.meta.url))
/** What the package may import besides its own files: what its package.json declares, and Node. */
const allowed = new Set(['ioredis', 'fastify-plugin', 'fastify', 'tap'])

async function files (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return (await Promise.all(entries.map(async (e) => e.isDirectory() ? await files(join(dir, e.name)) : [join(dir, e.name)]))).flat()
}

t.test('the cache package imports nothing of the app, and names no app', async (t) => {
  const sources = (await files(source)).filter((f) => f.endsWith('.ts'))
  t.ok(sources.length > 10)
  for (const file of sources) {
    const text = await readFile(file, 'utf8')
    const name = relative(source, file)
    for (const [, specifier] of text.matchAll(/^(?:import|export)[^'"]*from '([^']+)'/gm)) {
      if (specifier!.startsWith('.')) {
        t.ok(resolve(file, '..', specifier!).startsWith(source), `${name}: ${specifier} stays inside the package`)
      } else {
        t.ok(specifier!.startsWith('node:') || allowed.has(specifier!), `${name}: ${specifier} is Node's or a declared dependency`)
      }
    }
    t.notMatch(text, /visitme|firestore|guestbook/i, `${name} names no app`)
  }
})
