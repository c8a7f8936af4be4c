export interface Greeting {
  /** Absent for "An anonymous person". */
  author?: string
  content: string
  date: Date
}

/** Greetings by guestbook, newest first: Firestore, Datastore mode, or memory for the embedded mode. */
export interface GreetingsRepository {
  add (guestbook: string, greeting: Greeting): Promise<void>
  latest (guestbook: string, limit: number): Promise<Greeting[]>
}
