"""The oldest declared versions are the ones CI tests (``.ci/oldest.txt``)."""

import configparser
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _floors():
    """``{name: floor}`` of setup.cfg's install_requires (and Python)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    floors = {}
    for line in cfg["options"]["install_requires"].split("\n"):
        if line.strip():
            name, floor = re.fullmatch(r"\s*([\w-]+)>=([\w.]+)\s*", line).groups()
            floors[name] = floor
    return floors


def _pins():
    pins = {}
    for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, pin = line.split("==")
            pins[name] = pin
    return pins


def test_every_floor_is_pinned_in_the_oldest_versions_run():
    pins = _pins()
    assert {name: pins.get(name) for name in _floors()} == _floors()


@pytest.mark.skipif(not os.environ.get("SKDAE_OLDEST_VERSIONS"),
                    reason="only in the oldest-versions run of .ci/run")
def test_this_run_has_the_oldest_versions():
    assert {name: version(name) for name in _pins()} == _pins()
