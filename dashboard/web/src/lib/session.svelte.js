// Who is logged in (username, role, CSRF token): shared state every page reads. `ended`
// is the sentence the sign-in page shows after a session ended under the user's feet
// (expired, signed out elsewhere, or the account deleted).

export const session = $state({ me: null, checked: false, ended: '' });

export const SESSION_ENDED =
  'Your session ended (it expired, was signed out, or the account was removed). Sign in again to continue.';

export function isAdmin() {
  return session.me?.role === 'admin';
}

/** Back to sign-in, saying why (only when someone was signed in). */
export function endSession(message = SESSION_ENDED) {
  if (session.me) session.ended = message;
  session.me = null;
}
