"""The Kivy window of the emulated SmartPOS terminal.

It renders the :class:`~terminal_emulator.presentation.Screen` values a presenter gives and
forwards input to it; no behaviour lives here. Importing this package does not import Kivy:
``terminal_emulator.ui.app`` does (and opens no window until ``run_window``).
"""

from __future__ import annotations

import os

# Kivy reads sys.argv on import unless told not to: the window is started by `mpac terminal`,
# whose arguments are not Kivy's.
os.environ.setdefault("KIVY_NO_ARGS", "1")
