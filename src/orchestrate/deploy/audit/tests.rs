use super::*;
use crate::orchestrate::engine::events::Outcome as JobOutcome;

fn record(stage: Stage) -> Record {
    Record::new(
        stage,
        Severity::Info,
        "start",
        "web-1, web-2",
        "alice@laptop",
        "alice@laptop is starting web-1, web-2.".into(),
        None,
    )
}

fn report(instance: &str, state: JobState) -> JobReport {
    JobReport {
        job: 0,
        instance: instance.into(),
        service: "web".into(),
        ship: "a".into(),
        state,
        started_at_ms: None,
        finished_at_ms: None,
    }
}

fn summary(command: &str, jobs: Vec<JobReport>, interrupted: bool) -> Summary {
    Summary {
        command: command.into(),
        jobs,
        interrupted,
        aborted: false,
        started_at_ms: 0,
        finished_at_ms: 0,
    }
}

#[test]
fn messages_keep_maestrong_wording() {
    assert_eq!(
        begin_message("alice@laptop", "start", "web-1, web-2"),
        "alice@laptop is starting web-1, web-2."
    );
    assert_eq!(
        begin_message("bob@ci", "stop", "web-1"),
        "bob@ci is stopping web-1."
    );
    assert_eq!(
        end_message("start", "web-1, web-2", &Ending::Succeeded),
        "Start of web-1, web-2 succeeded."
    );
    assert_eq!(
        end_message("start", "web-1", &Ending::Failed("web-1: exited".into())),
        "Failed to start web-1! (message: web-1: exited)"
    );
    assert_eq!(
        end_message("stop", "web-1", &Ending::Interrupted),
        "Stop of web-1 was interrupted."
    );
    assert_eq!(
        begin_message("a@b", "frobnicate", "x"),
        "a@b is running `frobnicate` on x."
    );
}

#[test]
fn the_outcome_names_failed_instances_and_counts_the_rest() {
    let done = JobState::Done {
        outcome: JobOutcome::Started,
    };
    let ok = Ok(vec![summary(
        "start",
        vec![report("w1", done.clone())],
        false,
    )]);
    assert_eq!(Ending::of(&ok), Ending::Succeeded);
    let failed = Ok(vec![summary(
        "start",
        vec![
            report("w1", done.clone()),
            report(
                "w2",
                JobState::Failed {
                    reason: "container exited (code 1)\nmore".into(),
                    log_tail: vec![],
                },
            ),
            report(
                "w3",
                JobState::Skipped {
                    reason: "w2 failed".into(),
                },
            ),
        ],
        false,
    )]);
    assert_eq!(
        Ending::of(&failed),
        Ending::Failed("w2: container exited (code 1); 1 not attempted".into())
    );
    let interrupted = Ok(vec![summary("stop", vec![report("w1", done)], true)]);
    assert_eq!(Ending::of(&interrupted), Ending::Interrupted);
}

#[test]
fn payload_strings_are_filled_through_maps_and_lists() {
    let payload = json!({
        "text": "{who} {action} {what}",
        "nested": {"list": ["{message}", 3, {"deep": "{action}!"}], "n": null},
        "{what}": "keys stay",
        "braces": "{{literal}} and {unknown}",
    });
    let filled = fill_payload(&payload, &record(Stage::Begin));
    assert_eq!(
        filled,
        json!({
            "text": "alice@laptop start web-1, web-2",
            "nested": {"list": ["alice@laptop is starting web-1, web-2.", 3, {"deep": "start!"}], "n": null},
            "{what}": "keys stay",
            "braces": "{literal} and {unknown}",
        })
    );
    assert_eq!(fill("x {action", &[("action", "a")]), "x {action");
    assert_eq!(fill("}{action}{", &[("action", "a")]), "}a{");
}

#[test]
fn info_hears_begin_and_end_and_debug_also_each_instance() {
    assert!(hears(AuditLevel::Info, &record(Stage::Begin)));
    assert!(hears(AuditLevel::Info, &record(Stage::End)));
    assert!(!hears(AuditLevel::Info, &record(Stage::Instance)));
    assert!(hears(AuditLevel::Debug, &record(Stage::Instance)));
}

#[test]
fn end_records_have_one_per_instance_then_the_end() {
    let audit = Audit {
        auditors: Vec::new(),
        command: "start".into(),
        who: "alice@laptop".into(),
        targets: vec![
            Target {
                instance: "w1".into(),
                service: "web".into(),
                ship_ip: "10.0.0.1".into(),
            },
            Target {
                instance: "w2".into(),
                service: "web".into(),
                ship_ip: "10.0.0.1".into(),
            },
        ],
    };
    let result = Ok(vec![summary(
        "start",
        vec![
            report(
                "w1",
                JobState::Done {
                    outcome: JobOutcome::Started,
                },
            ),
            report(
                "w2",
                JobState::Failed {
                    reason: "boom".into(),
                    log_tail: vec![],
                },
            ),
        ],
        false,
    )]);
    let records = audit.end_records(&result);
    let messages: Vec<(&str, Severity)> = records
        .iter()
        .map(|r| (r.message.as_str(), r.severity))
        .collect();
    assert_eq!(
        messages,
        vec![
            ("Start of w1 on a succeeded (started).", Severity::Debug),
            ("Failed to start w2 on a! (message: boom)", Severity::Debug),
            (
                "Failed to start w1, w2! (message: w2: boom)",
                Severity::Error
            ),
        ]
    );
    assert_eq!(
        audit.begin_record().message,
        "alice@laptop is starting w1, w2."
    );
}

#[test]
fn the_log_line_has_python_logging_shape() {
    let at = UNIX_EPOCH + Duration::from_millis(1_796_105_502_123);
    let line = log_line(at, &record(Stage::Begin));
    assert_eq!(
        line,
        "2026-12-01 06:11:42,123 INFO: alice@laptop is starting web-1, web-2.\n"
    );
}

#[test]
fn slack_bodies_use_maestrong_colours() {
    let begin = slack_body("#ops", None, Some("http://i/x.png"), &record(Stage::Begin));
    assert_eq!(begin["username"], "maestro");
    assert_eq!(begin["channel"], "#ops");
    assert_eq!(begin["icon_url"], "http://i/x.png");
    assert_eq!(begin["attachments"][0]["color"], COLOR_BEGIN);
    let mut end = record(Stage::End);
    end.outcome = Some(Ending::Succeeded);
    assert_eq!(
        slack_body("#ops", Some("bot"), None, &end)["attachments"][0]["color"],
        "good"
    );
    end.outcome = Some(Ending::Failed("x".into()));
    let body = slack_body("#ops", Some("bot"), None, &end);
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert_eq!(body["username"], "bot");
    assert!(body.get("icon_url").is_none());
}

#[test]
fn an_http_auditor_is_named_without_its_path() {
    let auditor = Auditor {
        target: AuditTarget::Http {
            endpoint: "https://hooks.example.com/services/T0/B0/s3cr3t".into(),
            payload: Value::Null,
            headers: Default::default(),
            method: "POST".into(),
            timeout: Duration::from_secs(3),
        },
        level: AuditLevel::Info,
        ignore_errors: false,
    };
    assert_eq!(
        describe(2, &auditor),
        "audit[2] (http, https://hooks.example.com)"
    );
}

#[test]
fn records_are_masked() {
    // A masker of its own: installing one would change what other tests print.
    let masker = secrets::Masker::from_vars([("DB_PASSWORD", "audit-unit-secret-7f3")]);
    let r = Record {
        stage: Stage::End,
        severity: Severity::Error,
        command: "start".into(),
        what: "web-1".into(),
        who: "alice-audit-unit-secret-7f3@laptop".into(),
        message: "Failed to start web-1! (message: DB_PASSWORD=audit-unit-secret-7f3)".into(),
        outcome: Some(Ending::Failed("audit-unit-secret-7f3".into())),
    }
    .masked(&masker);
    assert_eq!(
        r.message,
        "Failed to start web-1! (message: DB_PASSWORD=***)"
    );
    assert_eq!(r.who, "alice-***@laptop");
    assert_eq!(r.outcome, Some(Ending::Failed("***".into())));
}
