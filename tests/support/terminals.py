"""Emulated terminals for tests and BDD steps: started against the session's platform, enrolled,
and known to pgw before the first payment."""

from __future__ import annotations

import asyncio

from backend.core.settings import Settings
from terminal_emulator.terminal import EmulatedTerminal
from tests.support.pgw import wait_for_directory


class SyncedTerminal(EmulatedTerminal):
    """Starts like a terminal, then waits until pgw's copy of the portal's directory knows
    it as active (the portal syncs it asynchronously after the enrollment), so the first
    payment is not refused ``TERMINAL_NOT_ACTIVE`` by a race. Set ``settings`` (the platform's)
    before ``start``."""

    settings: Settings

    async def start(self) -> EmulatedTerminal:
        await super().start()
        enrollment = self.identity.enrollment
        if enrollment is not None:
            await asyncio.to_thread(
                wait_for_directory,
                self.settings,
                store_id=enrollment.store_id,
                terminal_id=enrollment.terminal_id,
            )
        return self
