// Who is logged in (username, role, CSRF token): shared state every page reads. `ended`
// is the sentence the sign-in page shows after a session ended under the user's feet
// (expired, signed out elsewhere, or the account deleted).

export const session = $state({ me: null, checked: false, ended: '' });

export const SESSION_ENDED =
  'Your session ended (it expired, was signed out, or the account was removed). Sign in again to continue.';

export function isAdmin() {
  return session.me?.role === 'admin';
}

// When a session last ended under an open page. A plain variable, not state: page
// teardown code reads it, and teardown sees state as it was before the change.
let endedAt = 0;

/** Whether a session ended a moment ago (pages being torn down keep their drafts). */
export function sessionJustEnded() {
  return Date.now() - endedAt < 3000;
}

/** Back to sign-in, saying why (only when someone was signed in). */
export function endSession(message = SESSION_ENDED) {
  if (session.me) {
    session.ended = message;
    endedAt = Date.now();
  }
  session.me = null;
}
