import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The directory that holds package.json, templates/ and public/: found once by walking up from
 * this module, because the depth differs between the sources (src/lib/) and the bundle (dist/).
 */
function findProjectRoot (from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates'))) return dir
    if (dirname(dir) === dir) throw new Error(`no project root (package.json beside templates/) above ${from}`)
  }
}

export const projectRoot = findProjectRoot(dirname(fileURLToPath(import.meta.url)))
