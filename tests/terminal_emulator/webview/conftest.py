"""The WebView tests use the app tests' fixtures: the real platform, a tenant, and enrolled
emulated terminals (``make_terminal``)."""

from tests.terminal_emulator.apps.conftest import make_terminal, register, tenant, urls

__all__ = ["make_terminal", "register", "tenant", "urls"]
