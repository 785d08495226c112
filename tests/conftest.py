"""Fixtures of every test under ``tests/``.

The platform fixtures (``platform``, ``test_settings``, ``portal_client``, ...) live in
``tests/support/platform.py``, a plugin the root ``conftest.py`` registers, so the BDD suite in
``features/`` starts the same platform the same way.
"""
