//! The dashboard's own accounts in `<data-dir>/dashboard/users.db` (SQLite): users with a
//! role and an argon2id password hash, and server-side sessions (only the SHA-256 of the
//! session token is stored, beside its CSRF token and expiry).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password hashed (argon2 accepts more, but nobody needs it and it costs time).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// The first admin's user name.
pub const FIRST_ADMIN: &str = "admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Admin,
    Viewer,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<UserRole> {
        match s {
            "admin" => Some(UserRole::Admin),
            "viewer" => Some(UserRole::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    #[error("user database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("{0}")]
    Invalid(String),
    #[error("user {0:?} already exists")]
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    pub username: String,
    pub role: UserRole,
    pub created_ms: i64,
}

/// A live session, as the request handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub role: UserRole,
    pub csrf: String,
    pub expires_ms: i64,
}

#[derive(Clone)]
pub struct Users {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Users")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 256 random bits, URL-safe base64 without padding.
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A password a person can type: 20 characters from an unambiguous alphabet (~113 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

pub fn validate_username(name: &str) -> Result<(), UsersError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(UsersError::Invalid(
            "user names are 1 to 64 characters of letters, digits, '.', '_', '-' and '@'".into(),
        ))
    }
}

fn validate_password(p: &str) -> Result<(), UsersError> {
    if p.chars().count() < MIN_PASSWORD_LEN || p.len() > MAX_PASSWORD_LEN {
        return Err(UsersError::Invalid(format!(
            "passwords must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

fn hash_password(p: &str) -> Result<String, UsersError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// A hash nobody's password matches, verified for unknown users so that a wrong user name
/// costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

fn verify_password(p: &str, phc: &str) -> bool {
    if p.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(p.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

impl Users {
    pub fn open(path: &Path) -> Result<Users, UsersError> {
        let conn = Connection::open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS users (
                 username   TEXT PRIMARY KEY,
                 role       TEXT NOT NULL,
                 phc        TEXT NOT NULL,
                 created_ms INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS sessions (
                 token_hash TEXT PRIMARY KEY,
                 username   TEXT NOT NULL,
                 csrf       TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 expires_ms INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username);",
        )?;
        Ok(Users {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, UsersError>,
    ) -> Result<T, UsersError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }

    /// Creates the first admin if there is no user at all; returns its name and password
    /// (the given one, or a generated one) so the caller can show them once.
    pub fn ensure_first_admin(
        &self,
        password: Option<String>,
    ) -> Result<Option<(String, String)>, UsersError> {
        let count: i64 =
            self.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?))?;
        if count > 0 {
            return Ok(None);
        }
        let password = password.unwrap_or_else(generate_password);
        self.create_user(FIRST_ADMIN, &password, UserRole::Admin)?;
        Ok(Some((FIRST_ADMIN.to_owned(), password)))
    }

    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        role: UserRole,
    ) -> Result<(), UsersError> {
        validate_username(name)?;
        validate_password(password)?;
        let phc = hash_password(password)?;
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO users (username, role, phc, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), phc, now_ms()],
            )?;
            if n == 0 {
                return Err(UsersError::Exists(name.to_owned()));
            }
            Ok(())
        })
    }

    /// Deletes the user and ends their sessions; false if there was no such user.
    pub fn delete_user(&self, name: &str) -> Result<bool, UsersError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE username = ?1", [name])?;
            Ok(c.execute("DELETE FROM users WHERE username = ?1", [name])? == 1)
        })
    }

    pub fn list_users(&self) -> Result<Vec<UserInfo>, UsersError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT username, role, created_ms FROM users ORDER BY username")?;
            let rows = stmt.query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(UserInfo {
                    username: r.get(0)?,
                    role: UserRole::parse(&role).unwrap_or(UserRole::Viewer),
                    created_ms: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Checks a password (argon2id: call it off the async threads). Unknown users cost the
    /// same time as known ones.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<UserRole>, UsersError> {
        let row: Option<(String, String)> = self.with(|c| {
            Ok(c.query_row(
                "SELECT role, phc FROM users WHERE username = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        match row {
            Some((role, phc)) => Ok(verify_password(password, &phc)
                .then(|| UserRole::parse(&role))
                .flatten()),
            None => {
                let _ = verify_password(password, decoy_hash());
                Ok(None)
            }
        }
    }

    /// Starts a session; returns its token (for the cookie) and CSRF token.
    pub fn create_session(&self, name: &str) -> Result<(String, String), UsersError> {
        let token = random_token();
        let csrf = random_token();
        let now = now_ms();
        self.with(|c| {
            // Expired sessions go whenever a new one starts: the table stays small.
            c.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now])?;
            c.execute(
                "INSERT INTO sessions (token_hash, username, csrf, created_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token_hash(&token),
                    name,
                    csrf,
                    now,
                    now + SESSION_LIFETIME.as_millis() as i64
                ],
            )?;
            Ok(())
        })?;
        Ok((token, csrf))
    }

    /// The live session for a cookie token, with the user's current role.
    pub fn session(&self, token: &str) -> Result<Option<Session>, UsersError> {
        if token.len() > 128 {
            return Ok(None);
        }
        let now = now_ms();
        self.with(|c| {
            Ok(c.query_row(
                "SELECT s.username, u.role, s.csrf, s.expires_ms FROM sessions s \
                 JOIN users u ON u.username = s.username \
                 WHERE s.token_hash = ?1 AND s.expires_ms > ?2",
                params![token_hash(token), now],
                |r| {
                    let role: String = r.get(1)?;
                    Ok(Session {
                        username: r.get(0)?,
                        role: UserRole::parse(&role).unwrap_or(UserRole::Viewer),
                        csrf: r.get(2)?,
                        expires_ms: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
    }

    pub fn end_session(&self, token: &str) -> Result<(), UsersError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [token_hash(token)],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_admin_sessions_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let u = Users::open(&dir.path().join("users.db")).unwrap();
        let (name, pw) = u.ensure_first_admin(None).unwrap().expect("created");
        assert_eq!(name, "admin");
        assert_eq!(pw.len(), 20);
        assert!(u.ensure_first_admin(None).unwrap().is_none(), "only once");
        assert_eq!(u.verify("admin", &pw).unwrap(), Some(UserRole::Admin));
        assert_eq!(u.verify("admin", "wrong password!").unwrap(), None);
        assert_eq!(u.verify("nobody", &pw).unwrap(), None);
        let stored: String = u
            .with(|c| Ok(c.query_row("SELECT phc FROM users", [], |r| r.get(0))?))
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains(&pw));

        assert!(matches!(
            u.create_user("eve", "short", UserRole::Viewer),
            Err(UsersError::Invalid(_))
        ));
        assert!(matches!(
            u.create_user("bad name", "long enough password", UserRole::Viewer),
            Err(UsersError::Invalid(_))
        ));
        u.create_user("eve", "long enough password", UserRole::Viewer)
            .unwrap();
        assert!(matches!(
            u.create_user("eve", "long enough password", UserRole::Viewer),
            Err(UsersError::Exists(_))
        ));
        let (tok, csrf) = u.create_session("eve").unwrap();
        let s = u.session(&tok).unwrap().unwrap();
        assert_eq!(
            (s.username.as_str(), s.role, s.csrf),
            ("eve", UserRole::Viewer, csrf)
        );
        assert!(u.session("not-a-token").unwrap().is_none());
        assert!(u.delete_user("eve").unwrap());
        assert!(
            u.session(&tok).unwrap().is_none(),
            "deleting a user ends their sessions"
        );
        let (tok, _) = u.create_session("admin").unwrap();
        u.end_session(&tok).unwrap();
        assert!(u.session(&tok).unwrap().is_none());
    }
}
