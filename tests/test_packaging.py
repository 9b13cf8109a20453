"""The schemas ship inside the wheel and are found there, as well as in the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from routing_runner.config.schema import schema_path

from .conftest import REPO

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it


def test_the_source_tree_schema_is_found_in_an_editable_install() -> None:
    assert schema_path("config") == REPO / "schemas" / "config.schema.json"


def test_the_wheel_carries_the_schemas_and_finds_them_as_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("routing_runner-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    assert "routing_runner/schemas/config.schema.json" in names
    assert "routing_runner/py.typed" in names  # the type hints ship (PEP 561)
    assert "routing_runner_testing/wire_server.py" in names
    assert "routing_runner/server/static/index.html" in names  # serve's chat page
    found = subprocess.run(
        [sys.executable, "-c", "from routing_runner.config.schema import schema_path; "
                               "print(schema_path('config'))"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    assert found == str(tmp_path / "site" / "routing_runner" / "schemas" / "config.schema.json")
