"""The scenario's merchant, stores and people, built through the portal's real API.

A scenario names things the way a store does ("Ramen Ichiban", "Shibuya", "Aiko"); this module
keeps what those names stand for at the portal. Every scenario builds its own merchant (its
portal name gets a short unique suffix), so scenarios never share state, in-process or on a
shared deployment. The HTTP work is done by the drivers of ``tests/support/portal.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from backend.core.authz import ROLE_SCOPE_LEVEL, Role, ScopeLevel
from features.support.deployment import Deployment
from tests.support.portal import (
    PortalUser,
    create_merchant,
    create_store,
    create_user,
    register_terminal,
)

# How the feature files name roles.
ROLE_NAMES: dict[str, Role] = {
    "cashier": Role.CASHIER,
    "store manager": Role.STORE_MANAGER,
    "merchant admin": Role.MERCHANT_ADMIN,
    "auditor": Role.AUDITOR,
}


@dataclass(frozen=True)
class Store:
    name: str
    id: str
    merchant_id: str


@dataclass
class Person:
    """Someone who logs in to the portal (or a terminal's Business App)."""

    name: str
    role: Role
    user: PortalUser
    store: Store | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers


@dataclass
class Registration:
    """A terminal registered at the portal: what the person at the counter is given."""

    name: str
    terminal_id: str
    serial: str
    activation_code: str
    store: Store


@dataclass
class Merchant:
    """The scenario's merchant and everything of it, by the names the scenario uses."""

    deployment: Deployment
    name: str
    id: str
    stores: dict[str, Store] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    registrations: dict[str, Registration] = field(default_factory=dict)

    @classmethod
    def create(cls, deployment: Deployment, name: str) -> Merchant:
        suffix = uuid.uuid4().hex[:6]
        merchant_id = create_merchant(deployment.portal, deployment.admin, f"{name} {suffix}")
        return cls(deployment, name, merchant_id)

    # -- stores ---------------------------------------------------------------------------------

    def open_store(self, name: str) -> Store:
        if name in self.stores:
            return self.stores[name]
        store_id = create_store(self.deployment.portal, self.deployment.admin, self.id, name)
        store = Store(name, store_id, self.id)
        self.stores[name] = store
        return store

    def store(self, name: str) -> Store:
        try:
            return self.stores[name]
        except KeyError:
            raise AssertionError(
                f'the scenario has no store "{name}" (it has: {", ".join(self.stores) or "none"}); '
                f'add \'Given the merchant "{self.name}" has a store "{name}"\''
            ) from None

    # -- people ---------------------------------------------------------------------------------

    def hire(self, name: str, role: Role, store: Store | None = None) -> Person:
        at_store = ROLE_SCOPE_LEVEL[role] is ScopeLevel.STORE
        if at_store and store is None:
            raise AssertionError(f"a {role.value} works at a store: name it")
        user = create_user(
            self.deployment.portal,
            self.deployment.admin,
            role,
            merchant_id=self.id,
            store_id=store.id if at_store and store is not None else None,
            display_name=name,
        )
        person = Person(name, role, user, store if at_store else None)
        self.people[name] = person
        return person

    def person(self, name: str) -> Person:
        try:
            return self.people[name]
        except KeyError:
            raise AssertionError(
                f'the scenario has nobody called "{name}" '
                f"(it has: {', '.join(self.people) or 'nobody'})"
            ) from None

    # -- terminals ------------------------------------------------------------------------------

    def register_terminal(self, store: Store, name: str, by: Person | None = None) -> Registration:
        """Register a terminal at the portal (as ``by``, else the PSP admin)."""
        creator = by.user if by is not None else self.deployment.admin
        terminal_id, serial, code = register_terminal(
            self.deployment.portal, creator, store.id, name=name
        )
        registration = Registration(name, terminal_id, serial, code, store)
        self.registrations[name] = registration
        return registration

    def registration(self, name: str) -> Registration:
        try:
            return self.registrations[name]
        except KeyError:
            raise AssertionError(f'the scenario registered no terminal "{name}"') from None

    def terminal_record(self, terminal_id: str) -> dict[str, Any]:
        """The portal's record of a terminal (status, enrolled_at, ...)."""
        response = self.deployment.portal.get(
            f"/v1/terminals/{terminal_id}", headers=self.deployment.admin.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())
