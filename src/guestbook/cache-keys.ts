/** The guestbook's cache namespace, under the app's. */
export const guestbookNamespace = (cacheNamespace: string): string => `${cacheNamespace}/guestbook`

/** A book's rendered greetings. */
export const greetingsKey = (book: string): string => `${book}:greetings`
