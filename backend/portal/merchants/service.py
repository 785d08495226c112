from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Permission, Principal, ScopeLevel, TenantScope
from backend.core.errors import Conflict, Forbidden, NotFound
from backend.core.field_encryption import FieldCipher, FieldDecryptionError
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.merchants.repository import MerchantRepository
from backend.portal.merchants.schemas import BankAccount, MerchantCreate, MerchantUpdate
from backend.portal.models import Merchant
from backend.portal.outbox.service import directory_outbox

logger = logging.getLogger(__name__)


def _bank_account_ad(merchant_id: uuid.UUID) -> str:
    return f"portal.merchants.bank_account:{merchant_id}"


class MerchantService:
    async def get(
        self, session: AsyncSession, principal: Principal, merchant_id: uuid.UUID
    ) -> Merchant:
        merchant = await MerchantRepository(session, principal.scope).get(merchant_id)
        if merchant is None:
            raise NotFound(f"Merchant {merchant_id} does not exist.", code="merchant_not_found")
        return merchant

    async def create(
        self, session: AsyncSession, principal: Principal, cipher: FieldCipher, body: MerchantCreate
    ) -> Merchant:
        merchant = Merchant(id=uuid.uuid4(), psp_id=principal.scope.psp_id, name=body.name)
        if body.bank_account is not None:
            self._set_bank_account(merchant, cipher, body.bank_account)
        await MerchantRepository(session, principal.scope).add(merchant)
        await audit_log.record(
            session,
            AuditEventType.MERCHANT_CREATED,
            actor=principal,
            scope=TenantScope(psp_id=merchant.psp_id, merchant_id=merchant.id),
            target_type="merchant",
            target_id=merchant.id,
        )
        await directory_outbox.merchant_changed(session, merchant)
        return merchant

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        cipher: FieldCipher,
        merchant_id: uuid.UUID,
        body: MerchantUpdate,
    ) -> Merchant:
        merchant = await self.get(session, principal, merchant_id)
        if body.status is not None and principal.scope.level is not ScopeLevel.PSP:
            raise Forbidden(
                "Only the PSP can suspend or reactivate a merchant.", code="permission_denied"
            )
        if body.name is not None:
            merchant.name = body.name
        if body.status is not None:
            merchant.status = body.status
        if body.bank_account is not None:
            self._set_bank_account(merchant, cipher, body.bank_account)
            await audit_log.record(
                session,
                AuditEventType.MERCHANT_BANK_ACCOUNT_CHANGED,
                actor=principal,
                scope=TenantScope(psp_id=merchant.psp_id, merchant_id=merchant.id),
                target_type="merchant",
                target_id=merchant.id,
                detail={"last4": merchant.bank_account_last4},
            )
        await session.flush()
        await directory_outbox.merchant_changed(session, merchant)
        return merchant

    async def bank_account(
        self,
        session: AsyncSession,
        principal: Principal,
        cipher: FieldCipher,
        merchant_id: uuid.UUID,
    ) -> BankAccount:
        merchant = await self.get(session, principal, merchant_id)
        if not principal.can(Permission.MERCHANT_BANK_ACCOUNT_READ):
            raise Forbidden(
                "Reading bank details needs merchant:bank_account:read.", code="permission_denied"
            )
        if merchant.bank_account_ciphertext is None:
            raise NotFound("No bank account is on file.", code="bank_account_not_found")
        scope = TenantScope(psp_id=merchant.psp_id, merchant_id=merchant.id)
        try:
            plaintext = cipher.decrypt(
                merchant.bank_account_ciphertext, associated_data=_bank_account_ad(merchant.id)
            )
            account = BankAccount.model_validate_json(plaintext)
        except (FieldDecryptionError, ValueError) as exc:
            # Tampered (e.g. copied from another row), damaged, or under a key no longer held:
            # a security event, not a crash. The client can only replace the account.
            logger.warning("bank account of merchant %s does not decrypt: %s", merchant.id, exc)
            await audit_log.record(
                session,
                AuditEventType.MERCHANT_BANK_ACCOUNT_VIEWED,
                outcome="failure",
                actor=principal,
                scope=scope,
                target_type="merchant",
                target_id=merchant.id,
                reason="ciphertext_invalid",
            )
            raise Conflict(
                "The bank account on file cannot be read; set it again with PATCH.",
                code="bank_account_unreadable",
                commit=True,
            ) from exc
        await audit_log.record(
            session,
            AuditEventType.MERCHANT_BANK_ACCOUNT_VIEWED,
            actor=principal,
            scope=scope,
            target_type="merchant",
            target_id=merchant.id,
        )
        return account

    def _set_bank_account(
        self, merchant: Merchant, cipher: FieldCipher, account: BankAccount
    ) -> None:
        merchant.bank_account_ciphertext = cipher.encrypt(
            account.model_dump_json(), associated_data=_bank_account_ad(merchant.id)
        )
        merchant.bank_account_last4 = account.account_number[-4:]


merchant_service = MerchantService()
