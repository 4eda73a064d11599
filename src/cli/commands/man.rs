//! `maestro man`: one complete manual page (roff). clap_mangen renders the title, synopsis,
//! description and global options; every command follows in a COMMANDS section with its own
//! options (there are no maestro-COMMAND(1) pages to point at), then what clap cannot know:
//! ENVIRONMENT, FILES, EXIT STATUS.

use clap::{Arg, Command};

/// The page, in roff.
pub(super) fn render(cmd: Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd;
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    out.extend_from_slice(b".SH OPTIONS\n");
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        option(&mut out, arg);
    }
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        command(&mut out, sub);
    }
    out.extend_from_slice(b".SH EXAMPLES\n.nf\n");
    let examples = super::super::args::AFTER_HELP
        .lines()
        .skip_while(|line| !line.starts_with("  maestro"))
        .take_while(|line| line.starts_with("  maestro"));
    for line in examples {
        out.extend_from_slice(format!("{}\n", escape(line.trim_start())).as_bytes());
    }
    out.extend_from_slice(b".fi\n");
    out.extend_from_slice(TAIL.as_bytes());
    Ok(out)
}

fn command(out: &mut Vec<u8>, sub: &Command) {
    let about = sub
        .get_long_about()
        .or(sub.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    let positionals: Vec<String> = sub
        .get_positionals()
        .map(|p| {
            let name = p
                .get_value_names()
                .and_then(|n| n.first())
                .map_or_else(|| p.get_id().to_string(), ToString::to_string);
            let many = p.get_num_args().is_some_and(|n| n.max_values() > 1);
            match (p.is_required_set(), many, p.is_last_set()) {
                (_, _, true) => format!("[-- {name}...]"),
                (true, false, _) => name,
                (true, true, _) => format!("{name}..."),
                (false, false, _) => format!("[{name}]"),
                (false, true, _) => format!("[{name}...]"),
            }
        })
        .collect();
    out.extend_from_slice(
        format!(
            ".SS \"{} {}\"\n{}\n",
            sub.get_name(),
            escape(&positionals.join(" ")),
            escape(&about)
        )
        .as_bytes(),
    );
    command_options(out, sub, false);
    // A command's own commands (`lock status`, `lock acquire -m`, `lock release --force`).
    for action in sub
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let about = action
            .get_long_about()
            .or(action.get_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        out.extend_from_slice(
            format!(
                ".SS \"{} {}\"\n{}\n",
                sub.get_name(),
                action.get_name(),
                escape(&about)
            )
            .as_bytes(),
        );
        command_options(out, action, true);
    }
}

/// The options of a command that are not already listed: `maestro`'s own (under OPTIONS),
/// and for a command's own command (`lock acquire`) those its parent passes down.
fn command_options(out: &mut Vec<u8>, sub: &Command, inherited: bool) {
    for arg in sub.get_arguments().filter(|a| {
        let listed = a.is_global_set() && (inherited || TOP_OPTIONS.contains(&a.get_id().as_str()));
        !a.is_positional() && !a.is_hide_set() && !listed
    }) {
        option(out, arg);
    }
}

/// `maestro`'s own options, listed once under OPTIONS.
const TOP_OPTIONS: &[&str] = &[
    "file", "output", "plain", "json", "verbose", "help", "version",
];

fn option(out: &mut Vec<u8>, arg: &Arg) {
    if arg.get_id() == "help" || arg.get_id() == "version" {
        return;
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("\\-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("\\-\\-{}", long.replace('-', "\\-")));
    }
    if names.is_empty() {
        return;
    }
    let value = if arg.get_action().takes_values() {
        arg.get_value_names()
            .and_then(|n| n.first())
            .map(|n| format!(" {n}"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    out.extend_from_slice(
        format!(
            ".TP\n\\fB{}\\fR{}\n{}\n",
            names.join(", "),
            value,
            escape(&help)
        )
        .as_bytes(),
    );
}

/// Text for roff: a backslash and a leading dot or quote would be read as markup.
fn escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with(['.', '\'']) {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const TAIL: &str = r#".SH ENVIRONMENT
.TP
\fBMAESTRO_FILE\fR
The environment file, when \-f is not given.
.TP
\fBMAESTRO_SSH_PASSPHRASE\fR
The passphrase of encrypted SSH keys; without it, it is asked on the terminal (never in a
non\-interactive run). Masked in all output.
.TP
\fBMAESTRO_SSH_CONFIG\fR
The ssh_config file to read instead of ~/.ssh/config.
.TP
\fBMAESTRO_PERSIST\fR
As \-\-persist: keep SSH sessions between commands for this long (see \fBpersist\fR).
.TP
\fBMAESTRO_RUNTIME_DIR\fR
Where the background maestro of \-\-persist listens (a 0700 directory of yours; default
$XDG_RUNTIME_DIR/maestro, else maestro\-$UID in the temporary directory).
.TP
\fBMAESTRO_SECRET_PATTERNS\fR
Comma\-separated globs of variable names whose values are masked in output; replaces the
default *PASSWORD*, *SECRET*, *TOKEN*, *KEY*. The file's secrets: {patterns: [...]} adds to it.
.TP
\fBMAESTRO_LOCK_HOLDER\fR
Who holds the deploy lock, instead of user@host of this machine: shown to whoever finds the
lock held (lock status, a refused command). Two operators on one machine set it apart.
.TP
\fBMAESTRO_LOG\fR
The diagnostic log's filter, instead of \-v: a level (debug, trace) or target=level pairs
(maestro::transport=trace, russh=debug). Written on stderr, secrets masked.
.TP
\fBSSH_AUTH_SOCK\fR
The SSH agent, tried before key files.
.TP
\fBDOCKER_CONFIG\fR
Where registry credentials are looked up when the file gives none (default ~/.docker).
.TP
\fBNO_COLOR\fR, \fBCLICOLOR_FORCE\fR
No colours; colours even when not on a terminal.
.TP
\fBXDG_CACHE_HOME\fR
Where the Docker API version agreed with each ship is remembered (default ~/.cache/maestro).
.TP
\fBUSER\fR, \fBLOGNAME\fR, \fBHOME\fR
The SSH user when none is given; where ~ and ~/.ssh are.
.PP
Templates read the process environment as \fBenv\fR (env.NAME, env.get('NAME', 'default')).
.SH FILES
.TP
\fBmaestro.yaml\fR, \fBmaestro.yml\fR
The environment file read from the current directory when neither \-f nor MAESTRO_FILE names one.
.TP
\fB~/.ssh/config\fR, \fB~/.ssh/known_hosts\fR, \fB~/.ssh/id_ed25519\fR, \fB~/.ssh/id_ecdsa\fR, \fB~/.ssh/id_rsa\fR
As OpenSSH reads them: hosts, jump hosts, identities; host keys (with @cert\-authority and @revoked).
.TP
\fB~/.docker/config.json\fR
Registry credentials.
.TP
\fB~/.cache/maestro/\fR
The API version agreed with each ship.
.SH EXIT STATUS
.TP
\fB0\fR
Done: everything asked for succeeded.
.TP
\fB1\fR
Some instance or ship failed; the summary says which.
.TP
\fB2\fR
Bad input: the file, the names or the options; nothing was contacted or changed.
.TP
\fB130\fR
Interrupted (Ctrl\-C); what was under way was stopped or left as the summary says.
.SH SEE ALSO
\fBssh\fR(1), \fBssh_config\fR(5), \fBsshd_config\fR(5), \fBdocker\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn one_page_has_every_command_and_the_sections_clap_cannot_know() {
        let page =
            String::from_utf8(render(crate::cli::Cli::command()).expect("renders")).expect("UTF-8");
        for section in [
            ".SH OPTIONS",
            ".SH COMMANDS",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXIT STATUS",
        ] {
            assert!(page.contains(section), "{section}");
        }
        for command in [
            "start", "status", "restart", "ships", "dump", "deptree", "logs",
        ] {
            assert!(page.contains(&format!(".SS \"{command} ")), "{command}");
        }
        assert!(
            page.contains(".SS \"ssh SHIP [\\-\\- CMD...]\""),
            "one SHIP, CMD after --"
        );
        assert!(page.contains(".SS \"exec [INSTANCE...] [\\-\\- CMD...]\""));
        assert!(page.contains("MAESTRO_SSH_PASSPHRASE"));
        assert!(page.contains("\\-\\-step\\-delay"), "restart's own options");
        assert!(
            !page.contains("maestro\\-status(1)"),
            "no pages that do not exist"
        );
        assert!(!page.contains(".SH EXTRA"));
        assert!(
            page.contains("maestro \\-f env.yaml start \\-d web"),
            "examples"
        );
    }
}
