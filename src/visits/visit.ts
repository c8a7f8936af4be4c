export interface Visit {
  /** "<client ip>: <user agent>", as the App Engine sample records it. */
  visitor: string
  timestamp: Date
}

/** A visit as stored, under its document id. */
export interface StoredVisit extends Visit {
  id: string
}
