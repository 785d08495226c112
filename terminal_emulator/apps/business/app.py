"""The Business App's process: the store's tabs, kept live through smarttab's stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from terminal_emulator.android import Application
from terminal_emulator.apps.common import TerminalServices
from terminal_emulator.backend_client import BackendError, NetworkError, SmarttabStream
from terminal_emulator.identity import IdentityError

log = logging.getLogger(__name__)

TAG = "BusinessApp"
ACTIVE_TAB_STATUSES = ("open", "paying")


class BusinessApplication(Application):
    """Holds the tab list (summaries by id) and the smarttab stream that keeps it current."""

    def __init__(self, services: TerminalServices) -> None:
        super().__init__()
        self.services = services
        self.tabs: dict[str, dict[str, Any]] = {}
        self.stream: SmarttabStream | None = None
        self.events_seen = 0
        self.listeners: list[Callable[[str | None], None]] = []
        self._refreshing: asyncio.Task[None] | None = None

    def on_create(self) -> None:
        if self.services.config.stream:
            self.launch(self._keep_stream(), name="smarttab-stream")

    # -- listeners ----------------------------------------------------------------------------

    def _changed(self, tab_id: str | None = None) -> None:
        for listener in list(self.listeners):
            try:
                listener(tab_id)
            except Exception:
                log.exception("tab listener failed")
        self.services.invalidate()

    # -- stream -------------------------------------------------------------------------------

    async def _keep_stream(self) -> None:
        identity = self.services.identity
        await identity.wait_enrolled()
        self.stream = SmarttabStream(
            self.services.smarttab_url,
            identity.access_token,
            on_event=self._on_event,
            on_resync=self.refresh_tabs,
            on_state=self._on_state,
        )
        await self.stream.run()

    def _on_state(self, connected: bool) -> None:
        self.services.set_online(connected)
        self.log.i(TAG, f"smarttab stream {'connected' if connected else 'disconnected'}")
        self._changed()

    def _on_event(self, message: dict[str, Any]) -> None:
        self.events_seen += 1
        event = str(message.get("event", ""))
        data = message.get("data") or {}
        tab_id = data.get("tab_id")
        if not event.startswith("tab.") or not tab_id:
            self._changed()
            return
        summary = self.tabs.get(tab_id)
        if summary is None:
            summary = {"id": tab_id, "label": data.get("label"), "table": data.get("table")}
        if int(data.get("version", 0)) >= int(summary.get("version", 0)):
            totals = data.get("totals") or {}
            summary.update(
                version=data.get("version"),
                status=data.get("status"),
                total=totals.get("total", summary.get("total", 0)),
                amount_paid=totals.get("amount_paid", summary.get("amount_paid", 0)),
                currency=totals.get("currency", summary.get("currency", "JPY")),
            )
            if event == "tab.opened":
                summary.update(label=data.get("label"), table=data.get("table"))
            if event == "tab.updated":
                summary.setdefault("label", data.get("label"))
        self.tabs[tab_id] = summary
        self._changed(tab_id)

    # -- REST ---------------------------------------------------------------------------------

    def refresh_tabs(self) -> None:
        """Refetch the tab list (at start, after a resync, on demand)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = self.launch(self._refresh(), name="tabs-refresh")

    async def _refresh(self) -> None:
        try:
            tabs = await self.services.smarttab.list_tabs()
        except (BackendError, NetworkError, IdentityError) as error:
            self.log.w(TAG, f"cannot list tabs: {error}")
            return
        fresh = {}
        for tab in tabs:
            known = self.tabs.get(str(tab["id"]), {})
            if int(known.get("version", 0)) > int(tab["version"]):
                fresh[str(tab["id"])] = known  # an event already told us something newer
            else:
                fresh[str(tab["id"])] = dict(tab)
        self.tabs = fresh
        self._changed()

    def active_tabs(self) -> list[dict[str, Any]]:
        return [tab for tab in self.tabs.values() if tab.get("status") in ACTIVE_TAB_STATUSES]
