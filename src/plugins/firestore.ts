import fp from 'fastify-plugin'
import type { Firestore } from '@google-cloud/firestore'

declare module 'fastify' {
  interface FastifyInstance {
    firestore: Firestore
  }
}

export interface FirestoreConnection {
  projectId?: string
  databaseId: string
  /** host:port of the Firestore emulator. */
  emulatorHost?: string
}

export type FirestorePluginOptions =
  | ({ client?: undefined } & FirestoreConnection)
  | { client: Firestore, closeClient?: boolean }

export async function createFirestore ({ projectId, databaseId, emulatorHost }: FirestoreConnection): Promise<Firestore> {
  // Loaded on demand: the client is heavy, and the embedded mode never needs it.
  const { Firestore } = await import('@google-cloud/firestore')
  return new Firestore({
    // The emulator accepts any project; a demo- project can never reach a real one.
    projectId: projectId ?? (emulatorHost === undefined ? undefined : 'demo-visitme'),
    databaseId,
    ignoreUndefinedProperties: true,
    ...(emulatorHost === undefined ? {} : { host: emulatorHost, ssl: false })
  })
}

export default fp<FirestorePluginOptions>(async function firestorePlugin (app, options) {
  const client = options.client ?? await createFirestore(options)
  app.decorate('firestore', client)
  if (options.client === undefined || options.closeClient === true) {
    // Bounded: terminate() waits for every pending call, and shutdown has a deadline.
    app.addHook('onClose', async () => {
      await Promise.race([client.terminate(), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
    })
  }
}, { name: 'firestore', fastify: '5.x' })
