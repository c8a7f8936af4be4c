import type { Test } from 'tap'
import type { Store } from '../index.js'
import { appEngineContract } from './appengine.js'
import { countersContract } from './counters.js'
import type { StoreFactory } from './factory.js'
import { keyValueContract } from './key-value.js'
import { listsContract } from './lists.js'
import { memoizeContract } from './memoize.js'
import { pubSubContract } from './pubsub.js'

export { appEngineContract, countersContract, keyValueContract, listsContract, memoizeContract, pubSubContract, type StoreFactory }

/** Every suite, for a store with every capability: a store with fewer runs the suites of what it offers. */
export function storeContract (t: Test, name: string, factory: StoreFactory<Store>): void {
  appEngineContract(t, name, factory)
  keyValueContract(t, name, factory)
  countersContract(t, name, factory)
  memoizeContract(t, name, factory)
  listsContract(t, name, factory)
  pubSubContract(t, name, factory)
}
