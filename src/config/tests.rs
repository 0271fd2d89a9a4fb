//! Parsing the config file: the default config, line numbers of errors, secrets.

use super::*;

const DEFAULT: &str = include_str!("../../config/greenlight.toml");

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn the_default_config_parses() {
    let c = parse(DEFAULT, &no_env).unwrap();
    assert_eq!(c.environments.len(), 2);
    let prod = c.env(&EnvName::new("prod")).unwrap();
    assert_eq!(prod.display_name, "Production");
    assert_eq!(prod.checklist.len(), 5);
    assert_eq!(
        c.env(&EnvName::new("staging")).unwrap().display_name,
        "Staging"
    );
    assert!(c.in_group(&UserId::new("alice"), "break-glass"));
    assert!(!c.in_group(&UserId::new("bob"), "break-glass"));
    assert!(c.in_group(&UserId::new("carol"), "reviewers"));
    assert!(!c.in_group(&UserId::new("carol"), "deployers"));
    assert_eq!(c.freezes.len(), 1);
}

fn err_of(text: &str) -> ConfigError {
    parse(text, &no_env).expect_err("should fail")
}

#[test]
fn errors_point_at_the_line() {
    let base = "[users.a]\ngroups = [\"deployers\", \"reviewers\"]\n[environments.x.deploy]\ndriver = \"local\"\n";
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("{base}[bot]\ntimezone = \"Mars/Base\"\n"), 6, "unknown timezone"),
        (format!("{base}[bot]\nbogus = 1\n"), 6, "unknown field"),
        (format!("{base}[[freeze]]\nname = \"f\"\ncron = \"0 17 * *\"\nduration = \"1h\"\n"), 7, "freeze \"f\""),
        (format!("{base}[[freeze]]\nname = \"f\"\ncron = \"0 17 * * 5\"\nduration = \"1 fortnight\"\n"), 8, "freeze \"f\""),
        (format!("{base}[environments.x]\nchecklist_expiry = \"soon\"\n"), 6, "not a duration"),
        (format!("{base}[environments.x]\ndeployers = \"ops\"\n"), 6, "nobody in it"),
        (format!("{base}[[environments.x.checklist]]\ntext = \"t\"\ngroup = \"qa\"\n"), 7, "nobody in it"),
        (format!("{base}[environments.x.monitor]\nerror_rate = 5.0\n"), 6, "fraction"),
        (format!("{base}[environments.y]\ndisplay_name = \"Y\"\n"), 5, "has no [environments.y.deploy]"),
        (format!("{base}[bot\n"), 5, ""),
    ];
    for (text, line, msg) in cases {
        let e = err_of(&text);
        assert_eq!(e.line, Some(line), "{text}\n-> {e}");
        assert!(e.message.contains(msg), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn secrets_come_from_the_environment() {
    let text = "[users.a]\ngroups = [\"deployers\"]\n[environments.x.deploy]\ndriver = \"local\"\n[environments.x.smoke_vars]\npassword = \"${DEMO_PASSWORD}\"\n";
    let e = parse(text, &no_env).unwrap_err();
    assert_eq!(e.line, Some(6));
    assert!(e.message.contains("DEMO_PASSWORD"), "{e}");
    let c = parse(text, &|n| {
        (n == "DEMO_PASSWORD").then(|| "s3cret".to_string())
    })
    .unwrap();
    let x = c.env(&EnvName::new("x")).unwrap();
    assert_eq!(x.smoke_vars["password"], "s3cret");
    assert_eq!(x.secrets, vec!["s3cret".to_string()]);
}

#[test]
fn inactive_platforms_warn() {
    let text = "[slack]\nmode = \"socket\"\n[users.a]\ngroups = [\"deployers\"]\n[environments.x.deploy]\ndriver = \"local\"\n";
    let c = parse(text, &no_env).unwrap();
    assert!(c.warnings[0].contains("SLACK_BOT_TOKEN"));
}

// ---- the core's rules, built from the file -----------------------------------------------

/// The core's tests use rules written in Rust; they must be what the file says.
#[test]
fn the_demo_rules_of_the_core_tests_are_the_default_config() {
    let c = parse(DEFAULT, &no_env).unwrap();
    assert_eq!(
        format!("{:?}", c.rules()),
        format!("{:?}", crate::core::rules::build::demo())
    );
}

#[test]
fn rules_of_a_command_environment_take_the_defaults_and_the_stated_live_colour() {
    let cfg = |live: &str| {
        format!(
            r#"
[users.alice]
groups = ["deployers"]
[environments.qa]
[environments.qa.deploy]
driver = "command"
deploy_idle = ["deploy", "{{version}}", "{{colour}}"]
switch = ["switch", "{{colour}}"]
{live}
blue_url = "http://127.0.0.1:9001"
green_url = "http://127.0.0.1:9002"
"#
        )
    };
    let qa = EnvName::new("qa");
    let rules = parse(&cfg(""), &no_env).unwrap().rules();
    assert_eq!(rules.envs[&qa], crate::core::rules::build::env("qa"));
    let rules = parse(&cfg(r#"live = "green""#), &no_env).unwrap().rules();
    assert_eq!(
        rules.envs[&qa].stated_live,
        Some(Some(crate::core::Colour::Green))
    );
    // A bad statement is a config error.
    let err = parse(&cfg(r#"live = "purple""#), &no_env).unwrap_err();
    assert!(format!("{err}").contains("is not a colour"), "{err}");
}

#[test]
fn ci_evidence_items_read_a_configured_forge() {
    let base = "[users.a]\ngroups = [\"deployers\", \"reviewers\"]\n[environments.x.deploy]\ndriver = \"local\"\n";
    let github = "[github]\ntoken = \"${GH_TOKEN}\"\nrepo = \"acme/shop\"\n";
    let item = "[[environments.x.checklist]]\ntext = \"CI\"\nevidence = \"ci\"\nrequired = [\"build\", \"test\"]\n";
    let env = |n: &str| (n == "GH_TOKEN").then(|| "ghp_secret".to_string());
    let c = parse(&format!("{base}{github}{item}"), &env).unwrap();
    let it = &c.env(&EnvName::new("x")).unwrap().checklist[0];
    let ci = it.evidence.as_ref().unwrap();
    assert_eq!(ci.source, crate::evidence::schema::Source::Github);
    assert_eq!(ci.required, vec!["build", "test"]);
    assert_eq!(ci.recheck, std::time::Duration::from_secs(30));
    let gh = c.forges.github.as_ref().unwrap();
    assert_eq!(gh.api_url, "https://api.github.com");
    assert_eq!(gh.token, "ghp_secret");
    assert!(
        !format!("{c:?}").contains("ghp_secret"),
        "the token stays out of Debug"
    );
    let rules = c.rules();
    assert!(rules.envs[&EnvName::new("x")].evidence(0).is_some());
    assert_eq!(c.evidence_items().len(), 1);

    let gitlab = "[gitlab]\ntoken = \"${GH_TOKEN}\"\nproject = \"acme/shop\"\n";
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("{base}{github}[[environments.x.checklist]]\ntext = \"CI\"\nevidence = \"staging\"\n"), 10, "evidence \"staging\" is not known"),
        (format!("{base}{github}[[environments.x.checklist]]\ntext = \"CI\"\nrequired = [\"b\"]\n"), 10, "required needs evidence = \"ci\""),
        (format!("{base}{item}"), 7, "needs a [github] or [gitlab] section"),
        (format!("{base}{github}{item}source = \"gitlab\"\n"), 10, "no [gitlab] section"),
        (format!("{base}{github}{gitlab}{item}"), 13, "say which with source"),
        (format!("{base}[github]\ntoken = \"ghp_literal\"\nrepo = \"acme/shop\"\n"), 6, "${NAME} reference"),
        (format!("{base}[github]\ntoken = \"${{NOPE}}\"\nrepo = \"acme/shop\"\n"), 6, "NOPE is not set"),
        (format!("{base}[github]\napi_url = \"http://github.example\"\ntoken = \"${{GH_TOKEN}}\"\nrepo = \"acme/shop\"\n"), 6, "only for a loopback"),
        (format!("{base}[github]\ntoken = \"${{GH_TOKEN}}\"\nrepo = \"shop\"\n"), 7, "not owner/name"),
        (format!("{base}{github}{item}recheck = \"often\"\n"), 12, "not a duration"),
    ];
    for (text, line, msg) in cases {
        let e = parse(&text, &env).expect_err(&text);
        assert_eq!(e.line, Some(line), "{text}\n-> {e}");
        assert!(e.message.contains(msg), "{e}");
        assert!(
            !e.to_string().contains('\n') && !e.to_string().contains("ghp_secret"),
            "{e}"
        );
    }
    // Both forges, the item names one.
    let c = parse(
        &format!("{base}{github}{gitlab}{item}source = \"gitlab\"\n"),
        &env,
    )
    .unwrap();
    let ci = c.env(&EnvName::new("x")).unwrap().checklist[0]
        .evidence
        .clone()
        .unwrap();
    assert_eq!(ci.source, crate::evidence::schema::Source::Gitlab);
    assert_eq!(
        c.forges.gitlab.unwrap().api_url,
        "https://gitlab.com/api/v4"
    );
}

#[test]
fn one_gitlab_section_serves_the_gitlab_step_and_the_evidence() {
    let base = "[users.a]\ngroups = [\"deployers\", \"reviewers\"]\n";
    let step = "[environments.x.deploy]\ndriver = \"gitlab\"\nblue_url = \"http://b\"\ngreen_url = \"http://g\"\n[environments.x.traffic]\ndriver = \"command\"\nswitch = [\"s\", \"{colour}\"]\nlive = \"none\"\n";
    let env = |n: &str| match n {
        "GL_TOKEN" => Some("glpat-secret".to_string()),
        "GL_TRIGGER" => Some("glptt-secret".to_string()),
        _ => None,
    };
    // A trigger token alone deploys, but reads no CI: no evidence forge.
    let gitlab = "[gitlab]\ntrigger_token = \"${GL_TRIGGER}\"\nproject = \"acme/shop\"\n";
    let c = parse(&format!("{base}{gitlab}{step}"), &env).unwrap();
    assert!(c.forges.gitlab.is_none());
    let x = c.env(&EnvName::new("x")).unwrap();
    assert_eq!(x.secrets, vec!["glptt-secret".to_string()]);
    let DeployConfig::Gitlab(g) = &x.deploy else {
        panic!("{:?}", x.deploy)
    };
    assert_eq!(g.settings.project, "acme/shop");
    // With an access token and a project, the evidence reads the same section.
    let gitlab = "[gitlab]\ntoken = \"${GL_TOKEN}\"\nproject = \"acme/shop\"\n";
    let c = parse(&format!("{base}{gitlab}{step}"), &env).unwrap();
    let forge = c.forges.gitlab.as_ref().unwrap();
    assert_eq!(
        (forge.token.as_str(), forge.repo.as_str()),
        ("glpat-secret", "acme/shop")
    );
    // A literal token is refused at its line, used or not.
    let e = parse(
        &format!("{base}[gitlab]\ntrigger_token = \"glptt-literal\"\n{step}"),
        &env,
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message
            .starts_with("[gitlab] trigger_token must be a ${NAME} reference"),
        "{e}"
    );
}

#[test]
fn revert_needs_a_forge_it_knows() {
    let base = "[users.a]\ngroups = [\"deployers\"]\n[environments.x]\nrevert = \"github\"\n[environments.x.deploy]\ndriver = \"local\"\n";
    let env = |n: &str| (n == "GH_TOKEN").then(|| "ghp_secret".to_string());
    let e = parse(base, &env).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message
            .contains("revert = \"github\" needs token and repo in the [github] section"),
        "{e}"
    );
    let github = "[github]\ntoken = \"${GH_TOKEN}\"\nrepo = \"acme/shop\"\n";
    let c = parse(&format!("{base}{github}"), &env).unwrap();
    let x = c.env(&EnvName::new("x")).unwrap();
    assert!(matches!(
        &x.revert,
        Some(crate::deploy::schema::RevertConfig::GitHub(s)) if s.repo == "acme/shop"
    ));
    assert!(
        x.secrets.contains(&"ghp_secret".to_string()),
        "the token is masked"
    );
    assert!(c.rules().envs[&EnvName::new("x")].revert);
    let e = parse(
        &format!("{github}{}", base.replace("\"github\"", "\"svn\"")),
        &env,
    )
    .unwrap_err();
    assert!(e.message.contains("revert = \"svn\" is not known"), "{e}");
}

#[test]
fn revert_on_gitlab_needs_an_access_token() {
    let base = "[users.a]\ngroups = [\"deployers\"]\n[environments.x]\nrevert = \"gitlab\"\n[environments.x.deploy]\ndriver = \"local\"\n";
    let env = |n: &str| (n == "GL_TOKEN").then(|| "glpat_secret".to_string());
    let e = parse(base, &env).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message
            .contains("needs project and token (an access token)"),
        "{e}"
    );
    // A trigger token alone cannot open a merge request.
    let trigger = "[gitlab]\nproject = \"acme/shop\"\ntrigger_token = \"${GL_TOKEN}\"\n";
    assert!(parse(&format!("{base}{trigger}"), &env).is_err());
    let gitlab = "[gitlab]\nproject = \"acme/shop\"\ntoken = \"${GL_TOKEN}\"\n";
    let c = parse(&format!("{base}{gitlab}"), &env).unwrap();
    let x = c.env(&EnvName::new("x")).unwrap();
    assert!(matches!(
        &x.revert,
        Some(crate::deploy::schema::RevertConfig::GitLab(s)) if s.project == "acme/shop"
    ));
    assert!(x.secrets.contains(&"glpat_secret".to_string()));
}
