"""locust scenarios of the MPAC SmartPOS fleet (``docs/loadtest.md``).

    mpac loadtest provision --merchants 2 --stores-per-merchant 2 --terminals-per-store 3 \\
        --out fleet.json
    locust -f loadtest/locustfile.py --headless --fleet fleet.json -u 20 -r 5 -t 60s
    LOAD_SHAPE=lunch locust -f loadtest/locustfile.py --headless --fleet fleet.json -u 50 -t 300s

User classes (pick some by naming them after the options, e.g. ``... DeviceUser``):

- ``DeviceUser`` (``loadtest/users/device.py``): a terminal: device token refreshed on its TTL,
  WebSocket to smarttab, tabs and card payments, refunds, Z-close; all users but the fixed ones.
- ``PortalUser`` (``loadtest/users/portal.py``): back-office staff: login, payments search,
  settlement reports, terminals, tabs, audit log; ``--portal-users`` of them.
- ``WebhookBurstUser`` (``loadtest/users/webhooks.py``): the provider's signed webhooks to pgw,
  steady or in bursts; ``--webhook-users`` of them.

The SLO gate (``loadtest/slo.py``) judges the run when locust quits and sets the exit code.
Every option (``--fleet``, ``--think-time``, ``--slo-p95``…) is listed by ``locust -f
loadtest/locustfile.py --help`` and has an ``LOAD_*`` environment twin.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from locust import events
from locust.env import Environment

from loadtest.config import LoadConfig, SloTargets, register_options, slo_targets_from
from loadtest.fleet import FleetError, load_fleet
from loadtest.slo import install as install_slo_gate
from loadtest.users.device import DeviceUser
from loadtest.users.portal import PortalUser
from loadtest.users.webhooks import WebhookBurstUser

__all__ = ["DeviceUser", "PortalUser", "WebhookBurstUser"]

if os.environ.get("LOAD_SHAPE", "").strip().lower() == "lunch":
    from loadtest.shapes import LunchPeakShape

    __all__ += ["LunchPeakShape"]

logger = logging.getLogger("loadtest")


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_kwargs: Any) -> None:
    register_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    """On the master (or the only process): check the fleet and set the user counts."""
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return
    try:
        fleet = load_fleet(options.fleet)
        config = LoadConfig.from_options(options, fleet)
    except (FleetError, ValueError) as exc:
        logger.error("%s", exc)
        sys.exit(2)
    portal_users, webhook_users = max(0, config.portal_users), max(0, config.webhook_users)
    users = int(getattr(options, "num_users", 0) or 0)
    if users and DeviceUser in environment.user_classes and portal_users + webhook_users >= users:
        # Fixed-count users start first: leave room for at least one device.
        webhook_users = min(webhook_users, max(0, users - 1 - portal_users))
        portal_users = min(portal_users, max(0, users - 1))
        logger.warning(
            "%d users: %d portal and %d webhook users, the rest devices",
            users,
            portal_users,
            webhook_users,
        )
    for user_class, count in ((PortalUser, portal_users), (WebhookBurstUser, webhook_users)):
        if count > 0:
            user_class.fixed_count = count
        elif user_class in environment.user_classes:
            environment.user_classes.remove(user_class)
    # The report's "host"; requests use absolute URLs (three services, three ports).
    environment.host = environment.host or config.portal_url
    logger.info(
        "fleet %s: %d terminals in %d stores, %d users; portal %s, smarttab %s, pgw %s; "
        "think time %s, step pause %s",
        config.fleet_path,
        len(fleet.terminals),
        len(fleet.stores),
        len(fleet.users),
        config.portal_url,
        config.smarttab_url,
        config.pgw_url,
        config.think_time,
        config.step_pause,
    )


def _targets(environment: Environment) -> tuple[SloTargets, str]:
    options = environment.parsed_options
    return slo_targets_from(options), str(getattr(options, "slo_report", "") or "")


install_slo_gate(events, _targets)
