//! Can this machine run another architecture's programs? BuildKit runs the `RUN` steps of a
//! `linux/arm64` image on an amd64 host through the kernel's `binfmt_misc`: a handler
//! (Debian's `qemu-user-static` + `binfmt-support` register `qemu-aarch64`) hands each arm64
//! executable to qemu. Without one, the first `RUN` step fails deep in the build with
//! `exec format error`; this check says so before any work, naming the missing handler.
//!
//! [`check`] is pure, over a [`Binfmt`] snapshot of `/proc/sys/fs/binfmt_misc` ([`Binfmt::read`]
//! is the only I/O). A handler matches a platform as the kernel matches it: the handler's
//! magic and mask against the ELF header of that architecture's executables, whatever the
//! handler is called. It must have the `F` flag ("fix binary": the kernel opens the
//! interpreter when it is registered), else the interpreter is looked up inside each build
//! container, where it is not.
//!
//! Only for a daemon on this machine: a remote `DOCKER_HOST` (tcp://) has its own kernel,
//! which imagespec cannot see, so no check is made there.

use crate::oci::{Platform, Platforms};
use std::path::Path;

/// Where the kernel shows its handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// What to install and run so that the handler `qemu` is registered (Debian and Ubuntu).
fn install(qemu: &str) -> String {
    format!(
        "apt-get install qemu-user-static binfmt-support, which registers {qemu} with the F \
         flag (where binfmt_misc was not mounted at install, as in a container or a VM without \
         systemd: mount -t binfmt_misc binfmt_misc {BINFMT_DIR}, then update-binfmts --enable \
         {qemu})"
    )
}

/// One registered handler (`/proc/sys/fs/binfmt_misc/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    /// Where the magic starts in the file.
    pub offset: usize,
    /// `None` for an extension handler (`E`), which never matches an executable.
    pub magic: Option<Vec<u8>>,
    pub mask: Option<Vec<u8>>,
}

impl Handler {
    /// Parses a handler file as the kernel writes it:
    /// `enabled`, `interpreter …`, `flags: …`, `offset N`, `magic HEX`, `mask HEX`.
    pub fn parse(name: &str, text: &str) -> Handler {
        let mut handler = Handler {
            name: name.to_string(),
            enabled: false,
            interpreter: String::new(),
            flags: String::new(),
            offset: 0,
            magic: None,
            mask: None,
        };
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => handler.enabled = true,
                "interpreter" => handler.interpreter = value.to_string(),
                "flags:" => handler.flags = value.to_string(),
                "offset" => handler.offset = value.trim().parse().unwrap_or(0),
                "magic" => handler.magic = hex(value.trim()),
                "mask" => handler.mask = hex(value.trim()),
                _ => {}
            }
        }
        handler
    }

    /// Whether the kernel hands `header` (the start of an executable) to this handler.
    fn matches(&self, header: &[u8]) -> bool {
        let Some(magic) = &self.magic else {
            return false;
        };
        magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.as_ref().and_then(|k| k.get(i)).copied();
            let mask = mask.unwrap_or(0xff);
            header
                .get(self.offset + i)
                .is_some_and(|b| b & mask == m & mask)
        })
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What `/proc/sys/fs/binfmt_misc` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binfmt {
    /// The file system is mounted (it has `register` and `status`).
    pub mounted: bool,
    /// `status` says `enabled`.
    pub enabled: bool,
    pub handlers: Vec<Handler>,
}

impl Binfmt {
    /// Reads `dir` (normally [`BINFMT_DIR`]); unreadable parts read as absent.
    pub fn read(dir: &Path) -> Binfmt {
        let status = std::fs::read_to_string(dir.join("status")).ok();
        let mut handlers = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == "register" || name == "status" {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    handlers.push(Handler::parse(&name, &text));
                }
            }
        }
        handlers.sort_by(|a, b| a.name.cmp(&b.name));
        Binfmt {
            mounted: status.is_some() && dir.join("register").exists(),
            enabled: status.is_some_and(|s| s.trim() == "enabled"),
            handlers,
        }
    }
}

/// An architecture's executables: what its ELF header holds, and the qemu handler that
/// runs them (as qemu-user-static names it).
struct Elf {
    class64: bool,
    big_endian: bool,
    machine: u16,
    qemu: &'static str,
}

/// The architectures whose ELF header is known here (Docker's names).
fn elf(architecture: &str) -> Option<Elf> {
    let e = |class64, big_endian, machine, qemu| Elf {
        class64,
        big_endian,
        machine,
        qemu,
    };
    Some(match architecture {
        "amd64" => e(true, false, 62, "qemu-x86_64"),
        "arm64" => e(true, false, 183, "qemu-aarch64"),
        "arm" => e(false, false, 40, "qemu-arm"),
        "386" => e(false, false, 3, "qemu-i386"),
        "ppc64le" => e(true, false, 21, "qemu-ppc64le"),
        "s390x" => e(true, true, 22, "qemu-s390x"),
        "riscv64" => e(true, false, 243, "qemu-riscv64"),
        "mips64le" => e(true, false, 8, "qemu-mips64el"),
        _ => return None,
    })
}

impl Elf {
    /// The first 20 bytes of an executable (`ET_EXEC`) of this architecture.
    fn header(&self) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F'];
        h.push(if self.class64 { 2 } else { 1 });
        h.push(if self.big_endian { 2 } else { 1 });
        h.push(1); // EI_VERSION
        h.extend([0; 9]); // OS ABI, ABI version, padding
        let two = |v: u16| {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        h.extend(two(2)); // e_type: ET_EXEC
        h.extend(two(self.machine));
        h
    }
}

/// The architectures a machine runs without emulation (by `uname -m`, Rust's
/// `std::env::consts::ARCH`): 64-bit x86 also runs 32-bit x86; an arm64 machine may or may
/// not run 32-bit arm (it depends on the CPU), so it is not checked there.
fn native(machine: &str) -> &'static [&'static str] {
    match machine {
        "x86_64" => &["amd64", "386"],
        "aarch64" => &["arm64", "arm"],
        "arm" => &["arm"],
        "x86" => &["386"],
        "powerpc64" => &["ppc64le"],
        "s390x" => &["s390x"],
        "riscv64" => &["riscv64"],
        _ => &[],
    }
}

/// Whether programs of `platform` run on a `machine` (`uname -m`) without emulation.
pub fn runs_natively(platform: &Platform, machine: &str) -> bool {
    native(machine).contains(&platform.architecture())
}

/// Why another architecture's programs cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    #[error(
        "{platform} cannot be built on this {machine} machine: binfmt_misc is not mounted at \
         {BINFMT_DIR}, so no emulator ({qemu}) can run its programs; {}",
        install(qemu)
    )]
    NotMounted {
        platform: String,
        machine: String,
        qemu: &'static str,
    },
    #[error(
        "{platform} cannot be built on this {machine} machine: binfmt_misc is disabled \
         ({BINFMT_DIR}/status); enable it: echo 1 > {BINFMT_DIR}/status"
    )]
    Disabled { platform: String, machine: String },
    #[error(
        "{platform} cannot be built on this {machine} machine: no binfmt handler runs its \
         programs ({BINFMT_DIR}/{qemu} is missing); {}",
        install(qemu)
    )]
    Missing {
        platform: String,
        machine: String,
        qemu: &'static str,
    },
    #[error(
        "{platform}: the binfmt handler {BINFMT_DIR}/{handler} is disabled; enable it: \
         echo 1 > {BINFMT_DIR}/{handler} (or update-binfmts --enable {handler})"
    )]
    HandlerDisabled { platform: String, handler: String },
    #[error(
        "{platform}: the binfmt handler {BINFMT_DIR}/{handler} has no F flag (flags: \
         {flags:?}), so its interpreter {interpreter} is looked up inside each build \
         container, where it is missing; register it with F: qemu-user-static's handlers \
         have it (update-binfmts --disable {handler} && update-binfmts --enable {handler}), \
         or write the registration with the F flag yourself"
    )]
    NoFixBinary {
        platform: String,
        handler: String,
        flags: String,
        interpreter: String,
    },
}

/// Whether programs of every platform in `platforms` (`os/arch[/variant]`) can run on a
/// `machine` (`uname -m`) whose binfmt_misc is `binfmt`. The first platform that cannot is
/// the error. Platforms of unknown architectures are not checked (nothing to match).
pub fn check(platforms: &Platforms, machine: &str, binfmt: &Binfmt) -> Result<(), EmulationError> {
    for platform in platforms.iter() {
        if runs_natively(platform, machine) {
            continue;
        }
        let Some(elf) = elf(platform.architecture()) else {
            continue;
        };
        let (platform, machine_name) = (platform.to_string(), machine.to_string());
        if !binfmt.mounted {
            return Err(EmulationError::NotMounted {
                platform,
                machine: machine_name,
                qemu: elf.qemu,
            });
        }
        if !binfmt.enabled {
            return Err(EmulationError::Disabled {
                platform,
                machine: machine_name,
            });
        }
        let header = elf.header();
        let matching: Vec<&Handler> = binfmt
            .handlers
            .iter()
            .filter(|h| h.matches(&header))
            .collect();
        // The kernel uses the first enabled match; any enabled one with F will do.
        if matching.iter().any(|h| h.enabled && h.flags.contains('F')) {
            continue;
        }
        return Err(match matching.iter().find(|h| h.enabled) {
            Some(h) => EmulationError::NoFixBinary {
                platform,
                handler: h.name.clone(),
                flags: h.flags.clone(),
                interpreter: h.interpreter.clone(),
            },
            None => match matching.first() {
                Some(h) => EmulationError::HandlerDisabled {
                    platform,
                    handler: h.name.clone(),
                },
                None => EmulationError::Missing {
                    platform,
                    machine: machine_name,
                    qemu: elf.qemu,
                },
            },
        });
    }
    Ok(())
}

/// Whether the daemon at `docker_host` (`DOCKER_HOST`, empty or unset: the default socket)
/// runs on this machine, so that this machine's binfmt_misc is the one its builds use.
pub fn daemon_is_local(docker_host: Option<&str>) -> bool {
    match docker_host.filter(|h| !h.is_empty()) {
        None => true,
        Some(h) => h.starts_with("unix://") || h.starts_with("npipe://"),
    }
}

/// The check for builds of `platforms` on the daemon at `DOCKER_HOST`, against this
/// machine's `/proc`; no check for a remote daemon.
pub fn check_local_daemon(platforms: &Platforms) -> Result<(), EmulationError> {
    let host = std::env::var("DOCKER_HOST").ok();
    if !daemon_is_local(host.as_deref()) {
        return Ok(());
    }
    let machine = std::env::consts::ARCH;
    // Nothing to read when every platform is native (the common case).
    if platforms.iter().all(|p| runs_natively(p, machine)) {
        return Ok(());
    }
    check(platforms, machine, &Binfmt::read(Path::new(BINFMT_DIR)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(platform: &str) -> Platform {
        Platform::parse(platform).unwrap()
    }

    fn ps(list: &[&str]) -> Platforms {
        Platforms::parse(&list.join(",")).unwrap()
    }

    #[test]
    fn a_second_platform_needs_its_binfmt_handler() {
        let none = Binfmt {
            mounted: false,
            enabled: false,
            handlers: vec![],
        };
        assert!(check(&ps(&["linux/amd64"]), "x86_64", &none).is_ok());
        let err = check(&ps(&["linux/amd64", "linux/arm64"]), "x86_64", &none).unwrap_err();
        assert!(err.to_string().contains("qemu-aarch64"));
    }

    /// What Debian 12's qemu-user-static registers for arm64 (`cat …/qemu-aarch64`).
    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn mounted(handlers: Vec<Handler>) -> Binfmt {
        Binfmt {
            mounted: true,
            enabled: true,
            handlers,
        }
    }

    fn aarch64(text: &str) -> Handler {
        Handler::parse("qemu-aarch64", text)
    }

    #[test]
    fn the_kernels_handler_file_parses() {
        let h = aarch64(DEBIAN_AARCH64);
        assert!(h.enabled);
        assert_eq!(h.flags, "PF");
        assert_eq!(h.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        assert_eq!(h.magic.as_ref().map(Vec::len), Some(20));
        assert!(h.matches(&elf("arm64").unwrap().header()));
        // ET_DYN (3) matches too: the mask's 0xfe on e_type.
        let mut pie = elf("arm64").unwrap().header();
        pie[16] = 3;
        assert!(h.matches(&pie));
        assert!(!h.matches(&elf("amd64").unwrap().header()));
        assert!(!h.matches(&elf("arm").unwrap().header()));
        let disabled = aarch64(&DEBIAN_AARCH64.replace("enabled", "disabled"));
        assert!(!disabled.enabled);
    }

    #[test]
    fn native_platforms_need_nothing() {
        let nothing = Binfmt {
            mounted: false,
            enabled: false,
            handlers: vec![],
        };
        assert_eq!(
            check(&ps(&["linux/amd64", "linux/386"]), "x86_64", &nothing),
            Ok(())
        );
        assert_eq!(
            check(&ps(&["linux/arm64", "linux/arm/v7"]), "aarch64", &nothing),
            Ok(())
        );
        // Unknown architectures: nothing to match, BuildKit will say.
        assert_eq!(check(&ps(&["linux/loong64"]), "x86_64", &nothing), Ok(()));
    }

    #[test]
    fn a_registered_handler_with_the_f_flag_runs_arm64() {
        let binfmt = mounted(vec![aarch64(DEBIAN_AARCH64)]);
        assert_eq!(
            check(&ps(&["linux/amd64", "linux/arm64"]), "x86_64", &binfmt),
            Ok(())
        );
        assert_eq!(check(&ps(&["linux/arm64/v8"]), "x86_64", &binfmt), Ok(()));
        // Whatever its name: the magic decides (tonistiigi/binfmt, distro packages).
        let other = Handler::parse("aarch64-custom", DEBIAN_AARCH64);
        assert_eq!(
            check(&ps(&["linux/arm64"]), "x86_64", &mounted(vec![other])),
            Ok(())
        );
    }

    #[test]
    fn binfmt_misc_not_mounted_names_the_handler_and_the_fix() {
        let binfmt = Binfmt {
            mounted: false,
            enabled: false,
            handlers: vec![],
        };
        let err = check(&ps(&["linux/amd64", "linux/arm64"]), "x86_64", &binfmt).unwrap_err();
        assert!(matches!(
            err,
            EmulationError::NotMounted {
                qemu: "qemu-aarch64",
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.starts_with("linux/arm64 cannot be built on this x86_64 machine"),
            "{text}"
        );
        assert!(
            text.contains("apt-get install qemu-user-static binfmt-support"),
            "{text}"
        );
        assert!(text.contains("mount -t binfmt_misc"), "{text}");
    }

    #[test]
    fn a_missing_handler_is_named_by_its_proc_path() {
        let arm = Handler::parse("qemu-arm", &DEBIAN_AARCH64.replace("b700", "2800"));
        let err = check(&ps(&["linux/arm64"]), "x86_64", &mounted(vec![arm])).unwrap_err();
        assert_eq!(
            err,
            EmulationError::Missing {
                platform: "linux/arm64".into(),
                machine: "x86_64".into(),
                qemu: "qemu-aarch64",
            }
        );
        assert!(
            err.to_string()
                .contains("(/proc/sys/fs/binfmt_misc/qemu-aarch64 is missing)"),
            "{err}"
        );
        // On an arm64 machine, amd64 needs qemu-x86_64.
        let err = check(&ps(&["linux/amd64"]), "aarch64", &mounted(vec![])).unwrap_err();
        assert!(
            err.to_string()
                .contains("binfmt_misc/qemu-x86_64 is missing"),
            "{err}"
        );
    }

    #[test]
    fn a_disabled_handler_or_binfmt_misc_says_how_to_enable_it() {
        let off = aarch64(&DEBIAN_AARCH64.replace("enabled", "disabled"));
        let err = check(&ps(&["linux/arm64"]), "x86_64", &mounted(vec![off])).unwrap_err();
        assert!(
            matches!(err, EmulationError::HandlerDisabled { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("echo 1 > /proc/sys/fs/binfmt_misc/qemu-aarch64")
        );
        let mut binfmt = mounted(vec![aarch64(DEBIAN_AARCH64)]);
        binfmt.enabled = false;
        let err = check(&ps(&["linux/arm64"]), "x86_64", &binfmt).unwrap_err();
        assert!(matches!(err, EmulationError::Disabled { .. }), "{err}");
    }

    #[test]
    fn a_handler_without_the_f_flag_is_not_enough() {
        let text = DEBIAN_AARCH64.replace("flags: PF", "flags: OC").replace(
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
            "/usr/bin/qemu-aarch64-static",
        );
        let err = check(
            &ps(&["linux/arm64"]),
            "x86_64",
            &mounted(vec![aarch64(&text)]),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("has no F flag"), "{message}");
        assert!(
            message.contains("/usr/bin/qemu-aarch64-static"),
            "{message}"
        );
        // One with F beside it is enough.
        let both = mounted(vec![
            aarch64(&text),
            Handler::parse("qemu-aarch64-f", DEBIAN_AARCH64),
        ]);
        assert_eq!(check(&ps(&["linux/arm64"]), "x86_64", &both), Ok(()));
    }

    #[test]
    fn big_endian_and_32_bit_headers_match_their_handlers() {
        // Debian's qemu-s390x magic and mask.
        let s390x = Handler::parse(
            "qemu-s390x",
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\n\
             magic 7f454c460201020000000000000000000002 0016\n",
        );
        // A malformed magic (odd length) never matches.
        assert_eq!(s390x.magic, None);
        let s390x = Handler::parse(
            "qemu-s390x",
            "enabled\ninterpreter /x\nflags: F\noffset 0\n\
             magic 7f454c4602020100000000000000000000020016\n\
             mask ffffffffffffff00fffffffffffffffffffeffff\n",
        );
        assert!(s390x.matches(&elf("s390x").unwrap().header()));
        assert_eq!(
            check(&ps(&["linux/s390x"]), "x86_64", &mounted(vec![s390x])),
            Ok(())
        );
    }

    #[test]
    fn natively_means_the_machines_own_architecture() {
        assert!(runs_natively(&p("linux/amd64"), "x86_64"));
        assert!(runs_natively(&p("linux/386"), "x86_64"));
        assert!(!runs_natively(&p("linux/arm64"), "x86_64"));
        assert!(runs_natively(&p("linux/arm64/v8"), "aarch64"));
        assert!(!runs_natively(&p("linux/amd64"), "aarch64"));
    }

    #[test]
    fn only_a_daemon_on_this_machine_is_checked() {
        assert!(daemon_is_local(None));
        assert!(daemon_is_local(Some("")));
        assert!(daemon_is_local(Some("unix:///var/run/docker.sock")));
        assert!(!daemon_is_local(Some("tcp://10.0.0.5:2375")));
        assert!(!daemon_is_local(Some("ssh://builder")));
    }

    #[test]
    fn the_proc_directory_reads_into_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Binfmt::read(dir.path()).mounted);
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        std::fs::write(dir.path().join("qemu-aarch64"), DEBIAN_AARCH64).unwrap();
        let binfmt = Binfmt::read(dir.path());
        assert!(binfmt.mounted && binfmt.enabled);
        assert_eq!(binfmt.handlers, vec![aarch64(DEBIAN_AARCH64)]);
    }
}
