"""Plugins of both test trees: ``tests/`` (pytest) and ``features/`` (pytest-bdd).

``pytest_plugins`` may only be declared here, in the root conftest; what one tree alone needs
stays in its own ``conftest.py``.
"""

from features.steps import STEP_MODULES

pytest_plugins = [
    # The platform under test (database, Redis, services on real ports).
    "tests.support.platform",
    # --terminal / --adb-serial and the terminal_driver fixture (docs/android-bridge.md).
    "android_bridge.pytest_plugin",
    # The BDD step library: every step module, so every feature file can use every step.
    *STEP_MODULES,
]
