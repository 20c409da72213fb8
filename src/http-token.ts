// The characters of an HTTP token (RFC 9110 §5.6.2: a method, a field name), in one place for the
// proxy's request parser and the webhook's header check.

/** tchar: the characters a token is made of. */
export const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** tchar as a regular expression's character class. */
export const TCHAR_CLASS = `[${TCHARS.replace(/[-\\\]^]/g, '\\$&')}]`
