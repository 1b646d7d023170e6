/**
 * Email validation for identities sent to HubSpot. Deliberately stricter than RFC 5321: an email that
 * identifies someone to a support team must not be able to turn into someone else's.
 *
 * The value is checked for what it *is* before anything transforms it: every character must be
 * printable ASCII, because Unicode case mapping and trimming are many-to-one (KELVIN SIGN lower-cases to
 * "k", `trim()` strips NO-BREAK SPACE and a dozen other spaces), so a string that passed only after
 * them could be a different person's address. Internationalised domains arrive in their xn-- form.
 * Only then are surrounding ASCII spaces (U+0020, nothing else) dropped and A–Z folded to a–z.
 */
const MAX_EMAIL_LENGTH = 254
const MAX_LOCAL_PART_LENGTH = 64
const printableAscii = /^[\x20-\x7e]+$/
const surroundingAsciiSpaces = /^ +| +$/g
const localPartPattern = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/
const domainLabelPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const topLevelPattern = /^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$/
const asciiUpperCase = /[A-Z]+/g

/** Folds A–Z only; `toLowerCase()` would also map non-ASCII letters. */
function foldAsciiCase (value: string): string {
  return value.replace(asciiUpperCase, letters => letters.toLowerCase())
}

/** Returns the canonical (ASCII lower-cased) email, or undefined when the value is not one. */
export function normaliseEmail (value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_EMAIL_LENGTH || !printableAscii.test(value)) return undefined
  const email = foldAsciiCase(value.replace(surroundingAsciiSpaces, ''))
  const at = email.indexOf('@')
  if (at <= 0 || at !== email.lastIndexOf('@')) return undefined
  const local = email.slice(0, at)
  const domain = email.slice(at + 1)
  if (local.length > MAX_LOCAL_PART_LENGTH || !localPartPattern.test(local)) return undefined
  const labels = domain.split('.')
  if (labels.length < 2 || !labels.every(label => domainLabelPattern.test(label))) return undefined
  if (!topLevelPattern.test(labels[labels.length - 1] ?? '')) return undefined
  return email
}
