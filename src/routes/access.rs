//! Optional access control for a server on an open network: HTTP Basic authentication on
//! every route (one user or several: `--auth-file`, `MIXREPLACE_AUTH`, `--auth`) and CORS
//! headers (`--allow-origin ORIGIN`).
//!
//! Both are decided once at start-up: the accepted `Authorization` tokens and the header
//! lines every response carries are precomputed, so a request costs one comparison per
//! user. The comparison takes the same time whatever the token holds: it never stops at
//! the first differing byte, at a length that differs, or at the user that matches, so
//! its timing tells a guesser nothing about how close a guess came or which user it hit.

use base64::Engine;

/// The header a `401` carries.
pub const CHALLENGE: &str = "WWW-Authenticate: Basic realm=\"mixreplace\", charset=\"UTF-8\"\r\n";

#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The base64 tokens of `Basic TOKEN` that are accepted, one per user; none: no
    /// authentication.
    tokens: Vec<Vec<u8>>,
    /// Header lines for every response: empty without `--allow-origin`.
    cors: String,
}

impl Access {
    /// `credentials`: `USER:PASS`; `origin`: an origin or `*`.
    pub fn new(credentials: Option<&str>, origin: Option<&str>) -> Access {
        Access::with_users(credentials.as_slice(), origin)
    }

    /// Each of `users` (`USER:PASS`) is accepted; none: no authentication.
    pub fn with_users(users: &[&str], origin: Option<&str>) -> Access {
        let tokens: Vec<Vec<u8>> = users
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c).into_bytes())
            .collect();
        let cors = match origin {
            None => String::new(),
            Some("*") => "Access-Control-Allow-Origin: *\r\n".to_owned(),
            // A single named origin: caches must key on the request's Origin, and with
            // authentication the browser may send credentials.
            Some(origin) => {
                let credentials = if !tokens.is_empty() {
                    "Access-Control-Allow-Credentials: true\r\n"
                } else {
                    ""
                };
                format!("Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n{credentials}")
            }
        };
        Access { tokens, cors }
    }

    /// Whether CORS is configured, so `OPTIONS` preflights are answered.
    pub fn cors_enabled(&self) -> bool {
        !self.cors.is_empty()
    }

    /// Header lines every response carries.
    pub fn headers(&self) -> &str {
        &self.cors
    }

    /// The methods a route allows, for `Allow` headers.
    pub fn allowed_methods(&self) -> &'static str {
        if self.cors_enabled() {
            "GET, HEAD, OPTIONS"
        } else {
            "GET, HEAD"
        }
    }

    /// The methods a `push` stream allows, for `Allow` headers.
    pub fn allowed_methods_with_publish(&self) -> &'static str {
        if self.cors_enabled() {
            "GET, HEAD, OPTIONS, PUT, POST"
        } else {
            "GET, HEAD, PUT, POST"
        }
    }

    /// Header lines of a `204` answer to a CORS preflight.
    pub fn preflight_headers(&self) -> String {
        format!(
            "{}Access-Control-Allow-Methods: GET, HEAD\r\n\
             Access-Control-Allow-Headers: Authorization\r\n\
             Access-Control-Max-Age: 600\r\n",
            self.cors
        )
    }

    /// Whether a request with this `Authorization` value may proceed.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let Some(value) = authorization else {
            return false;
        };
        let value = value.trim_ascii();
        let Some(split) = value.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, token) = value.split_at(split);
        let token = token.trim_ascii();
        // Every user is compared, whichever matches (see the module header).
        let matched = self
            .tokens
            .iter()
            .fold(false, |matched, expected| matched | same_bytes(token, expected));
        scheme.eq_ignore_ascii_case(b"basic") && matched
    }
}

impl Access {
    /// Whether a publisher to a `push` stream with `token` (its `token=`, if any) may
    /// publish, given its `Authorization` value and its `?token=`: the stream's token
    /// (`Bearer TOKEN` or the query), or the server's credentials when it has some. With
    /// neither a token nor credentials configured, anyone may.
    pub fn allows_publisher(
        &self,
        token: Option<&str>,
        authorization: Option<&[u8]>,
        query: Option<&str>,
    ) -> bool {
        let basic = !self.tokens.is_empty() && self.allows(authorization);
        let Some(token) = token else {
            return basic || self.tokens.is_empty();
        };
        let bearer = authorization
            .map(<[u8]>::trim_ascii)
            .and_then(|value| value.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, given)| given.trim_ascii());
        let given = bearer.or(query.map(str::as_bytes));
        // Compared whatever came, so that timing tells nothing either way.
        let token_ok = same_bytes(given.unwrap_or(b""), token.as_bytes()) && given.is_some();
        token_ok || basic
    }
}

/// Compares every byte of `expected` whatever `given` holds, so timing reveals neither
/// how much of a guess was right nor whether its length was.
fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    let diff = expected.iter().enumerate().fold(0u8, |diff, (i, byte)| {
        diff | (given.get(i).copied().unwrap_or(!byte) ^ byte)
    });
    diff == 0 && given.len() == expected.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_must_match_exactly() {
        let access = Access::new(Some("user:pass"), None);
        // base64("user:pass") = dXNlcjpwYXNz
        assert!(access.allows(Some(b"Basic dXNlcjpwYXNz")));
        assert!(access.allows(Some(b"basic  dXNlcjpwYXNz ")));
        assert!(!access.allows(Some(b"Basic dXNlcjpwYXNx")));
        assert!(!access.allows(Some(b"Bearer dXNlcjpwYXNz")));
        assert!(!access.allows(Some(b"Basic")));
        assert!(!access.allows(None));
        assert!(Access::new(None, None).allows(None));
        // A prefix, or the token with more after it, is no match.
        assert!(!access.allows(Some(b"Basic dXNlcjpwYXN")));
        assert!(!access.allows(Some(b"Basic dXNlcjpwYXNzAA")));
    }

    #[test]
    fn each_of_several_users_is_accepted() {
        let access = Access::with_users(&["user:pass", "cam:secret"], None);
        // base64("cam:secret") = Y2FtOnNlY3JldA==
        assert!(access.allows(Some(b"Basic dXNlcjpwYXNz")));
        assert!(access.allows(Some(b"Basic Y2FtOnNlY3JldA==")));
        assert!(!access.allows(Some(b"Basic Y2FtOnBhc3M=")));
        assert!(!access.allows(None));
    }

    #[test]
    fn cors_headers_follow_the_origin() {
        assert_eq!(Access::default().headers(), "");
        assert_eq!(Access::default().allowed_methods(), "GET, HEAD");
        let any = Access::new(None, Some("*"));
        assert_eq!(any.headers(), "Access-Control-Allow-Origin: *\r\n");
        let one = Access::new(Some("a:b"), Some("https://example.org"));
        assert!(
            one.headers()
                .contains("Allow-Origin: https://example.org\r\nVary: Origin\r\n")
        );
        assert!(one.headers().contains("Allow-Credentials: true"));
        assert!(
            one.preflight_headers()
                .contains("Access-Control-Allow-Headers: Authorization")
        );
    }
}
