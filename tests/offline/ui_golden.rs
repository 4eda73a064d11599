//! Golden tests for the plain and JSON renderers.
//!
//! The output formats are interfaces (people grep plain logs, scripts parse JSON lines), so
//! any change to them should be a visible diff in review. Run with `UPDATE_GOLDEN=1` to
//! rewrite the files under tests/golden/ after an intended change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::common::golden;
use futures_util::future::BoxFuture;
use maestro::orchestrate::engine::events::{Event, EventKind, EventSink, JobInfo, Outcome, Step};
use maestro::orchestrate::engine::executor::{
    self, Cancel, Concurrency, Job, JobReport, JobState, OpError, Operation, RunSpec, StepContext,
    Summary,
};
use maestro::orchestrate::plan::select::Direction;

use maestro::ui::{Palette, json::JsonRenderer, plain::PlainRenderer, summary};

fn ev(at_ms: u64, kind: EventKind) -> Event {
    Event { at_ms, kind }
}

fn report(
    job: usize,
    instance: &str,
    service: &str,
    ship: &str,
    state: JobState,
    times: Option<(u64, u64)>,
) -> JobReport {
    JobReport {
        job,
        instance: instance.into(),
        service: service.into(),
        ship: ship.into(),
        state,
        started_at_ms: times.map(|t| t.0),
        finished_at_ms: times.map(|t| t.1),
    }
}

/// A start of five instances on two ships touching every kind of event: a pull with
/// progress, checks, a success, a failure with a log tail, a skip behind it, and an
/// instance already running.
fn fixture() -> Vec<Event> {
    let info = |job: usize, instance: &str, service: &str, ship: &str| JobInfo {
        job,
        instance: instance.into(),
        service: service.into(),
        ship: ship.into(),
    };
    let step = |at, job: usize, instance: &str, ship: &str, step: Step| {
        ev(
            at,
            EventKind::Step {
                job,
                instance: instance.into(),
                ship: ship.into(),
                step,
            },
        )
    };
    let started = |at, job: usize, instance: &str, ship: &str| {
        ev(
            at,
            EventKind::JobStarted {
                job,
                instance: instance.into(),
                ship: ship.into(),
            },
        )
    };
    let summary = Summary {
        command: "start".into(),
        jobs: vec![
            report(
                0,
                "zk1",
                "zookeeper",
                "ship-a",
                JobState::Done {
                    outcome: Outcome::Started,
                },
                Some((1, 4210)),
            ),
            report(
                1,
                "cache1",
                "cache",
                "ship-b",
                JobState::Done {
                    outcome: Outcome::AlreadyRunning,
                },
                Some((2, 350)),
            ),
            report(
                2,
                "kafka1",
                "kafka",
                "ship-b",
                JobState::Failed {
                    reason: "check tcp:broker failed after 3 attempts".into(),
                    log_tail: vec![
                        "starting broker".into(),
                        "FATAL: cannot reach zk1:2181".into(),
                    ],
                },
                Some((4211, 9800)),
            ),
            report(
                3,
                "web1",
                "web",
                "ship-a",
                JobState::Skipped {
                    reason: "dependency kafka1 failed".into(),
                },
                None,
            ),
            report(
                4,
                "web2",
                "web",
                "ship-b",
                JobState::Skipped {
                    reason: "dependency kafka1 failed".into(),
                },
                None,
            ),
        ],
        interrupted: false,
        aborted: false,
        started_at_ms: 0,
        finished_at_ms: 9801,
    };
    vec![
        ev(
            0,
            EventKind::PlanStarted {
                command: "start".into(),
                direction: Direction::Forward,
                jobs: vec![
                    info(0, "zk1", "zookeeper", "ship-a"),
                    info(1, "cache1", "cache", "ship-b"),
                    info(2, "kafka1", "kafka", "ship-b"),
                    info(3, "web1", "web", "ship-a"),
                    info(4, "web2", "web", "ship-b"),
                ],
            },
        ),
        started(1, 0, "zk1", "ship-a"),
        started(2, 1, "cache1", "ship-b"),
        step(
            40,
            0,
            "zk1",
            "ship-a",
            Step::Pulling {
                percent: None,
                detail: "zookeeper:3.8".into(),
            },
        ),
        step(
            300,
            1,
            "cache1",
            "ship-b",
            Step::Message {
                text: "container up to date".into(),
            },
        ),
        ev(
            350,
            EventKind::JobDone {
                job: 1,
                instance: "cache1".into(),
                ship: "ship-b".into(),
                elapsed_ms: 348,
                outcome: Outcome::AlreadyRunning,
            },
        ),
        step(
            900,
            0,
            "zk1",
            "ship-a",
            Step::Pulling {
                percent: Some(45),
                detail: "3/7 layers".into(),
            },
        ),
        step(
            2100,
            0,
            "zk1",
            "ship-a",
            Step::Pulling {
                percent: Some(100),
                detail: String::new(),
            },
        ),
        step(2200, 0, "zk1", "ship-a", Step::Creating),
        step(2500, 0, "zk1", "ship-a", Step::Starting),
        step(2800, 0, "zk1", "ship-a", Step::WaitingRunning),
        step(
            3100,
            0,
            "zk1",
            "ship-a",
            Step::Checking {
                check: "tcp:client".into(),
                attempt: 1,
                max: 180,
            },
        ),
        step(
            4100,
            0,
            "zk1",
            "ship-a",
            Step::Checking {
                check: "tcp:client".into(),
                attempt: 2,
                max: 180,
            },
        ),
        ev(
            4210,
            EventKind::JobDone {
                job: 0,
                instance: "zk1".into(),
                ship: "ship-a".into(),
                elapsed_ms: 4209,
                outcome: Outcome::Started,
            },
        ),
        started(4211, 2, "kafka1", "ship-b"),
        step(4300, 2, "kafka1", "ship-b", Step::Creating),
        step(4600, 2, "kafka1", "ship-b", Step::Starting),
        step(
            5000,
            2,
            "kafka1",
            "ship-b",
            Step::Checking {
                check: "tcp:broker".into(),
                attempt: 3,
                max: 3,
            },
        ),
        ev(
            9800,
            EventKind::JobFailed {
                job: 2,
                instance: "kafka1".into(),
                ship: "ship-b".into(),
                elapsed_ms: 5589,
                reason: "check tcp:broker failed after 3 attempts".into(),
                log_tail: vec![
                    "starting broker".into(),
                    "FATAL: cannot reach zk1:2181".into(),
                ],
            },
        ),
        ev(
            9800,
            EventKind::JobSkipped {
                job: 3,
                instance: "web1".into(),
                ship: "ship-a".into(),
                reason: "dependency kafka1 failed".into(),
            },
        ),
        ev(
            9800,
            EventKind::JobSkipped {
                job: 4,
                instance: "web2".into(),
                ship: "ship-b".into(),
                reason: "dependency kafka1 failed".into(),
            },
        ),
        ev(9801, EventKind::PlanFinished { summary }),
    ]
}

fn render_plain(events: &[Event]) -> String {
    let mut renderer = PlainRenderer::new(Vec::new(), Palette::new(false));
    for event in events {
        renderer.event(event).unwrap();
    }
    String::from_utf8(renderer.into_inner()).unwrap()
}

fn render_json(events: &[Event]) -> String {
    let mut renderer = JsonRenderer::new(Vec::new());
    for event in events {
        renderer.event(event).unwrap();
    }
    String::from_utf8(renderer.into_inner()).unwrap()
}

#[test]
fn plain_renderer_matches_golden() {
    golden::check("start.plain.txt", &render_plain(&fixture()));
}

#[test]
fn json_renderer_matches_golden_and_round_trips() {
    let json = render_json(&fixture());
    golden::check("start.events.jsonl", &json);
    let parsed: Vec<Event> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        parsed,
        fixture(),
        "every JSON line parses back to the same event"
    );
}

#[test]
fn summary_table_matches_golden() {
    let Some(EventKind::PlanFinished { summary: s }) = fixture().pop().map(|e| e.kind) else {
        panic!("fixture ends with PlanFinished");
    };
    golden::check(
        "start.summary.txt",
        &summary::render_table(&s, Palette::new(false)),
    );
    assert_eq!(s.exit_code(), 1);
}

#[test]
fn colours_are_only_added_when_asked() {
    let events = fixture();
    let mut coloured = PlainRenderer::new(Vec::new(), Palette::new(true));
    for event in &events {
        coloured.event(event).unwrap();
    }
    let coloured = String::from_utf8(coloured.into_inner()).unwrap();
    assert!(coloured.contains("\u{1b}["));
    assert_eq!(console::strip_ansi_codes(&coloured), render_plain(&events));
}

/// A start on three ships that connect on their own: ship-a quickly, ship-c later (its
/// job starts while ship-a's runs), ship-b never, which fails its job with the reason.
fn connect_fixture() -> Vec<Event> {
    let info = |job: usize, instance: &str, service: &str, ship: &str| JobInfo {
        job,
        instance: instance.into(),
        service: service.into(),
        ship: ship.into(),
    };
    let connecting = |at, ship: &str| ev(at, EventKind::ShipConnecting { ship: ship.into() });
    let connected = |at, ship: &str, elapsed_ms| {
        ev(
            at,
            EventKind::ShipConnected {
                ship: ship.into(),
                elapsed_ms,
            },
        )
    };
    let started = |at, job: usize, instance: &str, ship: &str| {
        ev(
            at,
            EventKind::JobStarted {
                job,
                instance: instance.into(),
                ship: ship.into(),
            },
        )
    };
    let done = |at, job: usize, instance: &str, ship: &str, elapsed_ms| {
        ev(
            at,
            EventKind::JobDone {
                job,
                instance: instance.into(),
                ship: ship.into(),
                elapsed_ms,
                outcome: Outcome::Started,
            },
        )
    };
    let unreachable = "ssh: connect to host 10.0.0.2 port 22: Connection timed out";
    let summary = Summary {
        command: "start".into(),
        jobs: vec![
            report(
                0,
                "db1",
                "db",
                "ship-a",
                JobState::Done {
                    outcome: Outcome::Started,
                },
                Some((414, 1500)),
            ),
            report(
                1,
                "web1",
                "web",
                "ship-b",
                JobState::Failed {
                    reason: unreachable.into(),
                    log_tail: vec![],
                },
                Some((5001, 5001)),
            ),
            report(
                2,
                "cache1",
                "cache",
                "ship-c",
                JobState::Done {
                    outcome: Outcome::Started,
                },
                Some((601, 1200)),
            ),
        ],
        interrupted: false,
        aborted: false,
        started_at_ms: 0,
        finished_at_ms: 5002,
    };
    vec![
        ev(
            0,
            EventKind::PlanStarted {
                command: "start".into(),
                direction: Direction::Forward,
                jobs: vec![
                    info(0, "db1", "db", "ship-a"),
                    info(1, "web1", "web", "ship-b"),
                    info(2, "cache1", "cache", "ship-c"),
                ],
            },
        ),
        connecting(1, "ship-a"),
        connecting(1, "ship-b"),
        connecting(2, "ship-c"),
        connected(413, "ship-a", 412),
        started(414, 0, "db1", "ship-a"),
        connected(600, "ship-c", 598),
        started(601, 2, "cache1", "ship-c"),
        ev(
            900,
            EventKind::Step {
                job: 0,
                instance: "db1".into(),
                ship: "ship-a".into(),
                step: Step::Starting,
            },
        ),
        done(1200, 2, "cache1", "ship-c", 599),
        done(1500, 0, "db1", "ship-a", 1086),
        ev(
            5001,
            EventKind::ShipConnectFailed {
                ship: "ship-b".into(),
                elapsed_ms: 5000,
                reason: unreachable.into(),
            },
        ),
        ev(
            5001,
            EventKind::JobFailed {
                job: 1,
                instance: "web1".into(),
                ship: "ship-b".into(),
                elapsed_ms: 0,
                reason: unreachable.into(),
                log_tail: vec![],
            },
        ),
        ev(5002, EventKind::PlanFinished { summary }),
    ]
}

#[test]
fn connect_events_render_to_golden_plain_output() {
    golden::check("connect.plain.txt", &render_plain(&connect_fixture()));
}

#[test]
fn connect_events_come_out_as_json_and_round_trip() {
    let json = render_json(&connect_fixture());
    golden::check("connect.events.jsonl", &json);
    let parsed: Vec<Event> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(parsed, connect_fixture());
}

/// A scripted operation: each job sleeps through its steps (virtual time), some fail.
struct Scripted;

impl Operation for Scripted {
    fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        Box::pin(async move {
            ctx.step(Step::Creating);
            tokio::time::sleep(Duration::from_millis(100 * (job as u64 + 1))).await;
            ctx.step(Step::Starting);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ctx.instance() == "app2" {
                return Err(OpError::failed("container exited with code 3")
                    .with_log_tail(vec!["panic: no config".into()]));
            }
            ctx.step(Step::Checking {
                check: "tcp:http".into(),
                attempt: 1,
                max: 30,
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Outcome::Started)
        })
    }
}

/// A job of the scripted runs below; its service is the instance name without its digits.
fn job(instance: &str, ship: &str, deps: &[usize]) -> Job {
    Job {
        instance: instance.into(),
        service: instance.trim_end_matches(char::is_numeric).into(),
        ship: ship.into(),
        deps: deps.to_vec(),
    }
}

/// The executor's own stream, rendered plainly: pins the order and timing of events for a
/// small real run (paused time makes it deterministic), with two ships and a ship limit.
#[tokio::test(start_paused = true)]
async fn executor_run_renders_to_golden_plain_output() {
    let spec = RunSpec {
        command: "start".into(),
        jobs: vec![
            job("db1", "alpha", &[]),
            job("app1", "alpha", &[0]),
            job("app2", "beta", &[0]),
            job("web1", "beta", &[1, 2]),
            job("cache1", "beta", &[]),
        ],
        direction: Direction::Forward,
        limits: Concurrency {
            global: 4,
            per_ship: [("beta".to_string(), 1)].into(),
        },
    };
    let (sink, mut rx) = EventSink::new();
    let summary = executor::run(spec, Arc::new(Scripted), sink, Cancel::new())
        .await
        .unwrap();
    assert_eq!(summary.exit_code(), 1);
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    golden::check("executor_run.plain.txt", &render_plain(&events));
}

/// An operation that takes real (short) time and reports every kind of step, so the live
/// display has something to draw in the pseudo-terminal test below.
struct Demo;

impl Operation for Demo {
    fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        Box::pin(async move {
            let pause = || tokio::time::sleep(Duration::from_millis(60));
            for percent in [0u8, 30, 60, 100] {
                ctx.step(Step::Pulling {
                    percent: Some(percent),
                    detail: format!("{}/4 layers", percent / 25),
                });
                pause().await;
            }
            ctx.step(Step::Creating);
            pause().await;
            ctx.step(Step::Starting);
            pause().await;
            for attempt in 1..=2 {
                ctx.step(Step::Checking {
                    check: "tcp:client".into(),
                    attempt,
                    max: 30,
                });
                pause().await;
            }
            if job == 2 {
                return Err(OpError::failed("check tcp:client failed")
                    .with_log_tail(vec!["bind: address in use".into()]));
            }
            Ok(Outcome::Started)
        })
    }
}

/// The child half of the pseudo-terminal test: only does something when the parent runs
/// it under `script` (ignored otherwise, so a plain `cargo test` skips it).
#[test]
#[ignore = "run by progress_draws_live_lines_on_a_pseudo_terminal"]
fn pty_child_progress() {
    if std::env::var_os("MAESTRO_PTY_CHILD").is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let spec = RunSpec {
            command: "start".into(),
            jobs: vec![
                job("db1", "alpha", &[]),
                job("app1", "beta", &[0]),
                job("app2", "beta", &[0]),
                job("web1", "alpha", &[1, 2]),
            ],
            direction: Direction::Forward,
            limits: Concurrency::unlimited(),
        };
        let (sink, rx) = EventSink::new();
        let renderer = tokio::spawn(maestro::ui::render_with(
            rx,
            maestro::ui::RenderMode::Progress,
            std::io::stdout(),
            false,
        ));
        let summary = executor::run(spec, Arc::new(Demo), sink, Cancel::new())
            .await
            .unwrap();
        renderer.await.unwrap().unwrap();
        assert_eq!(summary.exit_code(), 1);
    });
}

/// Runs the progress renderer on a real pseudo-terminal (util-linux `script` allocates
/// one) by re-running this test binary's `pty_child_progress`, and checks that it drew
/// live lines (cursor movement, per-ship lines, the pull bar) as well as the log and the
/// summary. The raw capture is kept in target/progress-pty.typescript for inspection.
#[test]
fn progress_draws_live_lines_on_a_pseudo_terminal() {
    let Some(captured) = run_in_pty("pty_child_progress", "", "progress-pty.typescript") else {
        return;
    };
    let plain = console::strip_ansi_codes(&captured);
    assert!(
        captured.contains("\u{1b}[1A") || captured.contains("\u{1b}[2K"),
        "no cursor control: {captured:?}"
    );
    assert!(plain.contains("alpha") && plain.contains("beta"), "{plain}");
    assert!(plain.contains("db1: pulling ["), "pull bar drawn: {plain}");
    assert!(plain.contains("✔ db1 on alpha started"), "{plain}");
    assert!(plain.contains("✘ app2 on beta failed"), "{plain}");
    assert!(plain.contains("#  INSTANCE"), "summary table: {plain}");
    assert!(plain.contains("skipped: dependency app2 failed"), "{plain}");
}

/// How many ships the fleet test replays, and the terminal it replays them in: more
/// ships than rows, so the progress view must go compact to stay on screen.
const FLEET_SHIPS: usize = 40;
const FLEET_ROWS: usize = 24;
const FLEET_COLS: usize = 100;

/// A recorded start of two instances (app, then web) on each of 40 ships, connecting on
/// their own: ships connect 20 ms apart and take a varying time to, so connecting,
/// pulling and checking overlap across the fleet. ship-14 cannot be reached and both its
/// jobs fail with the reason; web8's check fails.
fn fleet_fixture() -> Vec<Event> {
    let ship = |i: usize| format!("ship-{:02}", i + 1);
    let instance = |job: usize| format!("{}{}", ["app", "web"][job % 2], job / 2 + 1);
    let jobs: Vec<JobInfo> = (0..FLEET_SHIPS * 2)
        .map(|job| JobInfo {
            job,
            instance: instance(job),
            service: ["app", "web"][job % 2].into(),
            ship: ship(job / 2),
        })
        .collect();
    let unreachable = "ssh: connect to host ship-14 port 22: Connection timed out";
    let mut events = vec![];
    let mut reports = vec![];
    for i in 0..FLEET_SHIPS {
        let at0 = 20 * i as u64;
        let (app, web) = (2 * i, 2 * i + 1);
        let on = |job: usize| (job, instance(job), ship(i));
        events.push(ev(at0, EventKind::ShipConnecting { ship: ship(i) }));
        if i == 13 {
            let at = at0 + 5000;
            events.push(ev(
                at,
                EventKind::ShipConnectFailed {
                    ship: ship(i),
                    elapsed_ms: 5000,
                    reason: unreachable.into(),
                },
            ));
            for job in [app, web] {
                let (job, instance, ship) = on(job);
                let state = JobState::Failed {
                    reason: unreachable.into(),
                    log_tail: vec![],
                };
                reports.push(report(job, &instance, "svc", &ship, state, Some((at, at))));
                events.push(ev(
                    at,
                    EventKind::JobFailed {
                        job,
                        instance,
                        ship,
                        elapsed_ms: 0,
                        reason: unreachable.into(),
                        log_tail: vec![],
                    },
                ));
            }
            continue;
        }
        let connect_ms = 200 + (i as u64 * 73) % 400;
        let at1 = at0 + connect_ms;
        events.push(ev(
            at1,
            EventKind::ShipConnected {
                ship: ship(i),
                elapsed_ms: connect_ms,
            },
        ));
        // The app: a pull with progress, then start and a check.
        let (job, name, host) = on(app);
        let step = |at, step| {
            ev(
                at,
                EventKind::Step {
                    job,
                    instance: name.clone(),
                    ship: host.clone(),
                    step,
                },
            )
        };
        let app_start = at1 + 1;
        let app_end = app_start + 1300 + (i as u64 * 131) % 700;
        events.push(ev(
            app_start,
            EventKind::JobStarted {
                job,
                instance: name.clone(),
                ship: host.clone(),
            },
        ));
        for (offset, percent) in [(10, 0u8), (400, 50), (800, 100)] {
            events.push(step(
                app_start + offset,
                Step::Pulling {
                    percent: Some(percent),
                    detail: format!("{}/4 layers", percent / 25),
                },
            ));
        }
        events.push(step(app_start + 900, Step::Creating));
        events.push(step(app_start + 1000, Step::Starting));
        events.push(step(
            app_start + 1100,
            Step::Checking {
                check: "tcp:app".into(),
                attempt: 1,
                max: 30,
            },
        ));
        events.push(ev(
            app_end,
            EventKind::JobDone {
                job,
                instance: name.clone(),
                ship: host.clone(),
                elapsed_ms: app_end - app_start,
                outcome: Outcome::Started,
            },
        ));
        let state = JobState::Done {
            outcome: Outcome::Started,
        };
        reports.push(report(
            job,
            &name,
            "app",
            &host,
            state,
            Some((app_start, app_end)),
        ));
        // The web: starts once the app is up; web8's check never passes.
        let (job, name, host) = on(web);
        let web_start = app_end + 1;
        events.push(ev(
            web_start,
            EventKind::JobStarted {
                job,
                instance: name.clone(),
                ship: host.clone(),
            },
        ));
        for (offset, step) in [(100, Step::Creating), (200, Step::Starting)] {
            events.push(ev(
                web_start + offset,
                EventKind::Step {
                    job,
                    instance: name.clone(),
                    ship: host.clone(),
                    step,
                },
            ));
        }
        if i == 7 {
            let web_end = web_start + 1500;
            let reason = "check http:web failed after 30 attempts";
            events.push(ev(
                web_end,
                EventKind::JobFailed {
                    job,
                    instance: name.clone(),
                    ship: host.clone(),
                    elapsed_ms: web_end - web_start,
                    reason: reason.into(),
                    log_tail: vec!["listen: permission denied".into()],
                },
            ));
            let state = JobState::Failed {
                reason: reason.into(),
                log_tail: vec!["listen: permission denied".into()],
            };
            reports.push(report(
                job,
                &name,
                "web",
                &host,
                state,
                Some((web_start, web_end)),
            ));
        } else {
            let web_end = web_start + 600;
            events.push(ev(
                web_end,
                EventKind::JobDone {
                    job,
                    instance: name.clone(),
                    ship: host.clone(),
                    elapsed_ms: web_end - web_start,
                    outcome: Outcome::Started,
                },
            ));
            let state = JobState::Done {
                outcome: Outcome::Started,
            };
            reports.push(report(
                job,
                &name,
                "web",
                &host,
                state,
                Some((web_start, web_end)),
            ));
        }
    }
    // As the executor would send them: in time order, each ship's own events in order.
    events.sort_by_key(|e| e.at_ms);
    reports.sort_by_key(|r| r.job);
    let finished_at_ms = events.last().map_or(0, |e| e.at_ms) + 1;
    events.insert(
        0,
        ev(
            0,
            EventKind::PlanStarted {
                command: "start".into(),
                direction: Direction::Forward,
                jobs,
            },
        ),
    );
    events.push(ev(
        finished_at_ms,
        EventKind::PlanFinished {
            summary: Summary {
                command: "start".into(),
                jobs: reports,
                interrupted: false,
                aborted: false,
                started_at_ms: 0,
                finished_at_ms,
            },
        },
    ));
    events
}

/// The child half of the fleet test: replays the fleet through the progress renderer on
/// the pseudo-terminal's stderr, at the terminal size the parent set with `stty`.
/// Replaying (event time, not the wall clock) makes every frame, and which frames are
/// drawn, a function of the events alone.
#[test]
#[ignore = "run by progress_view_of_a_large_fleet_fits_the_terminal"]
fn pty_child_fleet() {
    if std::env::var_os("MAESTRO_PTY_CHILD").is_none() {
        return;
    }
    let (rows, cols) = console::Term::stderr().size();
    assert_eq!(
        (usize::from(rows), usize::from(cols)),
        (FLEET_ROWS, FLEET_COLS),
        "stty set the size"
    );
    let mut renderer = maestro::ui::progress::ProgressRenderer::new(
        indicatif::ProgressDrawTarget::stderr(),
        std::io::stdout(),
        Palette::new(false),
    )
    .replaying();
    for event in fleet_fixture() {
        renderer.event(&event).unwrap();
    }
    renderer.finish();
}

/// Follows the cursor through what a terminal of `rows` x `cols` is sent: enough of a
/// terminal to see how tall indicatif's live area was. Indicatif redraws by moving the
/// cursor up to the first line of the area it drew last (CSI n A, n = height - 1), so
/// every upward move measures a frame, whatever else the frame contained; a move that
/// would go past the top of the screen means a frame did not fit.
struct Cursor {
    rows: usize,
    cols: usize,
    row: usize,
    col: usize,
    /// Set after writing in the last column: the next character goes to the next line.
    wrap_pending: bool,
    /// Every upward move seen, in lines.
    ups: Vec<usize>,
    /// Upward moves stopped by the top of the screen.
    clamped: usize,
}

impl Cursor {
    fn new(rows: usize, cols: usize) -> Self {
        Cursor {
            rows,
            cols,
            row: 0,
            col: 0,
            wrap_pending: false,
            ups: vec![],
            clamped: 0,
        }
    }

    fn feed(&mut self, captured: &str) {
        let mut chars = captured.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' => {
                    if chars.next_if_eq(&'[').is_none() {
                        chars.next();
                        continue;
                    }
                    let mut params = String::new();
                    while let Some(p) =
                        chars.next_if(|p| p.is_ascii_digit() || *p == ';' || *p == '?')
                    {
                        params.push(p);
                    }
                    if let Some(command) = chars.next() {
                        self.csi(&params, command);
                    }
                }
                '\r' => {
                    self.col = 0;
                    self.wrap_pending = false;
                }
                '\n' => {
                    self.line_feed();
                    self.wrap_pending = false;
                }
                c if c.is_control() => {}
                c => self.print(console::measure_text_width(&c.to_string())),
            }
        }
    }

    fn csi(&mut self, params: &str, command: char) {
        let n = params.parse::<usize>().unwrap_or(1).max(1);
        match command {
            'A' => {
                self.ups.push(n);
                if n > self.row {
                    self.clamped += 1;
                }
                self.row = self.row.saturating_sub(n);
            }
            'B' => self.row = (self.row + n).min(self.rows - 1),
            'C' => self.col = (self.col + n).min(self.cols - 1),
            'D' => self.col = self.col.saturating_sub(n),
            // Erasing, colours, cursor visibility: no effect on where the cursor is.
            _ => return,
        }
        self.wrap_pending = false;
    }

    fn print(&mut self, width: usize) {
        if width == 0 {
            return;
        }
        if self.wrap_pending || self.col + width > self.cols {
            self.col = 0;
            self.line_feed();
            self.wrap_pending = false;
        }
        if self.col + width == self.cols {
            self.col = self.cols - 1;
            self.wrap_pending = true;
        } else {
            self.col += width;
        }
    }

    fn line_feed(&mut self) {
        // At the bottom the screen scrolls and the cursor stays on the last row.
        self.row = (self.row + 1).min(self.rows - 1);
    }
}

/// Runs `child` (an ignored test of this binary) under util-linux `script`, which gives it
/// a pseudo-terminal, after `setup` (shell commands, e.g. `stty`); returns the capture. A
/// machine without `script` fails the test (test.sh installs util-linux), unless
/// MAESTRO_SKIP_PTY_TESTS=1 opts out (docs/testing.md); then None.
fn run_in_pty(child: &str, setup: &str, keep: &str) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("MAESTRO_SKIP_PTY_TESTS").is_some_and(|v| v == "1"),
            "util-linux `script` is not installed: install it, or set MAESTRO_SKIP_PTY_TESTS=1 \
             to skip the pseudo-terminal tests"
        );
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    // The test's name in this binary is its module path without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let command = format!(
        "{setup}{} --exact {module}::{child} --ignored --nocapture --test-threads=1",
        exe.display()
    );
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("MAESTRO_PTY_CHILD", "1")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let captured = String::from_utf8_lossy(&output.stdout).into_owned();
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(keep),
        &captured,
    );
    assert!(
        output.status.success(),
        "child failed: {captured}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(captured)
}

/// 40 ships in a 24-line terminal: the live area must switch to the compact view and no
/// frame may be taller than the terminal less the line the cursor rests on, or the
/// redraws would climb into the scrollback and smear the screen.
#[test]
fn progress_view_of_a_large_fleet_fits_the_terminal() {
    let setup = format!("stty rows {FLEET_ROWS} cols {FLEET_COLS}; ");
    let Some(captured) = run_in_pty("pty_child_fleet", &setup, "progress-fleet-pty.typescript")
    else {
        return;
    };
    let mut cursor = Cursor::new(FLEET_ROWS, FLEET_COLS);
    cursor.feed(&captured);
    assert!(
        cursor.ups.len() > 20,
        "live frames were redrawn: {:?}",
        cursor.ups
    );
    let tallest = cursor.ups.iter().max().copied().unwrap_or(0) + 1;
    assert!(
        tallest < FLEET_ROWS,
        "a frame of {tallest} lines in a terminal of {FLEET_ROWS}"
    );
    assert_eq!(
        cursor.clamped, 0,
        "a redraw went past the top of the screen"
    );

    let plain = console::strip_ansi_codes(&captured).into_owned();
    // The capture is long: on failure, show its end, where the last frames are.
    let end = &plain[plain.floor_char_boundary(plain.len().saturating_sub(4000))..];
    assert!(plain.contains("40 ships: "), "overall line: {end}");
    assert!(plain.contains("more working"), "folded ships: {end}");
    assert!(
        plain.contains("connecting ("),
        "connecting ships listed: {end}"
    );
    // The last frame stays on screen: the totals, then the two ships in trouble.
    assert!(
        plain.contains("✘ 40 ships: 39 connected, 38 done, 2 failed · 80/80 instances · 5.3s"),
        "{end}"
    );
    assert!(
        plain.contains("✘ ship-14   2/2   [2 failed] unreachable (5.0s): ssh: connect"),
        "{end}"
    );
    assert!(plain.contains("✘ ship-14 unreachable (5.0s): ssh"), "{end}");
    assert!(plain.contains("INSTANCE  SERVICE"), "summary table: {end}");
}
