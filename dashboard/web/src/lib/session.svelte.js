// Who is logged in (username, role, CSRF token): shared state every page reads.

export const session = $state({ me: null, checked: false });

export function isAdmin() {
  return session.me?.role === 'admin';
}
