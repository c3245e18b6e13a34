"""The README's command-line section works as typed: its commands, read from the README, run in
order in a copy of the project set up as `make install` sets up a fresh clone (its `.env`
written by the Makefile's own rule), each in its own process, on a fresh SQLite database,
with no setting from this process's environment and no network (tasks run in-process).

Each command must exit 0 and say what it did; a command the README gains needs its line in
`EXPECTED` below, so the test keeps checking what the README promises.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.project_copy import ROOT, clean_environment, project_copy

SECTION = "## Command line"
PREFIX = [".venv/bin/python", "manage.py"]
# What each command's output must say (a regular expression, searched in stdout + stderr).
EXPECTED = {
    "migrate": r"Applying annotations\.0001_initial\.\.\. OK",
    "create_user": r"created (rater|researcher|release_owner|admin) \S+",
    "create_study": r"created study (\S+): draft \(Draft\)\n.*manage\.py transition_study \1 open",
    "import_pairs": r"imported \d+ items",
    "blinding_audit": r"blinding audit: AUC raw \S+ .*: ok",
    "transition_study": r"study \S+: draft -> open \(Collecting\)",
    "assign_raters": r"\d+ rater\(s\) on \S+",
    "prescore": r"job \d+ done: \d+/\d+ chunks done",
    "export_judgments": r"wrote \d+ judgments to \S+",
    "export_scores": r"wrote [1-9]\d* rows to \S+",
    "agreement_report": r"wrote \S+\.html",
    "submit_run": r"run \S+ created study \S+",
    "seed_demo": r"demo run (\S+): ready for sign-off; .*; verdict pass; .*/runs/\1/signoff/",
    "signoff": r"approve recorded \(report [0-9a-f]{12}\.\.\.\); study is signed_off",
}
SECONDS_PER_COMMAND = 240


def readme_commands() -> list[str]:
    """The lines of the first `sh` block under the README's command-line heading, without
    blank lines and comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{SECTION}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no ```sh block under {SECTION!r}"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_block_names_only_commands_this_test_checks() -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    for line in commands:
        assert not line.endswith("\\"), f"one command a line: {line}"
        args = shlex.split(line, comments=True)
        assert args[:2] == PREFIX, f"README commands run as {' '.join(PREFIX)} ...: {line}"
        assert args[2] in EXPECTED, f"add what `{args[2]}` must print to EXPECTED"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the set-up command)")
def test_the_readme_commands_run_as_typed_on_a_fresh_clone(tmp_path) -> None:
    project = project_copy(tmp_path / "clone")
    environment = clean_environment()
    # The set-up's .env rule, run by make as `make install` runs it (the venv is linked).
    setup = subprocess.run(
        ["make", "--no-print-directory", ".env", f"PYTHON={sys.executable}"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    env_file = (project / ".env").read_text(encoding="utf-8")
    assert "DEBUG=1" in env_file and re.search(r"^SECRET_KEY=\S{40,}$", env_file, re.M)

    started = time.monotonic()
    for line in readme_commands():
        args = shlex.split(line, comments=True)
        result = subprocess.run(
            args,
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SECONDS_PER_COMMAND,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"`{line}` exited {result.returncode}:\n{output[-3000:]}"
        assert re.search(EXPECTED[args[2]], output, re.S), f"`{line}` printed:\n{output[-3000:]}"
        if "--out" in args:
            written = project / args[args.index("--out") + 1]
            assert written.is_file() and written.stat().st_size > 0, f"`{line}` wrote nothing"
    assert (project / "db.sqlite3").is_file()  # the copy's own database, not a configured one
    print(f"README commands: {time.monotonic() - started:.1f} s")  # noqa: T201
