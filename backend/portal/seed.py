"""Demo data for ``mpac up --demo`` / ``mpac seed``: one PSP, one merchant, two stores,
a user of every role and a terminal waiting for enrollment. Safe to run again."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import create_engine, create_sessionmaker
from backend.core.field_encryption import FieldCipher
from backend.core.passwords import Passwords
from backend.core.settings import Settings
from backend.portal.auth.repository import CredentialRepository
from backend.portal.merchants.repository import MerchantRepository
from backend.portal.merchants.schemas import BankAccount, MerchantCreate
from backend.portal.merchants.service import merchant_service
from backend.portal.psps.service import principal_of, psp_service
from backend.portal.stores.repository import StoreRepository
from backend.portal.stores.schemas import StoreCreate
from backend.portal.stores.service import store_service
from backend.portal.terminals.repository import TerminalRepository
from backend.portal.terminals.schemas import TerminalCreate
from backend.portal.terminals.service import terminal_service
from backend.portal.users.schemas import UserCreate
from backend.portal.users.service import user_service

DEMO_PASSWORD = "demo-password-123"
DEMO_PSP_ADMIN = "psp.admin@demo.mpac.example"
DEMO_TERMINAL_SERIAL = "DEMO-SHIBUYA-001"


@dataclass
class DemoSeed:
    portal_url: str
    psp_id: str = ""
    merchant_id: str = ""
    store_ids: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # role -> e-mail
    terminal_id: str = ""
    terminal_serial: str = DEMO_TERMINAL_SERIAL
    activation_code: str | None = None
    terminal_status: str = "pending"

    def lines(self) -> list[str]:
        lines = [
            "Demo tenant",
            f"  PSP {self.psp_id}",
            f"  merchant 'Demo Ramen' {self.merchant_id}",
            *(f"  store '{name}' {store_id}" for name, store_id in self.store_ids.items()),
            f"Demo users (password for all: {DEMO_PASSWORD})",
            *(f"  {role:<15} {email}" for role, email in self.users.items()),
            f"Demo terminal {self.terminal_serial} ({self.terminal_id}), {self.terminal_status}",
        ]
        if self.activation_code:
            lines.append(f"  activation code: {self.activation_code} (valid 24 h, single use)")
        lines.append(
            f"  log in: curl -s -X POST {self.portal_url}/v1/auth/login "
            f"-H 'content-type: application/json' "
            f"""-d '{{"email":"{DEMO_PSP_ADMIN}","password":"{DEMO_PASSWORD}"}}'"""
        )
        return lines


async def _seed(session: AsyncSession, settings: Settings) -> DemoSeed:
    passwords = Passwords(settings)
    cipher = FieldCipher.from_spec(settings.field_encryption_keys)
    seed = DemoSeed(portal_url=settings.resolved_portal_url)
    admin = await CredentialRepository(session).by_email(DEMO_PSP_ADMIN)
    if admin is None:
        _, admin = await psp_service.create_with_admin(
            session,
            passwords,
            name="Demo PSP",
            admin_email=DEMO_PSP_ADMIN,
            admin_password=DEMO_PASSWORD,
        )
    psp_admin = principal_of(admin)
    seed.psp_id = str(psp_admin.scope.psp_id)
    seed.users["psp_admin"] = DEMO_PSP_ADMIN

    merchants, _ = await MerchantRepository(session, psp_admin.scope).page(limit=1, after=None)
    merchant = (
        merchants[0]
        if merchants
        else await merchant_service.create(
            session,
            psp_admin,
            cipher,
            MerchantCreate(
                name="Demo Ramen",
                bank_account=BankAccount(
                    bank_name="Demo Bank",
                    branch="Shibuya",
                    account_number="1234567",
                    holder_name="Demo Ramen KK",
                ),
            ),
        )
    )
    seed.merchant_id = str(merchant.id)
    existing_stores = {s.name: s for s in await StoreRepository(session, psp_admin.scope).list()}
    stores = {}
    for name in ("Shibuya", "Shinjuku"):
        store = existing_stores.get(name) or await store_service.create(
            session, psp_admin, StoreCreate(merchant_id=merchant.id, name=name)
        )
        stores[name] = store
        seed.store_ids[name] = str(store.id)

    shibuya = stores["Shibuya"]
    for role, store_scoped in (
        ("merchant_admin", False),
        ("auditor", False),
        ("store_manager", True),
        ("cashier", True),
    ):
        email = f"{role.replace('_', '.')}@demo.mpac.example"
        seed.users[role] = email
        if await CredentialRepository(session).by_email(email) is None:
            await user_service.create(
                session,
                psp_admin,
                passwords,
                UserCreate(
                    email=email,
                    display_name=f"Demo {role.replace('_', ' ')}",
                    password=DEMO_PASSWORD,
                    role=role,
                    merchant_id=merchant.id,
                    store_id=shibuya.id if store_scoped else None,
                ),
            )

    terminals, _ = await TerminalRepository(session, psp_admin.scope).search(
        store_id=shibuya.id, status=None, limit=200, after=None
    )
    terminal = next((t for t in terminals if t.serial == DEMO_TERMINAL_SERIAL), None)
    ttl = settings.activation_code_ttl_s
    if terminal is None:
        terminal, activation = await terminal_service.register(
            session,
            psp_admin,
            TerminalCreate(
                store_id=shibuya.id, serial=DEMO_TERMINAL_SERIAL, name="Shibuya counter 1"
            ),
            code_ttl_s=ttl,
        )
        seed.activation_code = activation.activation_code
    elif terminal.status == "pending":
        # Codes are stored hashed, so a rerun can only show a fresh one.
        activation = await terminal_service.reissue_activation_code(
            session, psp_admin, terminal.id, code_ttl_s=ttl
        )
        seed.activation_code = activation.activation_code
    seed.terminal_id = str(terminal.id)
    seed.terminal_status = terminal.status
    return seed


async def seed_demo(settings: Settings) -> DemoSeed:
    engine = create_engine(settings, application_name="mpac-seed")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await _seed(session, settings)
    finally:
        await engine.dispose()
