"""The one `metallm` command: built-in commands, and commands installed packages add by entry point."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint

import pytest

from metallm import cli
from metallm.cli import Command, main


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="world")


HELLO = Command(
    help="say hello", configure=_configure, run=lambda args: print(f"hello {args.name}") or 0
)
NOT_A_COMMAND = object()


@pytest.fixture
def plugins(monkeypatch):
    found = {
        "hello": EntryPoint(name="hello", value=f"{__name__}:HELLO", group=cli.COMMAND_GROUP),
        "broken": EntryPoint(
            name="broken", value="no_such_module_here:command", group=cli.COMMAND_GROUP
        ),
        "odd": EntryPoint(name="odd", value=f"{__name__}:NOT_A_COMMAND", group=cli.COMMAND_GROUP),
    }
    monkeypatch.setattr(cli, "_plugins", lambda: found)
    return found


def test_an_installed_command_runs_with_its_own_arguments(plugins, capsys):
    assert main(["hello", "--name", "metallm"]) == 0
    assert capsys.readouterr().out == "hello metallm\n"


def test_the_overview_lists_built_in_and_installed_commands(plugins, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("bench", "simulate", "evaluate", "distill", "hello"):
        assert name in out
    assert "moved: `python -m benchmarks.speed`" in out


def test_a_command_that_moved_to_the_research_harness_says_where(capsys):
    assert main(["onboard", "--data", "t.csv"]) == 2
    assert "python -m benchmarks.onboarding --help" in capsys.readouterr().err


def test_a_command_that_cannot_load_says_what_to_install(plugins, capsys):
    with pytest.raises(SystemExit) as info:
        main(["broken"])
    assert info.value.code == 2
    assert "metallm broken could not be loaded" in capsys.readouterr().err


def test_an_entry_point_that_is_not_a_command_is_refused(plugins, capsys):
    with pytest.raises(SystemExit) as info:
        main(["odd"])
    assert info.value.code == 2
    assert "is not a metallm.cli.Command" in capsys.readouterr().err


def test_an_unknown_command_is_a_usage_error(plugins, capsys):
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_demo_is_registered_by_the_langchain_adapter_not_the_core():
    from importlib.metadata import entry_points

    (demo,) = [e for e in entry_points(group=cli.COMMAND_GROUP) if e.name == "demo"]
    assert demo.value == "metallm_langchain.demo:command"
    assert isinstance(demo.load(), Command)


def test_evaluate_says_a_log_file_that_is_not_there_is_not_there(tmp_path, capsys):
    missing = tmp_path / "typo.sqlite"
    assert main(["evaluate", "--log", str(missing), "--models", "a,b"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not missing.exists()  # nothing was created in its place


def test_a_plot_without_matplotlib_fails_before_the_work(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    table = tmp_path / "t.csv"
    table.write_text("prompt,a,a|total_cost\nhi,1,0.1\n")
    assert main(["bench", "--data", str(table), "--plot", str(tmp_path / "p.png")]) == 2
    assert 'pip install "metallm[bench]"' in capsys.readouterr().err
