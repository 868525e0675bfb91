//! The temporary names deploys give containers, in one place.
//!
//! A stop-first [`recreate`](super::recreate) renames the old container aside while the new
//! one takes its name; a [start-first](super::start_first) deploy starts the new one next to
//! the old under a temporary name until it is promoted. Lookups (`find`, `containers_of`),
//! both deploy orders and both recoveries must agree on these names, so they live here, below
//! all of them, and each module takes them one way.

/// The infix of the name an old container gets while a stop-first recreate replaces it.
pub const ASIDE: &str = "_dockhand_old_";

/// The infix of the temporary name a start-first container has until it is promoted.
pub const NEXT: &str = "_dockhand_next_";

/// The label a start-first container carries from its start: the service's network aliases
/// (JSON, network → aliases) it takes only on promotion. It starts without them, so the
/// engine's DNS does not hand out its address before it listens; the label lets a promotion
/// (or a recovery) interrupted after the old container left its networks still know them.
pub const ALIASES_LABEL: &str = "dockhand.start-first.aliases";

/// The first 12 characters of an id, as `docker ps` shows it.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The name the old container `cname` (id `old_id`) gets while it is set aside.
pub fn aside_name(cname: &str, old_id: &str) -> String {
    format!("{cname}{ASIDE}{}", short_id(old_id))
}

/// The temporary name of the container started next to `cname` (id `old_id`).
pub fn next_name(cname: &str, old_id: &str) -> String {
    format!("{cname}{NEXT}{}", short_id(old_id))
}

/// Whether `name` is a container set aside by a recreate.
pub fn is_aside(name: &str) -> bool {
    name.contains(ASIDE)
}

/// Whether `name` is a start-first container not promoted yet.
pub fn is_next(name: &str) -> bool {
    name.contains(NEXT)
}

/// The name a container set aside by a recreate had before (`None` if it is not one).
pub fn original_name(aside: &str) -> Option<&str> {
    aside.rfind(ASIDE).map(|i| &aside[..i])
}

/// The compose name a start-first container will take (`None` if it is not one).
pub fn promoted_name(next: &str) -> Option<&str> {
    next.rfind(NEXT).map(|i| &next[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_lead_back_to_the_compose_name() {
        let id = "0123456789abcdef";
        let a = aside_name("lab-web-1", id);
        assert_eq!(a, "lab-web-1_dockhand_old_0123456789ab");
        assert_eq!(original_name(&a), Some("lab-web-1"));
        assert!(is_aside(&a) && !is_next(&a));
        let n = next_name("lab-web-1", id);
        assert_eq!(promoted_name(&n), Some("lab-web-1"));
        assert!(is_next(&n) && !is_aside(&n));
        assert_eq!(original_name("lab-web-1"), None);
        assert_eq!(promoted_name("lab-web-1"), None);
    }
}
