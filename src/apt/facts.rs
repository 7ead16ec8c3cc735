//! What the apt step of one platform found before anything is built — the packages apt
//! would add and what each one's maintainer scripts need — as plain values, so that
//! [`crate::engine::decide`] chooses between laying them down without a daemon and
//! dockerd's `apt-get install` once, at plan time, and `imagespec plan` shows the choice.
//! Gathered by the daemonless builder (`builders::daemonless::apt_layers::prepare`).

use super::scripts::{Effects, NeedsRun};

/// One chosen package and what its scripts need on a fresh install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFacts {
    pub name: String,
    pub version: String,
    /// What its `preinst`/`postinst`/`triggers` do ([`super::scripts::effects`]), or the
    /// command that must run.
    pub scripts: Result<Effects, NeedsRun>,
    /// An alternative of the base's that its `postinst` removes (`update-alternatives
    /// --remove NAME`): not reproduced.
    pub removes_base_alternative: Option<String>,
}

/// The apt step of one platform, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AptFacts {
    /// The packages `apt-get install --no-install-recommends` adds, in install order.
    Resolved(Vec<PackageFacts>),
    /// Not laid down without a daemon, for a reason dockerd's `apt-get` does not share
    /// (the base is not Debian, has no sources, apt would resolve otherwise, the mirror
    /// answers no index): dockerd builds it, saying why.
    Unavailable(String),
    /// An error to report, not to fall back from (an `InRelease` whose signature does not
    /// verify): the build fails with it.
    Failed(String),
}

/// Why a resolved package set is not laid down without a daemon: the first package whose
/// scripts must run or do what is not reproduced (`None`: every one is laid down).
pub fn blocker(packages: &[PackageFacts]) -> Option<(String, String)> {
    packages.iter().find_map(|p| {
        let why = match (&p.scripts, &p.removes_base_alternative) {
            (Err(needs), _) => format!("its {} runs `{}`", needs.script, needs.command),
            (Ok(_), Some(name)) => format!("its postinst removes the base's alternative {name}"),
            (Ok(effects), None) => format!(
                "its alternative {} is not laid down without a daemon yet",
                effects.alternatives.first()?.name
            ),
        };
        Some((p.name.clone(), why))
    })
}

#[cfg(test)]
mod tests {
    use super::super::scripts::Alternative;
    use super::*;

    fn package(name: &str, scripts: Result<Effects, NeedsRun>) -> PackageFacts {
        PackageFacts {
            name: name.into(),
            version: "1".into(),
            scripts,
            removes_base_alternative: None,
        }
    }

    #[test]
    fn the_first_package_whose_scripts_must_run_blocks() {
        let fine = package("libjq1", Ok(Effects::default()));
        assert_eq!(blocker(std::slice::from_ref(&fine)), None);
        let sudo = package(
            "sudo",
            Err(NeedsRun {
                package: "sudo".into(),
                script: "postinst".into(),
                command: "addgroup --system sudo".into(),
            }),
        );
        assert_eq!(
            blocker(&[fine.clone(), sudo]),
            Some((
                "sudo".into(),
                "its postinst runs `addgroup --system sudo`".into()
            ))
        );
        let alt = Alternative {
            link: "/usr/bin/editor".into(),
            name: "editor".into(),
            path: "/usr/bin/vim".into(),
            priority: 10,
        };
        let vim = package(
            "vim",
            Ok(Effects {
                alternatives: vec![alt],
                ..Effects::default()
            }),
        );
        assert_eq!(
            blocker(&[vim]).unwrap().1,
            "its alternative editor is not laid down without a daemon yet"
        );
        let remover = PackageFacts {
            removes_base_alternative: Some("pager".into()),
            ..fine
        };
        assert_eq!(
            blocker(&[remover]).unwrap().1,
            "its postinst removes the base's alternative pager"
        );
    }
}
