//! Sessions of the log explorer: a random id in an HttpOnly, SameSite=Strict cookie, a
//! second random token the page sends back in a header on every call (CSRF), and the
//! [`Grant`] the credential signed in with. Nothing secret is kept, and nothing is kept
//! on disk: a restart signs everyone out.

use sluice_ingest::auth::grant::Grant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie that holds a session id.
pub const COOKIE: &str = "sluice_session";
/// The header the page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-sluice-csrf";

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub grant: Grant,
    pub csrf: String,
    pub expires: Instant,
}

/// Why a call has no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No cookie, an unknown one, or an expired session.
    SignedOut,
    /// The session exists but the call did not carry its token.
    Csrf,
}

/// Sessions by id, at most `capacity` of them.
#[derive(Debug)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
    capacity: usize,
}

impl Sessions {
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Self { by_id: Mutex::new(HashMap::new()), lifetime, capacity: capacity.max(1) }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Starts a session; returns its id and the session. Expired sessions go first; when
    /// the store is still full, the one closest to expiry makes room.
    pub fn start(&self, grant: Grant, now: Instant) -> std::io::Result<(String, Session)> {
        let id = random_token()?;
        let session = Session { grant, csrf: random_token()?, expires: now + self.lifetime };
        let mut by_id = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_id.retain(|_, s| s.expires > now);
        if by_id.len() >= self.capacity
            && let Some(oldest) = by_id.iter().min_by_key(|(_, s)| s.expires).map(|(id, _)| id.clone())
        {
            by_id.remove(&oldest);
        }
        by_id.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session of a call: its cookie names a live session and, unless `csrf` is
    /// `None` (reading the session itself), the call carries that session's token.
    pub fn check(&self, id: Option<&str>, csrf: Option<Option<&str>>, now: Instant) -> Result<Session, Refused> {
        let by_id = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = id.and_then(|id| by_id.get(id)).filter(|s| s.expires > now).ok_or(Refused::SignedOut)?;
        match csrf {
            Some(presented) if !presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(session.csrf.as_bytes()))) => {
                Err(Refused::Csrf)
            }
            _ => Ok(session.clone()),
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}

/// 256 random bits from the operating system, as hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session id in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// The `Set-Cookie` value that holds a session (`secure` behind HTTPS).
pub fn set_cookie(id: &str, lifetime: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", lifetime.as_secs())
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(name: &str) -> Grant {
        Grant::Sls { key_id: name.into(), projects: Vec::new() }
    }

    #[test]
    fn a_session_needs_its_cookie_and_its_token_until_it_expires() {
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let (id, session) = sessions.start(grant("a"), now).unwrap();
        assert_eq!((id.len(), session.csrf.len()), (64, 64));
        assert_ne!(id, session.csrf);
        let csrf = Some(session.csrf.as_str());
        assert_eq!(sessions.check(Some(&id), Some(csrf), now).unwrap().grant, grant("a"));
        assert_eq!(sessions.check(Some(&id), None, now).unwrap().grant, grant("a"));
        assert_eq!(sessions.check(Some(&id), Some(None), now).unwrap_err(), Refused::Csrf);
        assert_eq!(sessions.check(Some(&id), Some(Some(&id)), now).unwrap_err(), Refused::Csrf);
        assert_eq!(sessions.check(Some(&session.csrf), Some(csrf), now).unwrap_err(), Refused::SignedOut);
        assert_eq!(sessions.check(None, Some(csrf), now).unwrap_err(), Refused::SignedOut);
        let later = now + Duration::from_secs(61);
        assert_eq!(sessions.check(Some(&id), Some(csrf), later).unwrap_err(), Refused::SignedOut);
        let (other, _) = sessions.start(grant("b"), now).unwrap();
        sessions.end(&other);
        assert_eq!(sessions.check(Some(&other), None, now).unwrap_err(), Refused::SignedOut);
    }

    #[test]
    fn a_full_store_drops_the_session_closest_to_expiry() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        let (first, _) = sessions.start(grant("a"), now).unwrap();
        let (second, _) = sessions.start(grant("b"), now + Duration::from_secs(1)).unwrap();
        let (third, _) = sessions.start(grant("c"), now + Duration::from_secs(2)).unwrap();
        let at = now + Duration::from_secs(3);
        assert!(sessions.check(Some(&first), None, at).is_err());
        assert!(sessions.check(Some(&second), None, at).is_ok() && sessions.check(Some(&third), None, at).is_ok());
    }

    #[test]
    fn cookies() {
        assert_eq!(cookie_value("a=1; sluice_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("sluice_sessionx=abc"), None);
        let set = set_cookie("abc", Duration::from_secs(3600), false);
        assert_eq!(set, "sluice_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600");
        assert!(set_cookie("abc", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
