import { readFile, rename, writeFile } from 'node:fs/promises'

/** Where a kind's copy stands, over every run. */
export interface KindProgress {
  /** The source query's cursor after the last page whose writes were all answered. */
  cursor?: string
  done: boolean
  /** Entities read up to the cursor. */
  read: number
}

interface Saved {
  /** The source and the target the cursors belong to. */
  copy: string
  kinds: Record<string, KindProgress>
}

export class CheckpointMismatchError extends Error {
  override name = 'CheckpointMismatchError'
}

/**
 * The copy's progress, in a file so that an interrupted copy goes on from its last page instead
 * of reading the source again. It only saves reading: the copy is create-only, so a lost or
 * deleted checkpoint costs a rerun its reads, never a duplicate.
 */
export class Checkpoint {
  readonly #file: string | undefined
  readonly #saved: Saved

  private constructor (file: string | undefined, saved: Saved) {
    this.#file = file
    this.#saved = saved
  }

  /** In memory only: every run starts from the beginning. */
  static fresh (copy: string): Checkpoint {
    return new Checkpoint(undefined, { copy, kinds: {} })
  }

  /**
   * The file's progress for this copy (`copy` names its source and target), or a fresh start
   * when there is no file or `restart` is set. A file of another copy is refused, not overwritten.
   */
  static async open (file: string, copy: string, { restart = false }: { restart?: boolean } = {}): Promise<Checkpoint> {
    if (restart) return new Checkpoint(file, { copy, kinds: {} })
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return new Checkpoint(file, { copy, kinds: {} })
      throw err
    }
    const saved = JSON.parse(text) as Saved
    if (saved.copy !== copy) {
      throw new CheckpointMismatchError(`the checkpoint ${file} belongs to another copy (${saved.copy}): ` +
        'pass --restart to start this one from the beginning, or --checkpoint to keep it in another file')
    }
    return new Checkpoint(file, saved)
  }

  progress (kind: string): KindProgress {
    return { ...(this.#saved.kinds[kind] ?? { done: false, read: 0 }) }
  }

  async save (kind: string, progress: KindProgress): Promise<void> {
    this.#saved.kinds[kind] = { ...progress }
    if (this.#file === undefined) return
    // Replaced whole: an interruption mid-write leaves the previous checkpoint, never half of one.
    await writeFile(`${this.#file}.tmp`, JSON.stringify(this.#saved, null, 2))
    await rename(`${this.#file}.tmp`, this.#file)
  }
}
