// Token expiry, read from the JWT's payload (not verified: the server does
// that), to ask for a fresh token before the old one runs out.
/** The `exp` claim of a JWT, in seconds since the Unix epoch, if it has one. */
export function tokenExpiry(token) {
    const part = token.split('.')[1];
    if (!part)
        return null;
    try {
        const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
        const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
        const json = decodeURIComponent(Array.from(atob(padded), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
        const exp = JSON.parse(json).exp;
        return typeof exp === 'number' ? exp : null;
    }
    catch {
        return null;
    }
}
/** How long from `now` (ms) to ask for a new token for one that expires at
 * `exp` (seconds): a third of its remaining life before it ends, at most
 * `margin` ms before, never less than 0. */
export function refreshDelay(exp, now, margin) {
    const left = exp * 1000 - now;
    return Math.max(0, left - Math.min(margin, left / 3));
}
