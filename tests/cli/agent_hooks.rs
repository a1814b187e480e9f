//! Webhook deliveries to a real agent: signatures checked before the body is parsed, replays
//! starting nothing, unknown repositories and oversize bodies refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::agent::{wait_for, Setup, TOKEN};

const SECRET: &str = "It's a Secret to Everybody";
const VECTOR_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn push(repo: &str, commit: &str) -> String {
    format!("{{\"ref\":\"refs/heads/main\",\"after\":\"{commit}\",\"repository\":{{\"name\":\"{repo}\",\"full_name\":\"acme/{repo}\"}}}}")
}

#[test]
fn github_deliveries_are_verified_before_parsing_and_a_replay_starts_nothing() {
    let setup = Setup::new("jobs:\n  hello:\n    script: [echo hooked]\n");
    setup.config(
        "backend = \"local\"\nmax_body = 4096",
        &format!("github_secret = \"{SECRET}\"\ngitlab_token = \"gitlab-secret-0123456789\""),
    );
    let agent = setup.start();
    let deliver = |body: &str, signature: Option<&str>, delivery: &str| {
        let mut headers = vec![
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("Content-Type", "application/json"),
        ];
        if let Some(s) = signature {
            headers.push(("X-Hub-Signature-256", s));
        }
        agent.request("POST", "/hooks/github", &headers, body.as_bytes())
    };
    // GitHub's published vector passes the check; the body is then no push payload.
    let vector = deliver("Hello, World!", Some(VECTOR_SIGNATURE), "v-1");
    assert_eq!(vector.status, 422, "{}", vector.body);
    assert_eq!(
        deliver("Hello, World?", Some(VECTOR_SIGNATURE), "v-2").status,
        401
    );
    let commit = setup.head();
    let body = push("web", &commit);
    assert_eq!(
        deliver(&body, Some(&sign("another secret", &body)), "d-0").status,
        401
    );
    assert_eq!(deliver(&body, None, "d-0").status, 401);
    let unknown = push("other", &commit);
    assert_eq!(
        deliver(&unknown, Some(&sign(SECRET, &unknown)), "d-x").status,
        404
    );
    let padded = format!(
        "{},\"pad\":\"{}\"}}",
        &body[..body.len() - 1],
        "x".repeat(5000)
    );
    assert_eq!(
        deliver(&padded, Some(&sign(SECRET, &padded)), "d-big").status,
        413
    );
    let queued = deliver(&body, Some(&sign(SECRET, &body)), "d-1");
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(queued.json()["queued"]["trigger"], "github");
    let replay = deliver(&body, Some(&sign(SECRET, &body)), "d-1");
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.json()["duplicate"], true);
    agent.run_of(&commit, "passed");
    // GitLab: its token, compared as a secret.
    let gitlab = format!("{{\"object_kind\":\"push\",\"ref\":\"refs/heads/main\",\"after\":\"{commit}\",\"project\":{{\"name\":\"web\",\"path_with_namespace\":\"acme/web\"}}}}");
    let wrong = agent.request(
        "POST",
        "/hooks/gitlab",
        &[("X-Gitlab-Token", "wrong")],
        gitlab.as_bytes(),
    );
    assert_eq!(wrong.status, 401);
    let right = agent.request(
        "POST",
        "/hooks/gitlab",
        &[
            ("X-Gitlab-Token", "gitlab-secret-0123456789"),
            ("X-Gitlab-Event-UUID", "g-1"),
        ],
        gitlab.as_bytes(),
    );
    assert_eq!(right.status, 202, "{}", right.body);
    wait_for("both runs", || {
        (agent
            .runs()
            .iter()
            .filter(|r| r["state"] == "passed")
            .count()
            == 2)
            .then_some(())
    });
    // The replayed delivery started nothing: one run from GitHub, one from GitLab.
    let triggers: Vec<String> = agent
        .runs()
        .iter()
        .map(|r| r["trigger"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(triggers, ["gitlab", "github"]);
    let metrics = agent.get("/metrics", Some(TOKEN)).body;
    for line in [
        "pipe_agent_webhook_deliveries_total{source=\"github\",result=\"unauthorized\"} 3",
        "pipe_agent_webhook_deliveries_total{source=\"github\",result=\"duplicate\"} 1",
        "pipe_agent_webhook_deliveries_total{source=\"github\",result=\"queued\"} 1",
        "pipe_agent_webhook_deliveries_total{source=\"github\",result=\"unknown_repository\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(agent.stop(), 0);
}
