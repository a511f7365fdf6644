"""Records about customers themselves: merges and erasures (ids and counts, no personal data)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from omniroute.shared.db import Base, UTCDateTime
from omniroute.shared.events import utcnow


class CustomerMerge(Base):
    """Two customers found to be one person: `merged_id` was folded into `customer_id`."""

    __tablename__ = "customer_merges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # No foreign keys: the record outlives both rows (the merged one is deleted).
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    merged_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(64))  # "supervisor" or "shared identity"
    identities_moved: Mapped[int] = mapped_column(Integer, default=0)
    conversations_moved: Mapped[int] = mapped_column(Integer, default=0)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Erasure(Base):
    """That a customer's personal data was erased (GDPR art. 17): when, by whom, how much."""

    __tablename__ = "erasures"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    actor: Mapped[str] = mapped_column(String(100))
    conversations: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    identities: Mapped[int] = mapped_column(Integer, default=0)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
