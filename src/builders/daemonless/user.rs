//! The Dockerfile's user steps, applied to a base's files without running them:
//!
//! ```text
//! RUN id -u flytekit || useradd --create-home --shell /bin/bash flytekit
//! RUN chown -R flytekit /root && chown -R flytekit /home
//! USER flytekit
//! RUN mkdir -p $HOME && echo "export PATH=$PATH" >> $HOME/.profile
//! ```
//!
//! `useradd` is shadow's (Debian, Ubuntu, RHEL): the next uid above the highest in
//! `UID_MIN..UID_MAX` of `/etc/login.defs`, a group of the same name with the same number
//! when free (`USERGROUPS_ENAB`), `/etc/shadow` and `/etc/gshadow` entries, subordinate ids
//! when `/etc/subuid`/`/etc/subgid` exist, `FILE-` backups of each file it rewrites (with
//! the file's own owner and mode), and the home directory from `/etc/skel`. `chown -R`
//! changes the owner (not the group) of everything below, links included, and clears
//! set-user/group-id bits as Linux does. What is changed is collected in an [`Overlay`],
//! which becomes a layer.
//!
//! The one value that differs from a Docker build: `useradd` writes the day it ran into
//! `/etc/shadow` (days since 1970); here it is the base image's creation day, so the same
//! inputs give the same layer.

use super::base::{BaseTree, Kind};
use crate::source::layer::Attrs;
use std::collections::BTreeMap;

/// The user the Dockerfile makes.
pub const USER: &str = "flytekit";

/// What a changed path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// A changed path's owner, mode and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub attrs: Attrs,
    pub body: Body,
}

/// The paths the steps changed (relative to `/`), over the base's tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub items: BTreeMap<String, Item>,
}

/// The `flytekit` user in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u64,
    pub gid: u64,
    /// Its home directory, relative to `/`.
    pub home: String,
}

fn attrs_of(node: &super::base::Node) -> Attrs {
    Attrs {
        uid: node.uid,
        gid: node.gid,
        mode: node.mode,
    }
}

impl Overlay {
    /// The item at `path` as the image has it after the changes so far (base or overlay).
    pub fn get(&self, base: &BaseTree, path: &str) -> Option<Item> {
        if let Some(item) = self.items.get(path) {
            return Some(item.clone());
        }
        let node = base.node(path)?;
        let body = match node.kind {
            Kind::Dir => Body::Dir,
            Kind::Symlink => Body::Symlink(node.link.clone().unwrap_or_default()),
            Kind::File => Body::File(base.content(path)?),
            Kind::Other => return None,
        };
        Some(Item {
            attrs: attrs_of(node),
            body,
        })
    }

    /// Every path below `dir` (base and overlay), in order.
    fn below(&self, base: &BaseTree, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        let mut paths: Vec<String> = base.below(dir).map(|(p, _)| p.clone()).collect();
        paths.extend(
            self.items
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone()),
        );
        paths.sort();
        paths.dedup();
        paths
    }
}

/// A `KEY VALUE` setting of `/etc/login.defs` (or `KEY=VALUE` of `/etc/default/useradd`).
fn setting(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let rest = line.strip_prefix(key)?;
        if !rest.starts_with([' ', '\t', '=']) {
            return None;
        }
        Some(rest.trim_start_matches([' ', '\t', '=']).trim().to_string())
    })
}

fn number(text: &str, key: &str, default: i64) -> i64 {
    setting(text, key)
        .and_then(|v| {
            if let Some(octal) = v.strip_prefix('0').filter(|o| !o.is_empty()) {
                i64::from_str_radix(octal, 8).ok()
            } else {
                v.parse().ok()
            }
        })
        .unwrap_or(default)
}

/// The lines of a colon-separated database, and the ids in its third field.
fn records(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .collect()
}

/// shadow's `find_new_uid`/`find_new_gid`: `preferred` when it is free and in range, else
/// one above the highest id used in `min..=max`, else the lowest free one.
fn new_id(used: &[u64], min: u64, max: u64, preferred: Option<u64>) -> Option<u64> {
    if let Some(p) = preferred.filter(|p| (min..=max).contains(p) && !used.contains(p)) {
        return Some(p);
    }
    let in_range: Vec<u64> = used
        .iter()
        .copied()
        .filter(|id| (min..=max).contains(id))
        .collect();
    match in_range.iter().max() {
        None => Some(min),
        Some(&h) if h < max => Some(h + 1),
        Some(_) => (min..=max).find(|id| !in_range.contains(id)),
    }
}

/// shadow's `find_free_range`: the lowest `count` ids from `min` not overlapping a range of
/// `file` (`name:start:count` lines).
fn free_range(file: &str, min: u64, max: u64, count: u64) -> Option<u64> {
    let taken: Vec<(u64, u64)> = records(file)
        .iter()
        .filter_map(|r| Some((r.get(1)?.parse().ok()?, r.get(2)?.parse().ok()?)))
        .collect();
    let mut start = min;
    loop {
        if start + count - 1 > max {
            return None;
        }
        match taken
            .iter()
            .find(|(s, c)| *s < start + count && start < s + c)
        {
            Some((s, c)) => start = s + c,
            None => return Some(start),
        }
    }
}

/// A file's text with `line` appended (shadow rewrites the file: every line ends with `\n`).
fn appended(text: &str, line: &str) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + line.len() + 2);
    for l in text.lines() {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out.into_bytes()
}

/// Rewrites `path` (which exists in the base) as `content`, leaving its `path-` backup of
/// the old content with the file's owner and mode, as shadow does.
fn rewrite(base: &BaseTree, overlay: &mut Overlay, path: &str, content: Vec<u8>) {
    let Some(old) = overlay.get(base, path) else {
        return;
    };
    let Body::File(old_content) = old.body else {
        return;
    };
    overlay.items.insert(
        format!("{path}-"),
        Item {
            attrs: old.attrs,
            body: Body::File(old_content),
        },
    );
    overlay.items.insert(
        path.to_string(),
        Item {
            attrs: old.attrs,
            body: Body::File(content),
        },
    );
}

fn text(base: &BaseTree, path: &str) -> Option<String> {
    base.content(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Why the flytekit user cannot be made the way `useradd`, `chown -R` and the profile line
/// would make it in the base image (the dependency image is then left to dockerd).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the base image has no /etc/passwd")]
    NoPasswd,
    #[error("the base image has no /etc/group")]
    NoGroup,
    #[error("a malformed flytekit entry in /etc/passwd")]
    MalformedEntry,
    #[error("the base image has a flytekit group but no flytekit user (useradd refuses)")]
    GroupWithoutUser,
    #[error("no free uid")]
    NoFreeUid,
    #[error("no free gid")]
    NoFreeGid,
    #[error("no free subordinate ids")]
    NoFreeSubordinateIds,
    #[error("the base image has no /{0} for the home directory")]
    NoHomeParent(String),
    #[error("/{0} in the skeleton cannot be copied")]
    Skeleton(String),
    #[error("/{0} in the base image is too big to copy with a new owner")]
    TooBig(String),
    #[error("/{0} in the base image is a special file")]
    Special(String),
    #[error("the flytekit user's home /{0} is not a directory")]
    HomeNotDirectory(String),
    #[error("/{0} in the base image is not a file")]
    NotAFile(String),
}

/// `id -u flytekit || useradd --create-home --shell /bin/bash flytekit` on `base`:
/// the user (existing or added) and, when added, the changed files in `overlay`.
/// `day` is the day number written as the password's last change.
pub fn useradd(
    base: &BaseTree,
    overlay: &mut Overlay,
    day: Option<i64>,
) -> Result<User, UserError> {
    let passwd = text(base, "etc/passwd").ok_or(UserError::NoPasswd)?;
    if let Some(existing) = records(&passwd).iter().find(|r| r[0] == USER) {
        let field = |i: usize| existing.get(i).copied().unwrap_or_default();
        return Ok(User {
            uid: field(2).parse().map_err(|_| UserError::MalformedEntry)?,
            gid: field(3).parse().map_err(|_| UserError::MalformedEntry)?,
            home: field(5).trim_start_matches('/').to_string(),
        });
    }
    let group = text(base, "etc/group").ok_or(UserError::NoGroup)?;
    if records(&group).iter().any(|r| r[0] == USER) {
        return Err(UserError::GroupWithoutUser);
    }
    let defs = text(base, "etc/login.defs").unwrap_or_default();
    let defaults = text(base, "etc/default/useradd").unwrap_or_default();
    let get = |key: &str, default: i64| number(&defs, key, default);
    let ids = |text: &str| -> Vec<u64> {
        records(text)
            .iter()
            .filter_map(|r| r.get(2)?.parse().ok())
            .collect()
    };
    let (uid_min, uid_max) = (get("UID_MIN", 1000) as u64, get("UID_MAX", 60000) as u64);
    let (gid_min, gid_max) = (get("GID_MIN", 1000) as u64, get("GID_MAX", 60000) as u64);
    let uid = new_id(&ids(&passwd), uid_min, uid_max, None).ok_or(UserError::NoFreeUid)?;
    let usergroups = setting(&defs, "USERGROUPS_ENAB").is_none_or(|v| v == "yes");
    let gid = if usergroups {
        new_id(&ids(&group), gid_min, gid_max, Some(uid)).ok_or(UserError::NoFreeGid)?
    } else {
        number(&defaults, "GROUP", 100) as u64
    };
    let home_base = setting(&defaults, "HOME").unwrap_or_else(|| "/home".into());
    let home = format!("{}/{USER}", home_base.trim_matches('/'));
    let skel = setting(&defaults, "SKEL").unwrap_or_else(|| "/etc/skel".into());

    rewrite(
        base,
        overlay,
        "etc/passwd",
        appended(&passwd, &format!("{USER}:x:{uid}:{gid}::/{home}:/bin/bash")),
    );
    if usergroups {
        rewrite(
            base,
            overlay,
            "etc/group",
            appended(&group, &format!("{USER}:x:{gid}:")),
        );
    }
    shadows(base, overlay, &defs, day, usergroups);
    subordinate_ids(base, overlay, &defs)?;
    // The home directory, from the skeleton, unless it exists (useradd then copies nothing).
    if overlay.get(base, &home).is_none() {
        make_home(base, overlay, &defs, (&home, &skel), (uid, gid))?;
    }
    Ok(User { uid, gid, home })
}

/// The user's lines in `/etc/shadow` and (with user groups) `/etc/gshadow`, where they exist.
fn shadows(base: &BaseTree, overlay: &mut Overlay, defs: &str, day: Option<i64>, usergroups: bool) {
    if let Some(shadow) = text(base, "etc/shadow") {
        let days = |key: &str| match number(defs, key, -1) {
            -1 => String::new(),
            n => n.to_string(),
        };
        let last = day.map(|d| d.to_string()).unwrap_or_default();
        let line = format!(
            "{USER}:!:{last}:{}:{}:{}:::",
            days("PASS_MIN_DAYS"),
            days("PASS_MAX_DAYS"),
            days("PASS_WARN_AGE")
        );
        rewrite(base, overlay, "etc/shadow", appended(&shadow, &line));
    }
    if usergroups && let Some(gshadow) = text(base, "etc/gshadow") {
        rewrite(
            base,
            overlay,
            "etc/gshadow",
            appended(&gshadow, &format!("{USER}:!::")),
        );
    }
}

/// The user's ranges in `/etc/subuid` and `/etc/subgid`, where they exist.
fn subordinate_ids(base: &BaseTree, overlay: &mut Overlay, defs: &str) -> Result<(), UserError> {
    let get = |key: &str, default: i64| number(defs, key, default) as u64;
    for (file, prefix) in [("etc/subuid", "SUB_UID"), ("etc/subgid", "SUB_GID")] {
        let count = get(&format!("{prefix}_COUNT"), 65536);
        let Some(current) = text(base, file).filter(|_| count > 0) else {
            continue;
        };
        let min = get(&format!("{prefix}_MIN"), 100000);
        let max = get(&format!("{prefix}_MAX"), 600100000);
        let start = free_range(&current, min, max, count).ok_or(UserError::NoFreeSubordinateIds)?;
        rewrite(
            base,
            overlay,
            file,
            appended(&current, &format!("{USER}:{start}:{count}")),
        );
    }
    Ok(())
}

/// The home directory `home`, owned by the user, with the skeleton `skel` copied in.
fn make_home(
    base: &BaseTree,
    overlay: &mut Overlay,
    defs: &str,
    (home, skel): (&str, &str),
    (uid, gid): (u64, u64),
) -> Result<(), UserError> {
    let parent = home.rsplit_once('/').map_or("", |(p, _)| p);
    if !parent.is_empty() && overlay.get(base, parent).is_none() {
        return Err(UserError::NoHomeParent(parent.to_string()));
    }
    let umask = number(defs, "UMASK", 0o022) as u32;
    let mode = number(defs, "HOME_MODE", i64::from(0o777 & !umask)) as u32;
    overlay.items.insert(
        home.to_string(),
        Item {
            attrs: Attrs { uid, gid, mode },
            body: Body::Dir,
        },
    );
    let skel = skel.trim_matches('/').to_string();
    for path in overlay.below(base, &skel) {
        let Some(item) = overlay.get(base, &path) else {
            return Err(UserError::Skeleton(path));
        };
        let to = format!("{home}{}", &path[skel.len()..]);
        let attrs = Attrs {
            uid,
            gid,
            mode: item.attrs.mode,
        };
        overlay.items.insert(
            to,
            Item {
                attrs,
                body: item.body,
            },
        );
    }
    Ok(())
}

/// `chown -R <uid> /dir`: the owner of `dir` and everything below it (links themselves,
/// not followed), group kept; set-user-id (and set-group-id on group-executable files)
/// cleared on files, as Linux does.
pub fn chown_r(
    base: &BaseTree,
    overlay: &mut Overlay,
    dir: &str,
    uid: u64,
) -> Result<(), UserError> {
    let mut paths = vec![dir.to_string()];
    paths.extend(overlay.below(base, dir));
    for path in paths {
        let Some(mut item) = overlay.get(base, &path) else {
            if base.uncaptured.contains(&path) {
                return Err(UserError::TooBig(path));
            }
            return Err(UserError::Special(path));
        };
        item.attrs.uid = uid;
        if let Body::File(_) = item.body {
            item.attrs.mode &= !0o4000;
            if item.attrs.mode & 0o010 != 0 {
                item.attrs.mode &= !0o2000;
            }
        }
        overlay.items.insert(path, item);
    }
    Ok(())
}

/// `mkdir -p $HOME && echo "export PATH=$PATH" >> $HOME/.profile` as the user.
pub fn append_profile(
    base: &BaseTree,
    overlay: &mut Overlay,
    user: &User,
    path_value: &str,
) -> Result<(), UserError> {
    let made = Attrs {
        uid: user.uid,
        gid: user.gid,
        mode: 0o755,
    };
    match overlay.get(base, &user.home) {
        Some(Item {
            body: Body::Dir, ..
        }) => {}
        None => {
            overlay.items.insert(
                user.home.clone(),
                Item {
                    attrs: made,
                    body: Body::Dir,
                },
            );
        }
        Some(_) => {
            return Err(UserError::HomeNotDirectory(user.home.clone()));
        }
    }
    let profile = format!("{}/.profile", user.home);
    let line = format!("export PATH={path_value}\n");
    let item = match overlay.get(base, &profile) {
        Some(Item {
            attrs,
            body: Body::File(mut content),
        }) => {
            content.extend_from_slice(line.as_bytes());
            Item {
                attrs,
                body: Body::File(content),
            }
        }
        None => Item {
            attrs: Attrs {
                mode: 0o644,
                ..made
            },
            body: Body::File(line.into_bytes()),
        },
        Some(_) => return Err(UserError::NotAFile(profile)),
    };
    overlay.items.insert(profile, item);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::base::tests::{layer, tree};
    use super::*;

    /// Debian 12's `/etc/passwd`, `/etc/group` and `/etc/login.defs`, shortened.
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n";
    const LOGIN_DEFS: &str = "# comment UID_MIN 5\nUMASK\t\t022\nPASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nPASS_WARN_AGE\t7\nUID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\nSUB_UID_MIN\t\t   100000\nSUB_UID_COUNT\t\t    65536\nGID_MIN\t\t\t 1000\nUSERGROUPS_ENAB yes\n";

    /// The relevant files of localhost:5000/debian-python:bookworm (Debian 12 minbase),
    /// shortened.
    fn debian() -> BaseTree {
        tree(&[
            ("etc", 'd', ""),
            ("etc/passwd", 'f', PASSWD),
            ("etc/group", 'f', GROUP),
            ("etc/shadow", 'f', "root:*:20788:0:99999:7:::\n"),
            ("etc/gshadow", 'f', "root:*::\n"),
            ("etc/subuid", 'f', ""),
            ("etc/subgid", 'f', ""),
            ("etc/login.defs", 'f', LOGIN_DEFS),
            ("etc/default/useradd", 'f', "SHELL=/bin/sh\n"),
            ("etc/skel/.bashrc", 'f', "# bashrc\n"),
            ("etc/skel/.profile", 'f', "# profile\n"),
            ("home", 'd', ""),
            ("root", 'd', ""),
            ("root/.profile", 'f', "root profile\n"),
        ])
    }

    fn file(overlay: &Overlay, path: &str) -> String {
        match &overlay.items[path].body {
            Body::File(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{path}: {other:?}"),
        }
    }

    /// The lines Debian 12's useradd wrote in the Docker build of the e2e base.
    #[test]
    fn useradd_writes_what_debians_useradd_writes() {
        let base = debian();
        let mut o = Overlay::default();
        let user = useradd(&base, &mut o, Some(20788)).unwrap();
        assert_eq!(
            user,
            User {
                uid: 1000,
                gid: 1000,
                home: "home/flytekit".into()
            }
        );
        let last = |path: &str| file(&o, path).lines().last().unwrap().to_string();
        assert_eq!(
            last("etc/passwd"),
            "flytekit:x:1000:1000::/home/flytekit:/bin/bash"
        );
        assert_eq!(last("etc/group"), "flytekit:x:1000:");
        assert_eq!(last("etc/shadow"), "flytekit:!:20788:0:99999:7:::");
        assert_eq!(last("etc/gshadow"), "flytekit:!::");
        assert_eq!(file(&o, "etc/subuid"), "flytekit:100000:65536\n");
        assert_eq!(file(&o, "etc/subgid"), "flytekit:100000:65536\n");
        assert_eq!(
            file(&o, "etc/subuid-"),
            "",
            "the backup holds the old content"
        );
        assert_eq!(file(&o, "etc/passwd-"), base_text(&base, "etc/passwd"));
        assert_eq!(o.items["etc/passwd-"].attrs, o.items["etc/passwd"].attrs);
        assert_eq!(o.items["home/flytekit"].attrs.mode, 0o755);
        assert_eq!(file(&o, "home/flytekit/.bashrc"), "# bashrc\n");
        assert_eq!(
            o.items["home/flytekit/.profile"].attrs,
            Attrs {
                uid: 1000,
                gid: 1000,
                mode: 0o644
            }
        );
    }

    fn base_text(base: &BaseTree, path: &str) -> String {
        String::from_utf8(base.content(path).unwrap()).unwrap()
    }

    #[test]
    fn ids_above_existing_users_and_a_taken_group_number() {
        assert_eq!(new_id(&[0, 65534], 1000, 60000, None), Some(1000));
        assert_eq!(new_id(&[0, 1000, 1003], 1000, 60000, None), Some(1004));
        assert_eq!(new_id(&[1000, 1001], 1000, 60000, Some(1001)), Some(1002));
        assert_eq!(new_id(&[100], 1000, 60000, Some(1001)), Some(1001));
        assert_eq!(new_id(&[1000, 1002], 1000, 1002, None), Some(1001));
        assert_eq!(
            free_range("a:100000:65536\n", 100000, 600100000, 65536),
            Some(165536)
        );
    }

    #[test]
    fn an_existing_user_is_kept_and_a_lone_group_refused() {
        let mut base = debian();
        base.apply_layer(
            &layer(&[(
                "etc/passwd",
                'f',
                "root:x:0:0::/root:/bin/bash\nflytekit:x:1001:1001::/home/flytekit:/bin/bash\n",
            )])[..],
        )
        .unwrap();
        let mut o = Overlay::default();
        let user = useradd(&base, &mut o, None).unwrap();
        assert_eq!((user.uid, user.gid), (1001, 1001));
        assert!(o.items.is_empty(), "id -u flytekit succeeds: nothing runs");

        let mut base = debian();
        base.apply_layer(&layer(&[("etc/group", 'f', "root:x:0:\nflytekit:x:5:\n")])[..])
            .unwrap();
        assert!(useradd(&base, &mut Overlay::default(), None).is_err());
    }

    #[test]
    fn chown_and_profile_as_the_dockerfile_leaves_them() {
        let base = debian();
        let mut o = Overlay::default();
        let user = useradd(&base, &mut o, Some(1)).unwrap();
        chown_r(&base, &mut o, "root", user.uid).unwrap();
        chown_r(&base, &mut o, "home", user.uid).unwrap();
        assert_eq!(
            o.items["root"].attrs,
            Attrs {
                uid: 1000,
                gid: 0,
                mode: 0o755
            },
            "the owner changes, the group stays"
        );
        assert_eq!(o.items["root/.profile"].attrs.uid, 1000);
        assert_eq!(file(&o, "root/.profile"), "root profile\n");
        assert_eq!(o.items["home"].attrs.uid, 1000);
        append_profile(&base, &mut o, &user, "/root/.venv/bin:/usr/bin").unwrap();
        assert_eq!(
            file(&o, "home/flytekit/.profile"),
            "# profile\nexport PATH=/root/.venv/bin:/usr/bin\n"
        );
    }
}
