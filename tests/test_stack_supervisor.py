"""The launcher's supervisor (config.stack.Stack.supervise) on real short-lived
processes: a dead process is restarted with growing delays, and a crash loop stops the
stack with a message naming the process, its exit code and its last lines."""

from __future__ import annotations

import sys
import time

from config import stack as stack_module
from config.stack import MAX_DEATHS, Stack


def _crasher(stack: Stack, label: str = "sink") -> None:
    stack.spawn(label, [sys.executable, "-c", "print('cannot reach the thing: giving up'); raise SystemExit(3)"])


def _wait_dead(stack: Stack) -> None:
    for m in stack.procs:
        m.proc.wait(20)
    time.sleep(0.3)  # the output pump reads the last line


def test_a_dead_process_is_restarted_after_a_delay_that_doubles(tmp_path):
    stack = Stack(var=tmp_path)
    (tmp_path / "log").mkdir()
    _crasher(stack)
    _wait_dead(stack)
    stack.supervise(now=100.0)
    managed = stack.procs[0]
    assert managed.restart_at == 101.0
    first = managed.proc
    stack.supervise(now=100.5)
    assert managed.proc is first, "restarted before its delay"
    stack.supervise(now=101.0)
    assert managed.proc is not first and managed.restart_at is None
    _wait_dead(stack)
    stack.supervise(now=102.0)
    assert managed.restart_at == 104.0
    assert not stack.stopping and stack.failure is None


def test_a_crash_loop_stops_the_stack_naming_the_process_its_code_and_its_last_lines(tmp_path):
    stack = Stack(var=tmp_path)
    (tmp_path / "log").mkdir()
    _crasher(stack, "detectors")
    now = 1000.0
    for _ in range(MAX_DEATHS):
        _wait_dead(stack)
        stack.supervise(now=now)
        if stack.stopping:
            break
        now = stack.procs[0].restart_at
        stack.supervise(now=now)
    assert stack.stopping
    assert "detectors exited with code 3" in stack.failure
    assert "cannot reach the thing: giving up" in stack.failure
    assert "make run" in stack.failure
    stack.stop()


def test_deaths_older_than_the_window_are_forgotten(tmp_path, monkeypatch):
    monkeypatch.setattr(stack_module, "MAX_DEATHS", 2)
    stack = Stack(var=tmp_path)
    (tmp_path / "log").mkdir()
    _crasher(stack)
    _wait_dead(stack)
    stack.supervise(now=0.0)
    stack.supervise(now=1.0)
    _wait_dead(stack)
    stack.supervise(now=stack_module.DEATH_WINDOW_S + 10)
    assert not stack.stopping, "a death outside the window counted"
    stack.stop()


def test_a_simulator_that_finished_is_left_alone(tmp_path):
    stack = Stack(var=tmp_path)
    (tmp_path / "log").mkdir()
    stack.spawn("simulator", [sys.executable, "-c", "print('backfill sent')"])
    _wait_dead(stack)
    stack.supervise(now=5.0)
    assert stack.procs[0].restart_at is None and not stack.stopping


def test_the_simulators_backfill_line_queues_the_first_forecasts_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(stack_module.subprocess, "run",
                        lambda argv, **kw: calls.append(argv) or stack_module.subprocess.CompletedProcess(argv, 0, "", ""))
    stack = Stack(var=tmp_path)
    (tmp_path / "log").mkdir()
    line = stack_module.BACKFILL_DONE + " 10 samples in 1 batches in 0.1s (0 refused)"
    stack.spawn("simulator", [sys.executable, "-c", f"print({line!r}); print({line!r})"])
    _wait_dead(stack)
    assert len(calls) == 1
    assert "forecasting.tasks.bootstrap_forecasts" in calls[0] and "--countdown" in calls[0]


def test_stacks_with_closed_var_folders_never_share_a_database_folder(tmp_path, monkeypatch):
    """As root, under a folder other users cannot enter (/root, a mkdtemp folder), the
    embedded PostgreSQL's data goes to /var/tmp: one folder per var/ folder, so a stack on
    a fresh var/ starts on an empty database (one shared path once served a benchmark's
    "fresh" stack the forecasts of older runs), and the same var/ finds its data again."""
    monkeypatch.setattr(stack_module.os, "geteuid", lambda: 0)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    first, second = closed / "a" / "var", closed / "b" / "var"
    for var in (first, second):
        var.mkdir(parents=True)
    one, other = stack_module._pg_data_dir(first), stack_module._pg_data_dir(second)
    assert one != other and one.parent == other.parent == stack_module.Path("/var/tmp")
    assert stack_module._pg_data_dir(first) == one
