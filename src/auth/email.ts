/**
 * Email validation for identities sent to HubSpot. Deliberately stricter than RFC 5321: an email that
 * identifies someone to a support team must not be able to look like someone else's, so only ASCII is
 * accepted (internationalised domains arrive in their xn-- form), quoted local parts and display names
 * are refused, and the address is compared and cached in lower case.
 */
const MAX_EMAIL_LENGTH = 254
const MAX_LOCAL_PART_LENGTH = 64
const localPartPattern = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/
const domainLabelPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const topLevelPattern = /^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$/

/** Returns the normalised (trimmed, lower-cased) email, or undefined when the value is not one. */
export function normaliseEmail (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const email = value.trim().toLowerCase()
  if (email.length === 0 || email.length > MAX_EMAIL_LENGTH) return undefined
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
