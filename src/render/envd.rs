//! Templates → `build.envd` (envd's Starlark), from an [`EnvdPlan`]. The template is
//! `templates/build.envd.j2`; this module only quotes the plan's values for it.
//!
//! `Flavor::FlytekitCompat` quotes as flytekit's envd plugin does: `"{value}"` with the value
//! as is (a `"` in it ends the string early), the env dict as Python's `repr()` — except a
//! value holding a line break or another character the spec refuses (`spec::control`), which
//! is written as a proper literal so that it cannot start a statement. The default
//! flavor writes proper Starlark string literals, and escapes `'` in `commands` for the
//! `bash -c '<commands>'` envd wraps them in (envd v1 `compileRun`, parsed by BuildKit's
//! shell lexer: `'\''` is a quote inside a single-quoted word).

use crate::plan::{ENVD_REQUIREMENTS, EnvdPlan, Flavor};
use crate::spec::PyValue;
use minijinja::{Environment, context};

const BUILD_ENVD_TEMPLATE: &str = include_str!("../../templates/build.envd.j2");

/// The `build.envd` for `plan`.
pub fn build_envd(plan: &EnvdPlan) -> String {
    let compat = plan.flavor == Flavor::FlytekitCompat;
    let quote = |s: &str| {
        // flytekit writes `"{value}"` raw: a line break in a value would end the string
        // and start a statement. The spec refuses such values (`spec::control`); one that
        // bypassed it is written as a proper literal, every other one as flytekit does.
        if compat && crate::spec::control::first_refused(s).is_none() {
            format!("\"{s}\"")
        } else {
            starlark_string(s)
        }
    };
    let list = |items: &[String]| {
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let commands: Vec<String> = if compat {
        plan.commands.clone()
    } else {
        plan.commands
            .iter()
            .map(|c| c.replace('\'', r"'\''"))
            .collect()
    };
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // The template is part of the binary and tested: failing to parse it is a bug.
    env.add_template("build.envd", BUILD_ENVD_TEMPLATE)
        .expect("templates/build.envd.j2 parses");
    env.get_template("build.envd")
        .and_then(|t| {
            t.render(context! {
                base_image => quote(&plan.base_image),
                commands => list(&commands),
                python_packages => list(&plan.python_packages),
                apt_packages => list(&plan.apt_packages),
                env => crate::py::repr::repr(&PyValue::Dict(plan.env.clone())),
                pip_index => quote(&plan.pip_index),
                pip_extra_index_url => plan.pip_extra_index_url.as_deref().map(quote),
                conda => plan.conda.as_ref().map(|c| context! {
                    packages => list(&c.packages),
                    channels => list(&c.channels),
                }),
                requirements => plan.requirements.then(|| quote(ENVD_REQUIREMENTS)),
                python_version => plan.python_version.as_deref().map(quote),
                cuda => plan.cuda.as_ref().map(|c| context! { version => quote(&c.version), cudnn => quote(&c.cudnn) }),
                copies => plan.copies.iter().map(|c| context! { source => quote(&c.source), target => quote(&c.target) }).collect::<Vec<_>>(),
                entrypoint => plan.entrypoint.as_ref().map(|e| format!("[{}]", list(e))),
            })
        })
        .expect("templates/build.envd.j2 renders")
}

/// `s` as a double-quoted Starlark string literal (Go's starlark: `\\`, `\"`, `\n`, `\r`,
/// `\t` and `\xNN` for other ASCII control characters, `\uNNNN` for the other characters
/// [`crate::spec::control::is_refused`] names; other characters as UTF-8).
pub fn starlark_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            // NEL, the line separators, bidi overrides: not line breaks to Starlark, but
            // refused in a spec (`spec::control`); escaped so the file shows what runs.
            c if crate::spec::control::is_refused(c) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn starlark_strings_escape_quotes_and_newlines() {
        assert_eq!(super::starlark_string("say \"hi\"\n"), r#""say \"hi\"\n""#);
    }
}
