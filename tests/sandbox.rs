//! `dcms-bulk sandbox` run as a user would, on a free loopback port, and
//! talked to over real HTTP.

mod common;

use std::time::Duration;

use common::{SandboxProcess, client, printed_orders};
use serde_json::{Value, json};

const ORDER: &str = r#"{"orderId":"ORD-1","branchInfo":{"branchId":"00123","branchName":"Pune Camp"},"address":"Flat 1~Camp~Pune~MH","pinCode":"411001","orderingPartyInfo":{"orderingPartyId":"Priya","orderingPartyType":"BANK"},"processStartTime":"2026-12-01 09:00:00","validity":365,"products":[{"productId":"01","bin":"412345","cardType":"PHYSICAL","quantity":100,"plasticCode":"0001","panLength":16,"pinGeneration":"Y"}]}"#;

/// [`ORDER`] with another order id.
fn order(id: &str) -> String {
    ORDER.replace("ORD-1", id)
}

fn fetch(sb: &SandboxProcess, tenant: &str, id: &str) -> common::Answer {
    sb.post(
        "/card-order/fetchStatus",
        Some(tenant),
        &json!({ "cardOrderId": id }).to_string(),
    )
}

fn status_of(sb: &SandboxProcess, tenant: &str, id: &str) -> String {
    let a = fetch(sb, tenant, id);
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["result"]["status"].as_str().unwrap_or("").to_owned()
}

#[test]
fn creates_what_validate_prints_and_refuses_a_duplicate() {
    let sb = SandboxProcess::start(&[]);
    let orders = printed_orders("samples/orders.csv");
    assert!(orders.len() >= 3);
    for body in &orders {
        let a = sb.post("/card-order", Some("ACME"), body);
        assert_eq!((a.status, &a.body["result"]), (200, &json!("success")));
        assert_eq!(a.body["exception"], Value::Null);
        assert!(a.body.as_object().unwrap().contains_key("pagination"));
    }
    let again = sb.post("/card-order", Some("ACME"), &orders[0]);
    assert_eq!((again.status, again.code()), (409, "order.already.exists"));

    let stats = sb.inspect("/stats");
    let acme = &stats["tenants"]["ACME"];
    assert_eq!(acme["orders"], orders.len());
    assert_eq!(acme["ordersByStatus"]["RECEIVED"], orders.len());
    assert_eq!(acme["duplicateCreates"], 1);
    assert_eq!(stats["requests"]["/v1/card-order"]["200"], orders.len());
    assert_eq!(stats["requests"]["/v1/card-order"]["409"], 1);

    // The inspection API shows each order as it was sent, in order.
    let stored = sb.inspect("/tenants/ACME/orders");
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), orders.len());
    for (sent, kept) in orders.iter().zip(stored) {
        let sent: Value = serde_json::from_str(sent).unwrap();
        assert_eq!(kept["request"], sent);
        assert_eq!(kept["orderId"], sent["orderId"]);
    }
    assert_eq!(stored[0]["duplicateCreates"], 1);
}

#[test]
fn create_checks_every_field_like_ord001() {
    let sb = SandboxProcess::start(&[]);
    let empty = sb.post("/card-order", Some("ACME"), "{}");
    assert_eq!((empty.status, empty.code()), (400, "ORD001"));
    let e = &empty.body["exception"];
    assert_eq!(e["shortMessage"], "Invalid order request");
    assert_eq!(e["httpStatus"], "BAD_REQUEST");
    assert_eq!(e["languageCode"], "en");
    let errors = empty.field_errors();
    assert!(errors.contains("branchInfo is required"), "{errors}");
    assert!(
        errors.contains("At least one product is required"),
        "{errors}"
    );

    let mut bad: Value = serde_json::from_str(ORDER).unwrap();
    bad["pinCode"] = json!("4110");
    bad["processStartTime"] = json!("2026-02-30 09:00:00");
    bad["products"][0]["quantity"] = json!("many");
    bad["products"][0]["bin"] = json!("41234");
    bad["products"][0]["panLength"] = json!(17);
    bad["products"][0]["colour"] = json!("red");
    let a = sb.post("/card-order", Some("ACME"), &bad.to_string());
    assert_eq!((a.status, a.code()), (400, "ORD001"));
    let errors: Vec<String> =
        serde_json::from_value(a.body["exception"]["fieldError"].clone()).unwrap();
    for expected in [
        "pinCode must be 6 digits",
        "processStartTime must be in the format YYYY-MM-DD HH:mm:ss",
        "products[0].quantity must be a whole number from 1 to 10000",
        "products[0].bin must be 6 or 8 digits",
        "products[0].panLength must be 16 or 19",
        "Unknown field products[0].colour",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected} not in {errors:?}"
        );
    }
    assert_eq!(errors.len(), 6, "{errors:?}");
    assert_eq!(sb.inspect("/tenants/ACME/orders"), json!([]));
}

#[test]
fn every_call_needs_a_tenant_and_tenants_never_meet() {
    let sb = SandboxProcess::start(&[]);
    for path in [
        "/card-order",
        "/card-order/cancel",
        "/card-order/fetchStatus",
        "/kit-manager/upgradeCard",
    ] {
        let a = sb.post(path, None, ORDER);
        assert_eq!(
            (a.status, a.code()),
            (400, "tenant.header.missing"),
            "{path}"
        );
    }
    // Header names are case-insensitive.
    let upper = client(Duration::from_secs(5))
        .post(format!("{}/card-order", sb.base))
        .header("TENANT", "ACME")
        .header("content-type", "application/json")
        .body(ORDER)
        .send()
        .unwrap();
    assert_eq!(upper.status().as_u16(), 200);

    // Another tenant cannot see or cancel ACME's order, and may use the same id.
    assert_eq!(fetch(&sb, "OTHER", "ORD-1").code(), "order.not.found");
    let cancel = sb.post(
        "/card-order/cancel",
        Some("OTHER"),
        r#"{"orderId":"ORD-1","branchId":"00123"}"#,
    );
    assert_eq!((cancel.status, cancel.code()), (404, "order.not.found"));
    assert_eq!(sb.post("/card-order", Some("OTHER"), ORDER).status, 200);
    assert_eq!(status_of(&sb, "ACME", "ORD-1"), "RECEIVED");
    let stats = sb.inspect("/stats");
    assert_eq!(stats["tenants"]["ACME"]["orders"], 1);
    assert_eq!(stats["tenants"]["OTHER"]["orders"], 1);
    assert_eq!(stats["tenants"]["OTHER"]["duplicateCreates"], 0);
}

#[test]
fn a_token_file_makes_the_bearer_token_mandatory_and_it_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cr3t-Token-value";
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let sb = SandboxProcess::start(&["--token-file", file.to_str().unwrap(), "-v"]);
    let http = client(Duration::from_secs(5));
    let send = |auth: Option<&str>| {
        let mut req = http
            .post(format!("{}/card-order", sb.base))
            .header("tenant", "ACME")
            .header("content-type", "application/json")
            .body(ORDER);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        common::answer(req.send().unwrap()).unwrap()
    };
    let none = send(None);
    assert_eq!((none.status, none.code()), (401, "unauthorized"));
    assert_eq!(none.body["exception"]["httpStatus"], "UNAUTHORIZED");
    assert_eq!(send(Some("Bearer wrong")).status, 401);
    assert_eq!(send(Some(token)).status, 401, "the Bearer prefix is needed");
    let good = send(Some(&format!("Bearer {token}")));
    assert_eq!(
        (good.status, good.body["result"].as_str()),
        (200, Some("success"))
    );

    let (code, stderr) = sb.terminate();
    assert_eq!(code, 0);
    assert!(stderr.contains("token required"), "{stderr}");
    assert!(
        stderr.contains("/v1/card-order tenant=ACME -> 401"),
        "{stderr}"
    );
    assert!(!stderr.contains(token), "{stderr}");
}

#[test]
fn orders_move_on_when_told_and_cancel_only_from_received() {
    let sb = SandboxProcess::start(&[]);
    for id in ["A", "B"] {
        assert_eq!(sb.post("/card-order", Some("ACME"), &order(id)).status, 200);
    }
    let cancel = |id: &str, branch: &str| {
        sb.post(
            "/card-order/cancel",
            Some("ACME"),
            &json!({"orderId": id, "branchId": branch}).to_string(),
        )
    };
    let unknown = cancel("NOPE", "00123");
    assert_eq!((unknown.status, unknown.code()), (404, "order.not.found"));
    let mismatch = cancel("A", "999");
    assert_eq!(
        (mismatch.status, mismatch.code()),
        (400, "order.branch.mismatch")
    );
    assert_eq!(status_of(&sb, "ACME", "A"), "RECEIVED");
    let done = cancel("A", "00123");
    assert_eq!(done.body["result"], "Order cancelled successfully");
    assert_eq!(status_of(&sb, "ACME", "A"), "CANCELLED");

    sb.advance(1);
    assert_eq!(status_of(&sb, "ACME", "B"), "PENDING");
    let late = cancel("B", "00123");
    assert_eq!((late.status, late.code()), (400, "ORD003"));
    assert!(
        late.field_errors()
            .contains("Order status is PENDING and cannot be cancelled")
    );
    sb.advance(1);
    assert_eq!(status_of(&sb, "ACME", "B"), "PROCESSED");
    sb.advance(5);
    let answer = fetch(&sb, "ACME", "B");
    let result = &answer.body["result"];
    assert_eq!(result["status"], "SUCCESS");
    assert_eq!(result["cardOrderName"], "B");
    assert_eq!(result["tenantName"], "ACME");
    let product = &result["productDetails"][0];
    assert_eq!(product["binNumber"], json!(412345));
    assert_eq!(product["noOfCard"], json!(100));
    assert_eq!(product["productId"], "01");
    assert_eq!(product["cardType"], "PHYSICAL");
    assert_eq!(product["status"], "SUCCESS");
    // A cancelled order stays cancelled.
    assert_eq!(status_of(&sb, "ACME", "A"), "CANCELLED");
    let by_state = &sb.inspect("/stats")["tenants"]["ACME"]["ordersByStatus"];
    assert_eq!(by_state, &json!({"CANCELLED": 1, "SUCCESS": 1}));
}

#[test]
fn the_clock_and_the_failed_share_decide_where_orders_end() {
    let sb = SandboxProcess::start(&["--advance-after", "150ms", "--failed-share", "1"]);
    assert_eq!(sb.post("/card-order", Some("ACME"), ORDER).status, 200);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(status_of(&sb, "ACME", "ORD-1"), "FAILED");

    let pending = SandboxProcess::start(&["--cancel-pending"]);
    assert_eq!(pending.post("/card-order", Some("ACME"), ORDER).status, 200);
    pending.advance(1);
    let cancel = pending.post(
        "/card-order/cancel",
        Some("ACME"),
        r#"{"orderId":"ORD-1","branchId":"00123"}"#,
    );
    assert_eq!(cancel.status, 200, "{:?}", cancel.body);
}

#[test]
fn upgrade_replaces_the_kit_once() {
    let sb = SandboxProcess::start(&[]);
    let body = r#"{"entityId":"ENT000001","kitNo":"4240000001","deliveryAddress":"PERMANENT","kitInfo":[{"aliasName":"sample","cardType":"PHYSICAL","plasticCode":"4566","tierType":"SILVER"}]}"#;
    let a = sb.post("/kit-manager/upgradeCard", Some("ACME"), body);
    assert_eq!(a.status, 200, "{:?}", a.body);
    let kit = &a.body["result"]["kitInfo"][0];
    assert_eq!(a.body["result"]["entityId"], "ENT000001");
    assert_eq!(kit["cardStatus"], "ASSIGNED");
    let new_kit = kit["kitNo"].as_str().unwrap().to_owned();
    assert_ne!(new_kit, "4240000001");
    let masked = kit["cardNumber"].as_str().unwrap();
    assert!(
        masked.starts_with("608040XXXXXX") && masked.len() == 16,
        "{masked}"
    );
    assert_eq!(kit["encryptedCardNumber"].as_str().unwrap().len(), 64);

    let kits = sb.inspect("/tenants/ACME/kits");
    let find = |no: &str| {
        kits.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kitNo"] == no)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("4240000001")["status"], "REPLACED");
    assert_eq!(find("4240000001")["replacedBy"], new_kit.as_str());
    assert_eq!(find(&new_kit)["status"], "ASSIGNED");
    assert_eq!(find(&new_kit)["aliasName"], "sample");

    let again = sb.post("/kit-manager/upgradeCard", Some("ACME"), body);
    assert_eq!((again.status, again.code()), (400, "invalid.kit.info"));
    assert!(again.field_errors().contains("is REPLACED"));
    let unknown = sb.post(
        "/kit-manager/upgradeCard",
        Some("ACME"),
        r#"{"entityId":"ENT000001","kitNo":"999"}"#,
    );
    assert_eq!(
        (unknown.code(), unknown.field_errors()),
        ("MCC007", r#"["Invalid Kit No"]"#.into())
    );
    let not_theirs = sb.post(
        "/kit-manager/upgradeCard",
        Some("ACME"),
        r#"{"entityId":"ENT000009","kitNo":"4240000002"}"#,
    );
    assert_eq!(not_theirs.code(), "MCC007");
    let long_alias = sb.post(
        "/kit-manager/upgradeCard",
        Some("ACME"),
        r#"{"entityId":"ENT000002","kitNo":"4240000002","kitInfo":[{"aliasName":"A NAME FAR TOO LONG FOR A PLASTIC CARD"}]}"#,
    );
    assert_eq!(long_alias.code(), "invalid.input.request");
    assert!(long_alias.field_errors().contains("at most 30 characters"));
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["upgrades"], 1);
}

#[test]
fn a_kits_file_seeds_the_inventory_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let kits = dir.path().join("kits.csv");
    std::fs::write(
        &kits,
        "tenant,entity_id,kit_no,status\nACME,C1,K1,ACTIVE\nACME,C2,K2,BLOCKED\n",
    )
    .unwrap();
    let sb = SandboxProcess::start(&["--kits-file", kits.to_str().unwrap()]);
    let up = |tenant: &str, entity: &str, kit: &str| {
        sb.post(
            "/kit-manager/upgradeCard",
            Some(tenant),
            &json!({"entityId": entity, "kitNo": kit}).to_string(),
        )
    };
    assert_eq!(up("ACME", "C1", "K1").status, 200);
    assert_eq!(up("ACME", "C2", "K2").code(), "invalid.kit.info");
    assert_eq!(up("OTHER", "C1", "K1").code(), "MCC007");
    // No generated kits when a file is given.
    assert_eq!(up("ACME", "ENT000001", "4240000001").code(), "MCC007");

    std::fs::write(&kits, "tenant,kit_no\nACME,K1\n").unwrap();
    let out = common::run(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--kits-file",
        kits.to_str().unwrap(),
    ]);
    assert_eq!(out.code, dcms_bulk::exit::USAGE);
    assert!(
        out.stderr.contains("kits.csv") && out.stderr.contains("entity_id"),
        "{}",
        out.stderr
    );
}

/// The statuses of the same 40 creates sent one after another.
fn statuses(args: &[&str]) -> Vec<u16> {
    let sb = SandboxProcess::start(args);
    (0..40)
        .map(|i| {
            sb.post("/card-order", Some("ACME"), &order(&format!("O{i}")))
                .status
        })
        .collect()
}

#[test]
fn faults_follow_the_seed() {
    let args = ["--seed", "7", "--error-503", "0.3", "--error-500", "0.2"];
    let first = statuses(&args);
    assert_eq!(first, statuses(&args), "same seed, same faults");
    assert!(
        first.contains(&200) && first.contains(&503) && first.contains(&500),
        "{first:?}"
    );
    assert_ne!(
        first,
        statuses(&["--seed", "8", "--error-503", "0.3", "--error-500", "0.2"])
    );
}

#[test]
fn a_faulted_create_is_stored_or_not_as_told_and_the_inspection_api_says_which() {
    // Never (the default): a 503'd create stores nothing.
    let never = SandboxProcess::start(&["--error-503", "1"]);
    let a = never.post("/card-order", Some("ACME"), ORDER);
    assert_eq!((a.status, a.code()), (503, "service.unavailable"));
    assert_eq!(never.inspect("/stats")["tenants"]["ACME"], Value::Null);
    let log = never.inspect("/faults");
    assert_eq!(log[0]["fault"], "503");
    assert_eq!(log[0]["applied"], false);
    assert_eq!(log[0]["subject"], "ORD-1");

    // Always: the order is stored, the answer is lost; a re-send is a duplicate.
    let always = SandboxProcess::start(&["--drop", "1", "--fault-applies", "always"]);
    let http = client(Duration::from_secs(5));
    let dropped = always.post_with(&http, "/card-order", Some("ACME"), ORDER);
    assert!(
        dropped.is_err(),
        "the connection should close with no answer"
    );
    assert_eq!(
        always.inspect("/tenants/ACME/orders")[0]["orderId"],
        "ORD-1"
    );
    assert_eq!(always.inspect("/faults")[0]["applied"], true);
    assert_eq!(
        always.inspect("/stats")["requests"]["/v1/card-order"]["dropped"],
        1
    );
}

#[test]
fn hung_calls_outlast_the_client() {
    let sb = SandboxProcess::start(&[
        "--hang",
        "1",
        "--hang-for",
        "3s",
        "--fault-applies",
        "always",
    ]);
    let impatient = client(Duration::from_millis(400));
    let started = std::time::Instant::now();
    let r = sb.post_with(&impatient, "/card-order", Some("ACME"), ORDER);
    assert!(r.unwrap_err().is_timeout());
    assert!(started.elapsed() < Duration::from_secs(2));
    // Applied at once, though never answered in time.
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["orders"], 1);
}

#[test]
fn latency_is_added() {
    let sb = SandboxProcess::start(&["--latency", "300ms"]);
    let started = std::time::Instant::now();
    assert_eq!(sb.post("/card-order", Some("ACME"), ORDER).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn the_rate_limit_answers_429_with_retry_after_per_tenant() {
    let sb = SandboxProcess::start(&["--rate-limit", "2", "--burst", "2"]);
    let answers: Vec<_> = (0..5)
        .map(|i| sb.post("/card-order", Some("ACME"), &order(&format!("R{i}"))))
        .collect();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        limited.len() >= 2,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in &limited {
        assert_eq!(a.code(), "too.many.requests");
        let wait: u64 = a.retry_after.as_deref().unwrap().parse().unwrap();
        assert!(wait >= 1);
    }
    // Another tenant has its own bucket.
    assert_eq!(sb.post("/card-order", Some("OTHER"), ORDER).status, 200);
    // Refused calls stored nothing.
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["orders"], ok);
}

#[test]
fn business_errors_can_come_with_http_200() {
    let injected = SandboxProcess::start(&["--business-errors", "1"]);
    let a = injected.post("/card-order", Some("ACME"), ORDER);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["result"], Value::Null);
    assert_eq!(a.code(), "sandbox.business.error");
    assert_eq!(injected.inspect("/stats")["tenants"]["ACME"], Value::Null);

    let as_200 = SandboxProcess::start(&["--errors-as-200"]);
    let a = as_200.post("/card-order", Some("ACME"), "{}");
    assert_eq!((a.status, a.code()), (200, "ORD001"));
}

#[test]
fn the_first_n_calls_fail_then_the_same_call_succeeds() {
    let sb = SandboxProcess::start(&["--fail-first", "2"]);
    let codes: Vec<u16> = (0..3)
        .map(|_| sb.post("/card-order", Some("ACME"), ORDER).status)
        .collect();
    assert_eq!(codes, [503, 503, 200]);
    assert_eq!(sb.inspect("/stats")["faults"]["fail-first"], 2);
}

#[test]
fn hostile_requests_get_a_clear_4xx_and_the_server_lives_on() {
    let sb = SandboxProcess::start(&[]);
    let http = client(Duration::from_secs(10));
    let raw = |method: reqwest::Method, path: &str, ctype: &str, body: Vec<u8>| {
        let r = http
            .request(method, format!("{}{path}", sb.base))
            .header("tenant", "ACME")
            .header("content-type", ctype)
            .body(body)
            .send()
            .unwrap();
        common::answer(r).unwrap()
    };
    let json = "application/json";
    let post = reqwest::Method::POST;
    let cases: Vec<(common::Answer, u16, &str, &str)> = vec![
        (
            raw(post.clone(), "/card-order", json, b"{\"orderId\":".to_vec()),
            400,
            "ORD001",
            "not valid JSON",
        ),
        (
            raw(
                post.clone(),
                "/card-order",
                json,
                b"{\"orderId\":\"\xff\xfe\"}".to_vec(),
            ),
            400,
            "ORD001",
            "not UTF-8",
        ),
        (
            raw(post.clone(), "/card-order", json, b"[1,2]".to_vec()),
            400,
            "ORD001",
            "JSON object",
        ),
        (
            raw(
                post.clone(),
                "/card-order/cancel",
                json,
                b"{\"orderId\":1,\"branchId\":[]}".to_vec(),
            ),
            400,
            "invalid.input.request",
            "orderId must be text",
        ),
        (
            raw(
                post.clone(),
                "/card-order/fetchStatus",
                json,
                b"{\"cardOrderId\":\"X\",\"extra\":1}".to_vec(),
            ),
            400,
            "invalid.input.request",
            "Unknown field extra",
        ),
        (
            raw(
                post.clone(),
                "/card-order",
                json,
                vec![b' '; 2 * 1024 * 1024],
            ),
            413,
            "payload.too.large",
            "",
        ),
        (
            raw(
                post.clone(),
                "/card-order",
                "text/plain",
                ORDER.as_bytes().to_vec(),
            ),
            415,
            "unsupported.media.type",
            "",
        ),
        (
            raw(reqwest::Method::GET, "/card-order", json, vec![]),
            405,
            "method.not.allowed",
            "",
        ),
        (
            raw(post.clone(), "/card-orders", json, b"{}".to_vec()),
            404,
            "not.found",
            "",
        ),
    ];
    for (a, status, code, message) in &cases {
        assert_eq!((a.status, a.code()), (*status, *code), "{:?}", a.body);
        assert!(
            a.field_errors().contains(message),
            "{message} not in {:?}",
            a.body
        );
        assert_eq!(a.body["result"], Value::Null);
    }
    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let a = raw(post, "/card-order", json, deep.into_bytes());
    assert_eq!(a.status, 400);
    assert_eq!(sb.post("/card-order", Some("ACME"), ORDER).status, 200);
}

#[test]
fn the_store_is_bounded() {
    let sb = SandboxProcess::start(&["--max-orders", "2"]);
    let codes: Vec<u16> = (0..3)
        .map(|i| {
            sb.post("/card-order", Some("ACME"), &order(&format!("M{i}")))
                .status
        })
        .collect();
    assert_eq!(codes, [200, 200, 507]);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_it_gracefully() {
    let sb = SandboxProcess::start(&[]);
    assert_eq!(sb.post("/card-order", Some("ACME"), ORDER).status, 200);
    let (code, stderr) = sb.terminate();
    assert_eq!(code, dcms_bulk::exit::OK);
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::run(&["sandbox", "--listen", &addr]);
    assert_eq!(out.code, dcms_bulk::exit::USAGE);
    assert!(
        out.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["--error-503", "1.5"][..],
        &["--error-503", "0.6", "--drop", "0.6"],
        &["--latency", "2s..1s"],
        &["--advance-after", "soon"],
    ] {
        let mut all = vec!["sandbox", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = common::run(&all);
        assert_eq!(out.code, dcms_bulk::exit::USAGE, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn the_library_runs_it_in_process_and_stops_it_on_drop() {
    let sandbox = dcms_bulk::sandbox::Sandbox::start(Default::default()).unwrap();
    let base = sandbox.base_url().to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"));
    let http = client(Duration::from_secs(5));
    let r = http
        .post(format!("{base}/card-order"))
        .header("tenant", "ACME")
        .header("content-type", "application/json")
        .body(ORDER)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let stats: Value = http
        .get(format!("{}/stats", sandbox.inspect_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["tenants"]["ACME"]["orders"], 1);
    drop(sandbox);
    let after = client(Duration::from_secs(2))
        .post(format!("{base}/card-order"))
        .send();
    assert!(after.is_err(), "the port should be closed");
}

#[test]
fn with_random_application_the_fault_log_names_exactly_the_stored_orders() {
    let sb = SandboxProcess::start(&[
        "--error-503",
        "1",
        "--fault-applies",
        "random",
        "--seed",
        "3",
    ]);
    for i in 0..30 {
        let a = sb.post("/card-order", Some("ACME"), &order(&format!("X{i}")));
        assert_eq!(a.status, 503);
    }
    let log = sb.inspect("/faults");
    let mut applied: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["applied"] == true)
        .map(|f| f["subject"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !applied.is_empty() && applied.len() < 30,
        "{}",
        applied.len()
    );
    let mut stored: Vec<String> = sb
        .inspect("/tenants/ACME/orders")
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    applied.sort();
    stored.sort();
    assert_eq!(applied, stored);
}

#[test]
fn fetch_kits_by_entity_shows_what_an_upgrade_did() {
    let sb = SandboxProcess::start(&[]);
    let before = sb.post(
        "/kit-manager/fetchKitsByEntityId",
        Some("ACME"),
        r#"{"entityId":"ENT000003"}"#,
    );
    assert_eq!(before.status, 200);
    assert_eq!(before.body["result"][0]["kitNo"], "4240000003");
    assert_eq!(before.body["result"][0]["cardStatus"], "ASSIGNED");
    let up = sb.post(
        "/kit-manager/upgradeCard",
        Some("ACME"),
        r#"{"entityId":"ENT000003","kitNo":"4240000003"}"#,
    );
    assert_eq!(up.status, 200);
    let after = sb.post(
        "/kit-manager/fetchKitsByEntityId",
        Some("ACME"),
        r#"{"entityId":"ENT000003"}"#,
    );
    let kits = after.body["result"].as_array().unwrap();
    assert_eq!(kits.len(), 2);
    assert!(
        kits.iter()
            .any(|k| k["kitNo"] == "4240000003" && k["cardStatus"] == "REPLACED")
    );
    let nobody = sb.post(
        "/kit-manager/fetchKitsByEntityId",
        Some("ACME"),
        r#"{"entityId":"NOBODY"}"#,
    );
    assert_eq!((nobody.status, nobody.code()), (404, "entity.not.found"));
}
