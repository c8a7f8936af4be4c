import type { DocumentSnapshot } from '@google-cloud/firestore'

/** A text field of a document; a missing one reads as empty rather than failing the page. */
export function textField (doc: DocumentSnapshot, field: string): string {
  return String(doc.get(field) ?? '')
}

/** A timestamp field of a document as a Date; a missing one reads as the epoch, so it sorts oldest. */
export function dateField (doc: DocumentSnapshot, field: string): Date {
  return doc.get(field)?.toDate?.() ?? new Date(0)
}
