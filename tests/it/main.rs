//! Integration tests: the real binary, driven through the local channel API, with demo apps,
//! sled on disk and real HTTP on 127.0.0.1. One test crate so heavy dependencies link once.

mod argocd;
mod cli;
mod command_driver;
mod crash;
mod deploy_files;
mod discord;
mod evidence;
mod fake_argocd;
mod fake_argocd_tests;
mod fake_common;
mod fake_discord;
mod fake_discord_tests;
mod fake_evidence_tests;
mod fake_github;
mod fake_github_checks;
mod fake_github_git;
mod fake_github_tests;
mod fake_gitlab_pipelines;
mod fake_slack;
mod fake_slack_tests;
mod freeze;
mod github_actions;
mod github_revert;
mod haproxy_prometheus;
mod harness;
mod kubernetes;
mod layering;
mod lifecycle;
mod local_api;
mod page;
mod revert;
mod rollback;
mod slack;
mod trust;
