export interface Visit {
  /** "<client ip>: <user agent>", as the App Engine sample records it. */
  visitor: string
  timestamp: Date
}
