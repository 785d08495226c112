"""A virtual display for the window tests: Xvfb on a free display number, per test session.

The window itself runs in a subprocess (see ``drive_window.py``); the tests skip, saying why,
when Kivy or Xvfb is missing (CI installs both: ``.[dev]`` and ``.ci/run``'s apt line).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """``":N"`` of a running Xvfb (1280x1024, 24 bit)."""
    if importlib.util.find_spec("kivy") is None:
        pytest.skip("kivy is not installed (pip install -e '.[ui]')")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb libgl1 libgl1-mesa-dri)")
    # -displayfd: Xvfb picks a free display number itself and writes it to the pipe.
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail(f"Xvfb did not start (exit status {process.poll()})")
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
