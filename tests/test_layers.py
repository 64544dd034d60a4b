"""The one-way layers (pyproject.toml, [tool.importlinter]) hold on this tree, and the
contract does fail when a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("lib", "care", "alerts", "ingest", "streams", "forecasting", "coaching", "api")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_sources(dest: Path) -> None:
    """The layer packages' Python files and the contract, nothing else (fast to copy)."""
    for package in LAYERS:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("node_modules", "static", "templates",
                                                      "__pycache__", "*.js", "*.json", "*.mjs"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    # The copy must shadow any installed checkout: put it first on the path.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    if not LINT_IMPORTS.exists():
        pytest.fail(f"import-linter is not installed next to {sys.executable} (make install)")
    dest = tmp_path_factory.mktemp("layers")
    _copy_sources(dest)
    return dest


def test_the_layers_contract_holds_on_this_tree(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layers KEPT" in result.stdout


def test_an_upward_import_from_care_to_the_api_breaks_the_layers_contract(tree):
    planted = tree / "care" / "planted.py"
    planted.write_text("from api import views  # an upward import, planted by the test\n")
    try:
        result = _lint(tree)
    finally:
        planted.unlink()
    assert result.returncode != 0
    assert "layers BROKEN" in result.stdout
    assert "care.planted -> api.views" in result.stdout


def test_a_lower_layer_importing_rest_framework_breaks_the_http_contract(tree):
    planted = tree / "alerts" / "planted.py"
    planted.write_text("from rest_framework import exceptions  # planted by the test\n")
    try:
        result = _lint(tree)
    finally:
        planted.unlink()
    assert result.returncode != 0
    assert "only api speaks HTTP (rest_framework, drf_spectacular) BROKEN" in result.stdout
