"""The launcher's log file (issue 15, finding 8): mode 0600, and no password or token in it."""

from __future__ import annotations

import stat

from config.stack import Stack


def test_the_stack_log_is_readable_by_its_owner_only_and_never_holds_the_demo_logins(tmp_path, capsys):
    (tmp_path / "log").mkdir()
    log = tmp_path / "log" / "stack.log"
    log.write_text("from an older launcher\n")
    log.chmod(0o644)
    stack = Stack(var=tmp_path)
    stack.say("stack", "healthstream is running.")
    stack.say("stack", "  Patient    sim-patient-1 / demo-patient", terminal_only=True)
    stack.say("stack", "  Device     Authorization: Device hsd_secret", terminal_only=True)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "healthstream is running." in text
    assert "demo-patient" not in text and "hsd_" not in text
    printed = capsys.readouterr().out
    assert "demo-patient" in printed and "hsd_secret" in printed

