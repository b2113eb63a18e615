//! The shared token guards the control endpoints whenever it is set: on a loopback bind, and
//! through the shipped nginx, which forwards the header and the query parameter to liveup.

use crate::common::daemon::{request, Daemon, JellyfinStub, Layout};
use crate::common::nginx::Nginx;

#[test]
fn a_token_set_on_a_loopback_bind_is_enforced_directly_and_through_nginx() {
    let layout = Layout::new();
    let daemon = Daemon::start(&layout.config("token = \"s3cret\""));
    let nginx = Nginx::start(&layout.hls, &daemon.url);

    let direct = |method: &str, path: &str, headers: &[(&str, &str)]| {
        request(method, &format!("{}{path}", daemon.url), headers, None).status
    };
    let proxied = |method: &str, path: &str, headers: &[(&str, &str)]| {
        nginx.request(method, path, headers).status
    };
    for (how, ask) in [
        (
            "direct",
            &direct as &dyn Fn(&str, &str, &[(&str, &str)]) -> u16,
        ),
        ("through nginx", &proxied),
    ] {
        for path in ["/api/jobs", "/api/sessions", "/api/jobs/nope"] {
            assert_eq!(ask("GET", path, &[]), 401, "{how} {path} without the token");
            assert_eq!(
                ask("GET", path, &[("X-Liveup-Token", "wrong")]),
                401,
                "{how} {path} with a wrong token"
            );
        }
        assert_eq!(ask("DELETE", "/api/jobs/nope", &[]), 401, "{how} cancel");
        assert_eq!(ask("POST", "/upscale-trigger", &[]), 401, "{how} trigger");
        assert_eq!(ask("POST", "/api/warmup", &[]), 401, "{how} warm-up");
        assert_eq!(
            ask("GET", "/api/jobs", &[("X-Liveup-Token", "s3cret")]),
            200,
            "{how} with the header"
        );
        assert_eq!(
            ask("GET", "/api/jobs?token=s3cret", &[]),
            200,
            "{how} with ?token="
        );
        // Past the guard, an empty trigger is a malformed body, not a refusal.
        assert_eq!(
            ask(
                "POST",
                "/upscale-trigger?token=s3cret",
                &[("Content-Length", "0")]
            ),
            400,
            "{how} trigger with the token"
        );
        // Not guarded: what a player and a health check need.
        assert_eq!(ask("GET", "/health", &[]), 200, "{how} health");
    }
    let refused = nginx.get("/api/jobs");
    assert_eq!(refused.json()["error"], "unauthorized", "{}", refused.body);
}

#[test]
fn configuration_errors_say_what_to_fix_and_never_ask_to_retry() {
    let layout = Layout::new();
    let jellyfin = JellyfinStub::start(Vec::new(), "the-right-key");
    let config = layout.config(&format!(
        "jellyfin_url = {:?}\njellyfin_api_key = \"a-wrong-key\"",
        jellyfin.url
    ));
    let daemon = Daemon::start(&config);
    let body = br#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":"Movie"}"#;
    let reply = daemon.post("/upscale-trigger", body);
    assert_eq!(reply.status, 501, "{}", reply.body);
    assert!(reply.header("retry-after").is_none());
    let json = reply.json();
    assert_eq!(json["error"], "jellyfin_unauthorized", "{json}");
    assert!(
        json["message"].as_str().unwrap().contains("API Keys"),
        "the fix is in the message: {json}"
    );
}
