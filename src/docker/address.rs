//! Where an engine is: `DOCKER_HOST`'s spelling (`unix:///path`, `tcp://host:port`,
//! `ssh://[user@]host[:port]`), parsed strictly.
//!
//! Why strict: an address comes from a config file or the environment and ends up on the
//! command line of `ssh` and in the `DOCKER_HOST` of the compose CLI. A host that starts with
//! `-` would be read by `ssh` as an option (`-oProxyCommand=...` runs a command), a colon or
//! a space in a socket path would change what `ssh -L` forwards, and a password in the URL
//! would be printed in every error message. So only what an address needs is accepted, and
//! each refusal says what to write instead.

use std::fmt;

/// The local engine when `DOCKER_HOST` is not set.
pub const LOCAL_SOCKET: &str = "/var/run/docker.sock";

/// A parsed engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:///path/to/docker.sock`
    Unix(String),
    /// `tcp://host:port` (or `http://`): the engine's plain TCP API.
    Tcp(String),
    /// `ssh://[user@]host[:port][/remote/docker.sock]`
    Ssh(SshTarget),
}

/// An engine behind `ssh`: who logs in where, and the engine socket on that machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    /// A host name or an IP address (IPv6 without its brackets).
    pub host: String,
    pub port: Option<u16>,
    /// The engine's socket on the remote machine (default `/var/run/docker.sock`).
    pub socket: String,
}

impl fmt::Display for SshTarget {
    /// The address as the operator wrote it (without the default socket).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if self.socket != LOCAL_SOCKET {
            write!(f, "{}", self.socket)?;
        }
        Ok(())
    }
}

impl Address {
    /// Parses an engine address; the error says what is wrong and what to write.
    pub fn parse(url: &str) -> Result<Address, String> {
        let bad = |why: &str| format!("engine address '{}': {why}", printable(url));
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("contains spaces or control characters"));
        }
        if let Some(path) = url.strip_prefix("unix://") {
            return socket_path(path).map(Address::Unix).map_err(|e| bad(&e));
        }
        if url.starts_with("tcp://") || url.starts_with("http://") {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() || rest.starts_with(['/', '-']) {
                return Err(bad("needs a host, like tcp://10.0.0.5:2375"));
            }
            return Ok(Address::Tcp(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            return ssh_target(rest).map(Address::Ssh).map_err(|e| bad(&e));
        }
        Err(bad(
            "unsupported scheme; write unix:///var/run/docker.sock, tcp://HOST:2375 or \
             ssh://USER@HOST (TLS engines, tcp:// with certificates, are not supported)",
        ))
    }
}

/// Engine names (`engines:` keys, `docker::use_engine`): what a config key and a log line
/// carry safely.
pub fn valid_engine_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `url` safe to print: control characters shown escaped, at most 200 characters.
fn printable(url: &str) -> String {
    let s: String = url
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    if url.chars().count() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

/// An absolute socket path that `ssh -L` can forward as it is.
fn socket_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err("the socket path must be absolute, like unix:///var/run/docker.sock".into());
    }
    if p.contains(':') {
        return Err("a socket path with ':' in it is not supported".into());
    }
    Ok(p.to_string())
}

/// `[user@]host[:port][/socket]`
fn ssh_target(rest: &str) -> Result<SshTarget, String> {
    let (authority, socket) = match rest.find('/') {
        Some(i) => (&rest[..i], socket_path(&rest[i..])?),
        None => (rest, LOCAL_SOCKET.to_string()),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user {
        if u.contains(':') {
            return Err(
                "a password in the address is not supported (it would be printed in \
                 every error); log in with a key: ssh-agent or IdentityFile in ~/.ssh/config"
                    .into(),
            );
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if u.is_empty() || u.starts_with('-') || !u.chars().all(ok) {
            return Err(format!(
                "user '{u}' is not a login name (letters, digits, '.', '_', '-')"
            ));
        }
    }
    let (host, port) = split_port(hostport)?;
    let host_ok = |c: char| c.is_ascii_alphanumeric() || ".-_:%".contains(c);
    if host.is_empty() || host.starts_with('-') || !host.chars().all(host_ok) {
        return Err(format!(
            "'{host}' is not a host name or IP address (a host may not start with '-')"
        ));
    }
    Ok(SshTarget {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
        socket,
    })
}

/// `host`, `host:22`, `[::1]`, `[::1]:22`.
fn split_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(p.strip_prefix(':').ok_or("expected ':PORT' after ']'")?),
            ),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err("write an IPv6 address in brackets, like ssh://[::1]".into()),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port '{p}' is not a port (1–65535)"))?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(url: &str) -> SshTarget {
        match Address::parse(url) {
            Ok(Address::Ssh(t)) => t,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn ssh_addresses_parse_with_their_parts() {
        let t = ssh("ssh://root@127.0.0.1:2222");
        assert_eq!(t.user.as_deref(), Some("root"));
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", Some(2222)));
        assert_eq!(t.socket, LOCAL_SOCKET);
        assert_eq!(t.to_string(), "ssh://root@127.0.0.1:2222");
        let t = ssh("ssh://edge.example/run/user/1000/docker.sock");
        assert_eq!((t.user, t.port), (None, None));
        assert_eq!(t.socket, "/run/user/1000/docker.sock");
        let t = ssh("ssh://me@[::1]:22");
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(t.to_string(), "ssh://me@[::1]:22");
    }

    #[test]
    fn hostile_addresses_are_refused_with_a_reason() {
        for (url, says) in [
            ("ssh://-oProxyCommand=sh", "not a host"),
            ("ssh://root@-oProxyCommand=x", "not a host"),
            ("ssh://-l@host", "not a login name"),
            ("ssh://root:secret@host", "password"),
            ("ssh://host:0", "not a port"),
            ("ssh://host:99999", "not a port"),
            ("ssh://host/var/run/x:y.sock", "':'"),
            ("ssh://host/../x sock", "spaces"),
            ("ssh://", "not a host"),
            ("ssh://a;b", "not a host"),
            ("ssh://::1", "brackets"),
            ("unix://relative.sock", "absolute"),
            ("tcp://", "needs a host"),
            ("https://h:2376", "unsupported scheme"),
            ("ssh://h\n", "control"),
        ] {
            let e = Address::parse(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn local_and_tcp_addresses_parse() {
        assert_eq!(
            Address::parse("unix:///var/run/docker.sock"),
            Ok(Address::Unix(LOCAL_SOCKET.into()))
        );
        assert_eq!(
            Address::parse("tcp://10.0.0.5:2375"),
            Ok(Address::Tcp("tcp://10.0.0.5:2375".into()))
        );
    }
}
