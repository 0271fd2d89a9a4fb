"""Drives the fake GitHub (tests/it/fake_github.rs) with PyGithub, an independent client, to
catch a shape the fake gets wrong. Run by `cargo test --test it pygithub` when
GREENLIGHT_PYGITHUB names a python with PyGithub installed; argv: base URL, token."""

import sys

from github import Auth, Github

base, token = sys.argv[1], sys.argv[2]
for prefix in ("", "/api/v3"):
    g = Github(base_url=base + prefix, auth=Auth.Token(token), retry=None, lazy=True)
    repo = g.get_repo("acme/shop")
    wf = repo.get_workflow("deploy.yml")
    assert wf.id == 1001 and wf.path == ".github/workflows/deploy.yml", wf
    assert wf.create_dispatch("main", {"version": "v1", "colour": "blue"}) is True
    runs = list(wf.get_runs(branch="main", event="workflow_dispatch"))
    assert runs, "the dispatched run is listed"
    run = repo.get_workflow_run(runs[0].id)
    seen = []
    for _ in range(3):
        run = repo.get_workflow_run(run.id)
        seen.append((run.status, run.conclusion))
    assert seen == [("queued", None), ("in_progress", None), ("completed", "success")], seen
    assert run.created_at.tzinfo is not None and run.html_url.startswith("https://github.com/")
    assert run.run_number >= 1 and run.event == "workflow_dispatch" and run.head_branch == "main"
    # PyGithub follows the Link header through every page.
    for v in ("v2", "v3", "v4"):
        wf.create_dispatch("main", {"version": v})
    paged = list(repo.get_workflow_runs(event="workflow_dispatch"))
    assert len({r.id for r in paged}) == len(paged) >= 4, [r.id for r in paged]
    bad = Github(base_url=base + prefix, auth=Auth.Token("wrong"), retry=None, lazy=True)
    try:
        bad.get_repo("acme/shop").get_workflow_run(1).status  # the attribute fetches it
        refused = None
    except Exception as e:  # PyGithub's BadCredentialsException
        refused = type(e).__name__
    assert refused == "BadCredentialsException", refused
print("pygithub ok")
