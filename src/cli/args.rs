//! The command line, in MaestroNG's shape: `maestro [-f FILE] COMMAND [THING...]`.
//!
//! Every command parses its options here even when its work lives elsewhere, so that `--help`
//! is complete and scripts written against MaestroNG keep parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use super::complete;

pub(super) const AFTER_HELP: &str = "\
Examples:
  maestro -f env.yaml validate          check a file without contacting any ship
  maestro -f env.yaml deptree -r        show what starts before what
  maestro -f env.yaml ships             connect to every ship and report the route
  maestro -f env.yaml start             bring the whole environment up
  maestro -f env.yaml start -d web      start web and everything it needs
  maestro -f env.yaml status -F         status with images and a port check
  maestro -f env.yaml restart -s web    restart every instance of the service web
  maestro -f env.yaml stop -a           stop everything, dependents first
  maestro -f env.yaml rollback web      web back to its previous deployment (see history)

The options above (-f, -o, --plain, --json, -v, --persist) work with every command, typed before or
after its name; a command's own options may come before its name too (maestro -c 4 start).
THINGs are service or instance names. stop, kill and restart take a service name (for all
its instances) only with -s/--expand-services or -a; they and rollback need names or -a.
Exit codes: 0 done, 1 some instance failed, 2 bad input, 130 interrupted.";

const FORWARD_HELP: &str = "\
Examples:
  maestro forward db-1 sql              a free local port to db-1's port `sql`
  maestro forward db-1 sql:15432        127.0.0.1:15432 to db-1's port `sql`
  maestro forward web-1 8080:8080       web-1's exposed port 8080 (its published port)
  maestro forward inner1 5432           port 5432 of ship inner1 itself (its 127.0.0.1)

Exit codes: 0 ended with Ctrl-C, 1 the ship or the instance could not be reached, 2 bad
input (unknown name or port, local port in use), 130 Ctrl-C while connecting.";

/// `status` and `history` look at every service, `omit`-ted ones too (as MaestroNG's status).
const ALL_SERVICES_INCLUDING_OMITTED: &str =
    "Service or instance names; none means every service, `omit`-ted ones included.";

const LOCK_HELP: &str = "\
Examples:
  maestro lock status                   who holds the lock on each ship, since when
  maestro lock acquire -m \"db upgrade\"  hold it across commands (a maintenance window)
  maestro lock release                  end your maintenance window
  maestro lock release --force          clear a lock whose holder died (see its pid)

Exit codes: 0 done, 1 a lock is held by someone else or a ship could not be reached, 2 bad
input, 130 interrupted (the locks taken were released).";

const ROLLBACK_HELP: &str = "\
Examples:
  maestro history web                   what web's instances ran, and what a rollback returns to
  maestro rollback web                  every instance of web back to its previous deployment
  maestro rollback -a                   everything that was redeployed, in dependency order

Exit codes: 0 done, 1 some instance failed (its checks, or the ship), 2 bad input, 130
interrupted.";

const PERSIST_HELP: &str = "\
Examples:
  maestro --persist 10m status          log in once, keep the sessions 10 minutes
  MAESTRO_PERSIST=10m maestro logs web  the same, for every command of this shell
  maestro persist status                the sessions kept: ship, route, age, idle
  maestro persist stop                  close them all now

Whoever can reach the daemon's socket can reach your ships' Docker daemons, as with
OpenSSH's ControlPath: it lives in a 0700 directory of yours (MAESTRO_RUNTIME_DIR, else
$XDG_RUNTIME_DIR/maestro, else maestro-$UID in the temporary directory) and answers only
your uid.";

/// What `maestro persist` does.
#[derive(Debug, Clone, Subcommand)]
pub enum PersistAction {
    /// List the sessions the background maestro holds: ships, route, age, idle time.
    Status,
    /// End the background maestro and close its sessions.
    Stop,
    /// Run the background maestro itself (started by the commands that need it).
    #[command(hide = true)]
    Serve,
}

/// What `maestro lock` does.
#[derive(Debug, Clone, Subcommand)]
pub enum LockAction {
    /// Show the lock on every ship: free, or its holder, command, age, message, and whether
    /// the holder's process is alive (when it provably ran on this machine).
    Status,
    /// Take the lock on every ship of the environment, all or nothing, until `lock release`:
    /// your own commands run under it, everyone else's fail naming you and the message.
    Acquire {
        /// Why: shown to whoever finds the lock held.
        #[arg(short = 'm', long = "message", value_name = "MESSAGE")]
        message: String,
    },
    /// Release your maintenance lock on every ship.
    Release {
        /// Release the lock whoever holds it: a holder that died (kill -9, a lost laptop)
        /// leaves it behind. Check `lock status` first: a live holder loses its protection.
        #[arg(long)]
        force: bool,
    },
}

/// Deploy and control multi-host Docker environments over SSH, with no agent on the hosts.
#[derive(Debug, Parser)]
#[command(name = "maestro", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The environment file; `-` reads it from standard input. Default: `maestro.yaml`, else
    /// `maestro.yml`, in the current directory.
    #[arg(short = 'f', long = "file", env = "MAESTRO_FILE")]
    pub file: Option<PathBuf>,

    /// How progress is shown: live bars on a terminal, plain timestamped lines otherwise;
    /// `-o json` as kubectl and docker hands type it.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Auto,
          overrides_with_all = ["plain", "json"])]
    pub output: Output,

    /// Plain timestamped lines, one per event (same as `--output plain`).
    #[arg(long, overrides_with_all = ["json", "output"])]
    pub plain: bool,

    /// Machine-readable output: JSON lines for events, a JSON document for reports.
    #[arg(long, overrides_with_all = ["plain", "output"])]
    pub json: bool,

    /// Diagnostics on stderr: each SSH step (TCP connect, key exchange, host key, every login
    /// method tried and its answer, channels) and each Docker API request with its status
    /// and time. `-vv` adds the SSH library's own messages. MAESTRO_LOG (`debug`,
    /// `maestro::transport=trace`) sets the filter instead. Secrets are masked.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Keep each SSH ship's session open between commands, in a background maestro, for
    /// DURATION after its last use (`10m`, `1h`; `0` turns the file's `ssh.persist` off).
    /// Later commands take channels from it instead of logging in: see `maestro persist`.
    #[arg(
        long,
        env = "MAESTRO_PERSIST",
        value_name = "DURATION",
        value_parser = duration
    )]
    pub persist: Option<std::time::Duration>,

    #[command(subcommand)]
    pub command: Command,
}

/// Where rendered output goes; `Auto` picks progress bars on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Auto,
    Progress,
    Plain,
    Json,
}

impl Cli {
    /// `--accept-new-host-keys` of the commands that connect to ships (false for the others).
    pub fn accept_new_host_keys(&self) -> bool {
        match &self.command {
            Command::Status { things, .. }
            | Command::Start { things, .. }
            | Command::Stop { things, .. }
            | Command::Kill { things, .. }
            | Command::Restart { things, .. }
            | Command::Pull { things }
            | Command::Push { things }
            | Command::Clean { things, .. }
            | Command::Rollback { things }
            | Command::History { things }
            | Command::Logs { things, .. }
            | Command::Plan { things }
            | Command::Up { things, .. }
            | Command::Down { things, .. } => things.accept_new_host_keys,
            Command::Ships {
                accept_new_host_keys,
                ..
            }
            | Command::Forward {
                accept_new_host_keys,
                ..
            }
            | Command::Lock {
                accept_new_host_keys,
                ..
            } => *accept_new_host_keys,
            Command::Exec(args) => args.accept_new_host_keys,
            Command::Ssh(args) => args.accept_new_host_keys,
            Command::Deptree { .. }
            | Command::Persist { .. }
            | Command::Dump { .. }
            | Command::Validate
            | Command::Completions { .. }
            | Command::Man
            | Command::Version => false,
        }
    }

    /// `--adopt` of the commands that change ships (false for the others).
    pub fn adopt(&self) -> bool {
        match &self.command {
            Command::Start { ownership, .. }
            | Command::Up { ownership, .. }
            | Command::Stop { ownership, .. }
            | Command::Down { ownership, .. }
            | Command::Kill { ownership, .. }
            | Command::Restart { ownership, .. }
            | Command::Clean { ownership, .. } => ownership.adopt,
            _ => false,
        }
    }

    /// The output mode after the `--plain`/`--json` shortcuts are applied.
    pub fn output_mode(&self) -> Output {
        if self.json {
            Output::Json
        } else if self.plain {
            Output::Plain
        } else {
            self.output
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the state of each instance: one list call per ship.
    #[command(
        visible_alias = "ps",
        mut_arg("names", |a| a.help(ALL_SERVICES_INCLUDING_OMITTED)),
        mut_arg("all", |a| a.hide(true)),
        mut_arg("expand_services", |a| a.hide(true)),
        mut_arg("concurrency", |a| a.hide(true)),
    )]
    Status {
        #[command(flatten)]
        things: Things,
        /// Also show image, image id and a check of each named port through the tunnel.
        #[arg(short = 'F', long)]
        full: bool,
        /// Show each instance's ship address.
        #[arg(short = 'H', long)]
        show_hosts: bool,
    },
    /// Start instances in dependency order, each once what it requires is up and checked.
    Start {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
        /// Pull images even when the ship already has them.
        #[arg(short = 'r', long)]
        refresh_images: bool,
        /// Start an existing stopped container as it is instead of re-creating it.
        #[arg(long)]
        reuse: bool,
    },
    /// Stop instances, dependents first.
    Stop {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
    },
    /// Kill instances, dependents first.
    Kill {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
    },
    /// Stop the selected instances in reverse order, then start them in order.
    Restart {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
        /// Restart one instance at a time, waiting this long between instances (seconds, or
        /// a duration such as 500ms, 2s, 1m).
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        step_delay: Option<std::time::Duration>,
        /// How long to wait between stopping and starting an instance (seconds, or a
        /// duration such as 500ms, 2s, 1m).
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        stop_start_delay: Option<std::time::Duration>,
        /// Only restart instances whose image or container spec changed.
        #[arg(long)]
        only_if_changed: bool,
        /// Pull images even when the ship already has them.
        #[arg(short = 'r', long)]
        refresh_images: bool,
    },
    /// Pull the images of the selected instances on their ships.
    Pull {
        #[command(flatten)]
        things: Things,
    },
    /// Put the images that come from this machine (`image_source: local` or an archive) on
    /// the ships of the selected instances, through each ship's SSH session: only the
    /// layers a ship lacks cross. Nothing is started.
    Push {
        #[command(flatten)]
        things: Things,
    },
    /// Remove the stopped containers of the selected instances.
    Clean {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
    },
    /// Return instances to their deployment before the last one, in dependency order, with
    /// the same checks as `start`.
    ///
    /// `start` keeps the container it replaces, stopped, on the ship (NAME.replaced until the
    /// new one has passed its checks, then NAME.previous); rollback stops the current
    /// container and starts the kept one again: the same image id and config, whatever the
    /// file or the registry say now. The current one is kept in turn as NAME.previous (a
    /// second rollback undoes the first), unless it never passed its checks. The file is not
    /// changed: the next `start` deploys what it says again. An instance with nothing kept
    /// is left as it is. `history` shows what a rollback returns to.
    #[command(after_help = ROLLBACK_HELP)]
    Rollback {
        #[command(flatten)]
        things: Things,
    },
    /// List the deployments of each instance: when, by whom, the image and the spec hash,
    /// and which one a rollback returns to.
    ///
    /// Read from the labels of the containers on the ships (each records its deployment and
    /// the ones before it), so every operator sees the same history.
    #[command(
        mut_arg("names", |a| a.help(ALL_SERVICES_INCLUDING_OMITTED)),
        mut_arg("all", |a| a.hide(true)),
        mut_arg("expand_services", |a| a.hide(true)),
        mut_arg("concurrency", |a| a.hide(true)),
    )]
    History {
        #[command(flatten)]
        things: Things,
    },
    /// Show the logs of one or more instances.
    #[command(
        mut_arg("all", |a| a.hide(true)),
        mut_arg("expand_services", |a| a.hide(true)),
        mut_arg("concurrency", |a| a.hide(true)),
    )]
    Logs {
        #[command(flatten)]
        things: Things,
        /// Keep following; survives a restart of the container.
        #[arg(short = 'F', long)]
        follow: bool,
        /// Show only the last N lines of each instance (`--tail N` as in docker logs).
        #[arg(short = 'n', long, visible_alias = "tail", value_name = "N")]
        lines: Option<usize>,
        /// Only lines written since TIME: a duration ago (`10m`, `90s`, `2h`), a UTC time
        /// (`2026-11-25T11:38:22Z`, or with an offset such as `+02:00`), or Unix seconds.
        #[arg(long, value_name = "TIME", value_parser = log_time)]
        since: Option<std::time::SystemTime>,
        /// Only lines written until TIME (same forms as --since). Not with --follow, which
        /// would wait for lines past it.
        #[arg(long, value_name = "TIME", value_parser = log_time, conflicts_with = "follow")]
        until: Option<std::time::SystemTime>,
        /// Start each line with the time the daemon wrote it (RFC 3339, UTC, nanoseconds).
        #[arg(short = 't', long)]
        timestamps: bool,
    },
    /// Dry run: what `start` would do for each instance, and why.
    #[command(
        mut_arg("all", |a| a.hide(true)),
        mut_arg("expand_services", |a| a.hide(true)),
        mut_arg("concurrency", |a| a.hide(true)),
    )]
    Plan {
        #[command(flatten)]
        things: Things,
    },
    /// Converge: start what is missing, re-create what changed (alias of `start`).
    Up {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
        /// Pull images even when the ship already has them.
        #[arg(short = 'r', long)]
        refresh_images: bool,
        /// Start an existing stopped container as it is instead of re-creating it.
        #[arg(long)]
        reuse: bool,
    },
    /// Stop everything selected, dependents first (alias of `stop -a`). Unlike `docker compose
    /// down`, containers are kept: `clean` removes them.
    Down {
        #[command(flatten)]
        things: Things,
        #[command(flatten)]
        ownership: Ownership,
    },
    /// Print the dependency tree of the selected services.
    Deptree {
        /// Service or instance names; none means every service that is not `omit`-ted.
        #[arg(value_name = "THING", add = ArgValueCompleter::new(complete::things))]
        names: Vec<String>,
        /// Expand dependencies recursively.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Print the resolved environment, offline: a schema 2 file with every default written
    /// out (it loads again and gives the same plan), or with `--containers` what `start` would
    /// send to Docker for each container, in start order, generated variables included.
    Dump {
        /// Each container's create request (JSON), in start order, instead of the file.
        #[arg(long)]
        containers: bool,
        /// Print secret values (passwords, variables matching the secret patterns) instead of
        /// `***`.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Check the environment file without contacting any ship.
    Validate,
    /// Connect to every ship at once and report route, authentication, host key and engine.
    Ships {
        /// Only ships whose name matches these glob patterns.
        #[arg(value_name = "SHIP", add = ArgValueCompleter::new(complete::ship_names))]
        ships: Vec<String>,
        /// Record the host keys of ships seen for the first time instead of refusing them.
        /// A changed host key is always refused.
        #[arg(long)]
        accept_new_host_keys: bool,
    },
    /// Show, take or release the environment's deploy lock on its ships.
    ///
    /// Every command that changes ships (start, up, stop, down, kill, restart, rollback,
    /// clean, pull) takes the lock on the ships it touches, all at once, and releases it at
    /// the end; a command that finds it held by someone else fails at once, naming the
    /// holder, and changes nothing. `lock acquire` holds it across commands (a maintenance
    /// window): the holder's own commands run under it, nobody else's do. The holder is
    /// `user@host` of this machine, or MAESTRO_LOCK_HOLDER when set. A command's lock whose
    /// process provably died on this machine (same boot, same pid namespace) is taken over
    /// by the next command, with a warning; any other needs `release --force`, which removes
    /// only the lock it read. The lock is a container that is never started,
    /// maestro-lock.ENV.SHIP, in each ship's own Docker daemon: every ship maestro can
    /// deploy to can be locked, and only who can use the daemon can touch it.
    /// The SSH sessions kept between commands (`--persist`, `ssh: {persist: 10m}`).
    ///
    /// With persist on, the first command that connects starts a background maestro that
    /// holds the ships' SSH sessions, jump hosts included; later commands ask it for
    /// channels over a unix socket instead of logging in again. It exits after the idle
    /// time. `maestro ssh` always logs in on its own.
    #[command(after_help = PERSIST_HELP)]
    Persist {
        #[command(subcommand)]
        action: PersistAction,
    },
    #[command(after_help = LOCK_HELP)]
    Lock {
        #[command(subcommand)]
        action: LockAction,
        /// Record the host keys of ships seen for the first time instead of refusing them.
        /// A changed host key is always refused.
        #[arg(long, global = true)]
        accept_new_host_keys: bool,
    },
    /// Run a command in an instance's container (a shell when none is given).
    ///
    /// Through the ship's SSH session, with Docker's exec API. With a terminal on both ends
    /// the command gets one (raw keys, the window's size, restored at the end); otherwise
    /// standard input, output and error are streamed. Several instances (a service name, -C,
    /// -S) each run the command, without a terminal, their lines prefixed as `logs` does.
    /// The exit code is the command's (the worst one of several); 1 when it could not run.
    #[command(after_help = EXEC_HELP)]
    Exec(ExecArgs),
    /// Open a shell on a ship, or run a command there.
    ///
    /// Through the ship's whole jump chain, with the same keys and host-key rules as every
    /// other command; its Docker daemon is not needed. A login shell gets a terminal when
    /// both ends are terminals, a command only with -t. The exit code is the command's.
    #[command(after_help = SSH_HELP)]
    Ssh(SshArgs),
    /// Forward a local TCP port to an instance's port, or to a ship's own port, through the
    /// ship's SSH session (jump hosts included): e.g. a local SQL client against a database
    /// behind a bastion.
    ///
    /// Prints the local address it listens on, serves any number of connections at once (one
    /// SSH channel each) and runs until Ctrl-C, which ends it with exit code 0.
    #[command(after_help = FORWARD_HELP)]
    Forward {
        /// An instance, to reach one of its ports (the port published on its ship, where the
        /// lifecycle checks reach it); or a ship, to reach a port of the ship itself
        /// (127.0.0.1 as the ship sees it).
        #[arg(value_name = "INSTANCE|SHIP", add = ArgValueCompleter::new(complete::instances_and_ships))]
        target: String,
        /// The instance's named port (`sql`) or a port number, then optionally `:LOCAL_PORT`.
        /// A number the instance exposes is its published port; any other number is that
        /// port on the ship. Without LOCAL_PORT (or with 0) a free local port is picked and
        /// printed.
        #[arg(value_name = "PORT[:LOCAL_PORT]", value_parser = crate::orchestrate::session::forward::PortSpec::parse)]
        port: crate::orchestrate::session::forward::PortSpec,
        /// The local address to listen on. Anything but a loopback address lets other
        /// machines use your SSH session.
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Record the host keys of ships seen for the first time instead of refusing them.
        /// A changed host key is always refused.
        #[arg(long)]
        accept_new_host_keys: bool,
    },
    /// Print the shell completion script: it completes commands and options, and the
    /// services, instances and ships of the environment file on the command line (`-f`, else
    /// MAESTRO_FILE, else maestro.yaml or maestro.yml here), asking maestro at each Tab.
    /// bash: `source <(maestro completions bash)`; zsh: `source <(maestro completions zsh)`;
    /// fish: `maestro completions fish | source`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output.
    Man,
    /// Print maestro's version (as `--version` does).
    Version,
}

/// What a command acts on, and how dependencies widen or narrow that set. `-a`, `-s` and `-c`
/// mean something only to the commands that change ships: the read-only ones (status, history,
/// logs, plan) accept them, as MaestroNG's scripts pass them, and do not list them.
#[derive(Debug, Clone, Default, Args)]
pub struct Things {
    /// Service or instance names; none means every service that is not `omit`-ted.
    #[arg(value_name = "THING", add = ArgValueCompleter::new(complete::things))]
    pub names: Vec<String>,

    /// How many operations may run at once across all ships; 0 means no limit.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,

    /// Include dependencies (start, pull, status, clean) or dependents (stop, kill, restart).
    #[arg(short = 'd', long, conflicts_with = "ignore_dependencies")]
    pub with_dependencies: bool,

    /// Act only on the named things, ignoring what they depend on.
    #[arg(short = 'i', long)]
    pub ignore_dependencies: bool,

    /// Only instances whose name matches one of these glob patterns.
    #[arg(short = 'C', long = "container-filter", value_name = "GLOB",
          add = ArgValueCompleter::new(complete::instance_names))]
    pub container_filter: Vec<String>,

    /// Only instances on ships whose name matches one of these glob patterns.
    #[arg(short = 'S', long = "ship-filter", value_name = "GLOB",
          add = ArgValueCompleter::new(complete::ship_names))]
    pub ship_filter: Vec<String>,

    /// Let service names stand for all their instances; stop, kill and restart refuse a
    /// service name without it.
    #[arg(short = 's', long)]
    pub expand_services: bool,

    /// No names means everything; stop, kill, restart and rollback need it when no names are
    /// given.
    /// Implies -s.
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Record the host keys of ships seen for the first time instead of refusing them.
    /// A changed host key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// Whose containers a command that changes ships may touch.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Ownership {
    /// Take over a container that has an instance's name but not this environment's labels
    /// (one MaestroNG or a person created): it is stopped, removed or re-created as if maestro
    /// had made it. Without it, such a container is refused and left as it is.
    #[arg(long)]
    pub adopt: bool,
}

const EXEC_HELP: &str = "\
Examples:
  maestro exec web-1                      a shell (/bin/sh) in web-1's container
  maestro exec web-1 -- ls -l /data       one command; its exit code is maestro's
  maestro exec -u root -w /tmp web-1 -- id
  echo select 1 | maestro exec -T db-1 -- psql    standard input passed through
  maestro exec web -- cat /etc/hostname   every instance of the service web";

const SSH_HELP: &str = "\
Examples:
  maestro ssh ship1                       a login shell on ship1 (through its bastion)
  maestro ssh ship1 -- df -h /            one command; its exit code is maestro's";

/// `exec`'s selection and how the command runs.
#[derive(Debug, Clone, Default, Args)]
pub struct ExecArgs {
    /// The instance (or service) to run in; several are allowed without a terminal.
    #[arg(value_name = "INSTANCE", add = ArgValueCompleter::new(complete::things))]
    pub names: Vec<String>,

    /// The command and its arguments, after `--`; default: /bin/sh.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// Keep standard input attached (always done; accepted for docker's `-it`).
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Give the command a terminal even when standard input or output is not one.
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,

    /// No terminal, even on one: plain streams, as in a script.
    #[arg(short = 'T', long)]
    pub no_tty: bool,

    /// The user (name or uid, optionally `:group`) to run as; default: the container's.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,

    /// The directory to run in, inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// An environment variable for the command (repeatable); `-e NAME` alone passes NAME's
    /// value from this machine's environment, as `docker exec -e NAME` does.
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = env_assignment)]
    pub env: Vec<String>,

    /// Only instances whose name matches one of these glob patterns.
    #[arg(short = 'C', long = "container-filter", value_name = "GLOB",
          add = ArgValueCompleter::new(complete::instance_names))]
    pub container_filter: Vec<String>,

    /// Only instances on ships whose name matches one of these glob patterns.
    #[arg(short = 'S', long = "ship-filter", value_name = "GLOB",
          add = ArgValueCompleter::new(complete::ship_names))]
    pub ship_filter: Vec<String>,

    /// Record the host keys of ships seen for the first time instead of refusing them.
    /// A changed host key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `ssh`'s ship and command.
#[derive(Debug, Clone, Default, Args)]
pub struct SshArgs {
    /// The ship, as the environment file names it.
    #[arg(value_name = "SHIP", add = ArgValueCompleter::new(complete::ship_names))]
    pub ship: String,

    /// A command to run instead of the login shell, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// Ask for a terminal even when standard input or output is not one.
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,

    /// No terminal, even on one.
    #[arg(short = 'T', long)]
    pub no_tty: bool,

    /// Record the host keys of ships seen for the first time instead of refusing them.
    /// A changed host key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// The arguments in the order clap reads them, whatever order they were typed in, as docker
/// and kubectl users type them: a command's options typed before its name (`maestro -c 4
/// start`, `maestro --accept-new-host-keys ships`) go after it, and `maestro`'s own options
/// typed after the command (`maestro status --json`, `start -f env.yaml`) go before it. They
/// are not clap `global` options, so that each command's `--help` lists only its own. Nothing
/// after `--` moves; an option that neither knows is left in place, for clap to refuse with its
/// own message.
pub fn options_after_command(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let Some(program) = args.first().cloned() else {
        return args;
    };
    // Whether `text` carries its own value (`--opt=value`, `-c4`).
    let inline = |text: &str| text.contains('=') || (!text.starts_with("--") && text.len() > 2);
    let name_of = |text: &str| text.split_once('=').map_or(text, |(n, _)| n).to_owned();
    let is_option = |text: &str| text.starts_with('-') && text != "-" && text != "--";

    // Before the command: `maestro`'s own stay, the command's are moved after its name.
    let mut front: Vec<std::ffi::OsString> = vec![program];
    let mut moved: Vec<std::ffi::OsString> = Vec::new();
    let mut i = 1;
    while let Some(text) = args.get(i).and_then(|a| a.to_str()) {
        if !is_option(text) {
            break;
        }
        let name = name_of(text);
        let (into, arg) = match find_option(&cli, &name) {
            Some(arg) => (&mut front, arg),
            None => {
                let command = args[i + 1..]
                    .iter()
                    .filter_map(|a| a.to_str())
                    .find_map(|a| cli.find_subcommand(a));
                match command.and_then(|c| find_option(c, &name)) {
                    Some(arg) => (&mut moved, arg),
                    None => break,
                }
            }
        };
        into.push(args[i].clone());
        if arg.get_action().takes_values() && !inline(text) && i + 1 < args.len() {
            i += 1;
            into.push(args[i].clone());
        }
        i += 1;
    }
    let Some(command_word) = args.get(i).cloned() else {
        return args;
    };
    let Some(command) = command_word.to_str().and_then(|w| cli.find_subcommand(w)) else {
        front.extend(moved);
        front.extend(args[i..].iter().cloned());
        return front;
    };
    // After the command: `maestro`'s own options go before it; the command's own (and their
    // values) and the names stay, in order.
    let mut rest: Vec<std::ffi::OsString> = vec![command_word.clone()];
    rest.extend(moved);
    let mut j = i + 1;
    while j < args.len() {
        let Some(text) = args[j].to_str() else {
            rest.push(args[j].clone());
            j += 1;
            continue;
        };
        if text == "--" {
            rest.extend(args[j..].iter().cloned());
            break;
        }
        if is_option(text) {
            let name = name_of(text);
            let own = find_option(command, &name);
            let top = find_option(&cli, &name);
            // `maestro`'s own option without the value it needs (`logs web -f`) stays, for
            // clap to refuse where it was typed (and `usage_hint` to explain).
            let missing_value = |arg: &clap::Arg| {
                arg.get_action().takes_values() && !inline(text) && j + 1 >= args.len()
            };
            let (into, arg) = match (own, top) {
                (Some(arg), _) => (&mut rest, Some(arg)),
                (None, Some(arg)) if !missing_value(arg) => (&mut front, Some(arg)),
                (None, _) => (&mut rest, None),
            };
            into.push(args[j].clone());
            if arg.is_some_and(|a| a.get_action().takes_values())
                && !inline(text)
                && j + 1 < args.len()
            {
                j += 1;
                into.push(args[j].clone());
            }
        } else {
            rest.push(args[j].clone());
        }
        j += 1;
    }
    front.extend(rest);
    front
}

/// The option `text` (`-c`, `--concurrency`, or `-c4`'s `-c`) of `command`.
fn find_option<'c>(command: &'c clap::Command, text: &str) -> Option<&'c clap::Arg> {
    command.get_arguments().find(|a| {
        if let Some(long) = text.strip_prefix("--") {
            a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long))
        } else {
            let short = text.strip_prefix('-').and_then(|s| s.chars().next());
            short.is_some() && a.get_short() == short
        }
    })
}

/// `-e NAME=value`: a name, then `=`.
fn env_assignment(text: &str) -> Result<String, String> {
    // `NAME` alone takes its value from this machine's environment (see commands::exec).
    let name = text.split_once('=').map_or(text, |(name, _)| name);
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("expected NAME=value or NAME, not `{text}`"));
    }
    Ok(text.to_string())
}

/// A `--step-delay`-style value: seconds, or a number with ms, s, m or h, as in the file.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text).ok_or_else(|| {
        format!("expected seconds or a duration such as 500ms, 2s, 1m, not `{text}`")
    })
}

/// A `logs --since/--until` time: a duration ago (with its unit: a bare number is a time, as
/// in docker), Unix seconds, or an RFC 3339 time with its zone.
fn log_time(text: &str) -> Result<std::time::SystemTime, String> {
    let now = std::time::SystemTime::now();
    let unix = text
        .split_once('.')
        .map_or((text, ""), |(whole, fraction)| (whole, fraction));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(unix.0) && (unix.1.is_empty() || digits(unix.1)) {
        if let Ok(seconds) = text.parse::<f64>() {
            return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds));
        }
    } else if let Some(ago) = crate::config::parse_duration(text) {
        return Ok(now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH));
    } else if let Some(time) = crate::clock::parse_rfc3339(text) {
        return Ok(time);
    }
    let zone = if text.len() == 19 && text.as_bytes().get(10) == Some(&b'T') {
        "; add its zone: `Z` for UTC, or an offset such as `+02:00`"
    } else {
        ""
    };
    Err(format!(
        "expected a duration ago (10m, 90s, 2h), a time such as 2026-11-25T11:38:22Z, or Unix \
         seconds, not `{text}`{zone}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// As `main` parses: the words reordered first (see [`options_after_command`]).
    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(options_after_command(
            words.iter().map(|w| (*w).into()).collect(),
        ))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn maestrong_style_arguments_parse() {
        let cli = Cli::try_parse_from([
            "maestro", "-f", "env.yaml", "start", "-r", "-d", "-c", "4", "-C", "web*", "web",
        ])
        .expect("parses");
        assert_eq!(cli.file, Some(PathBuf::from("env.yaml")));
        match cli.command {
            Command::Start {
                things,
                refresh_images,
                reuse,
                ownership,
            } => {
                assert!(refresh_images && !reuse && !ownership.adopt);
                assert!(things.with_dependencies);
                assert_eq!(things.concurrency, 4);
                assert_eq!(things.container_filter, vec!["web*"]);
                assert_eq!(things.names, vec!["web"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn json_and_plain_shortcuts_pick_the_output() {
        let cli = parse(&["maestro", "status", "--json"]).expect("parses");
        assert!(cli.json);
        // A command's options typed before its name, as docker and kubectl users do.
        let reordered = |words: &[&str]| {
            let args = options_after_command(words.iter().map(|w| (*w).into()).collect());
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            reordered(&["maestro", "-c", "4", "start"]),
            "maestro start -c 4"
        );
        assert_eq!(
            reordered(&["maestro", "-c4", "-f", "x.yaml", "start", "web"]),
            "maestro -f x.yaml start -c4 web"
        );
        assert_eq!(
            reordered(&["maestro", "--accept-new-host-keys", "ships"]),
            "maestro ships --accept-new-host-keys"
        );
        assert_eq!(
            reordered(&["maestro", "--json", "status"]),
            "maestro --json status"
        );
        assert_eq!(
            reordered(&["maestro", "--bogus", "start"]),
            "maestro --bogus start"
        );
        let cli = Cli::try_parse_from(options_after_command(
            ["maestro", "-c", "4", "-d", "start", "web"]
                .map(Into::into)
                .to_vec(),
        ))
        .expect("parses");
        match cli.command {
            Command::Start { things, .. } => {
                assert_eq!(things.concurrency, 4);
                assert!(things.with_dependencies);
                assert_eq!(things.names, ["web"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["maestro", "status", "--json"]).expect("parses");
        assert_eq!(cli.output_mode(), Output::Json);
        let cli = Cli::try_parse_from(["maestro", "--plain", "start"]).expect("parses");
        assert_eq!(cli.output_mode(), Output::Plain);
    }

    #[test]
    fn with_and_ignore_dependencies_exclude_each_other() {
        let err = Cli::try_parse_from(["maestro", "start", "-d", "-i"]).expect_err("refused");
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn delays_take_durations_as_the_file_writes_them() {
        let delay = |args: &[&str]| match Cli::try_parse_from(args) {
            Ok(Cli {
                command: Command::Restart { step_delay, .. },
                ..
            }) => Ok(step_delay),
            Ok(_) => Err("not restart".to_owned()),
            Err(err) => Err(err.to_string()),
        };
        let base = ["maestro", "restart", "-a", "--step-delay"];
        for (text, ms) in [("2s", 2000), ("1.5", 1500), ("500ms", 500), ("1m", 60_000)] {
            let args: Vec<&str> = base.iter().copied().chain([text]).collect();
            assert_eq!(
                delay(&args),
                Ok(Some(std::time::Duration::from_millis(ms))),
                "{text}"
            );
        }
        let args: Vec<&str> = base.iter().copied().chain(["2x"]).collect();
        let err = delay(&args).expect_err("2x is refused");
        assert!(err.contains("such as 500ms, 2s, 1m, not `2x`"), "{err}");
    }

    #[test]
    fn commands_that_contact_no_ship_show_no_connection_or_selection_flags() {
        let help = |name: &str| {
            let mut cmd = Cli::command();
            cmd.build();
            cmd.find_subcommand_mut(name)
                .map(|sub| sub.render_long_help().to_string())
                .unwrap_or_default()
        };
        for name in ["validate", "deptree", "dump", "man", "completions"] {
            let text = help(name);
            for flag in [
                "--accept-new-host-keys",
                "--concurrency",
                "--expand-services",
                "--with-dependencies",
            ] {
                assert!(!text.contains(flag), "{name} shows {flag}:\n{text}");
            }
        }
        for name in ["start", "status", "ships", "logs"] {
            assert!(help(name).contains("--accept-new-host-keys"), "{name}");
        }
    }

    #[test]
    fn log_times_are_durations_ago_times_or_unix_seconds() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(log_time("2026-11-25T11:38:22Z"), Ok(at(1_795_606_702)));
        assert_eq!(log_time("2026-11-25T13:38:22+02:00"), Ok(at(1_795_606_702)));
        assert_eq!(log_time("1795606702"), Ok(at(1_795_606_702)));
        let ago = log_time("10m").expect("a duration");
        let age = SystemTime::now().duration_since(ago).expect("in the past");
        assert!(age >= Duration::from_secs(600) && age < Duration::from_secs(660));
        let err = log_time("2026-11-25T11:38:22").expect_err("no zone");
        assert!(err.contains("add its zone"), "{err}");
        let err = log_time("yesterday").expect_err("refused");
        assert!(err.contains("not `yesterday`"), "{err}");
        let err = Cli::try_parse_from(["maestro", "logs", "-F", "--until", "1m"])
            .expect_err("until and follow");
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn logs_take_tail_as_docker_does() {
        let cli = Cli::try_parse_from(["maestro", "logs", "--tail", "5", "web"]).expect("parses");
        assert!(matches!(cli.command, Command::Logs { lines: Some(5), .. }));
    }
}
