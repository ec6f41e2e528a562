"""Every console example of README.md and docs/*.md runs verbatim, exits as the doc says and
prints what the doc shows (tests/cli/doc_examples.py): a drifted doc fails CI."""

from __future__ import annotations

import pytest

from tests.cli import doc_examples as docs

EXAMPLES = docs.all_examples()


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("docs")
    return workdir, docs.environment(workdir)


def test_the_docs_have_examples_and_the_readme_both_commands():
    readme = [e.command for e in EXAMPLES if e.doc == "README.md"]
    assert len(readme) >= 8
    assert any("sim serve" in c for c in readme)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_runs_as_documented(example, shell):
    workdir, env = shell
    assert docs.drift(example, docs.run(example, workdir, env)) == []


def test_drift_is_caught(shell):
    workdir, env = shell
    wrong_option = docs.Example("README.md", 1, "accelctl --fixture one-card io read card0 --offset 0 -n 6")
    assert docs.drift(wrong_option, docs.run(wrong_option, workdir, env))  # exit 2, doc says 0
    stale = docs.Example("README.md", 1, "accelctl --fixture one-card list", ["NAME  BDF"], truncated=True)
    assert docs.drift(stale, docs.run(stale, workdir, env))
