"""What an enquiry is made of, whatever format it came in. (Pure data.)"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from models.vocabulary import LEAD_TYPES

__all__ = ["LEAD_TYPES", "CustomerInfo", "Enquiry", "VehicleInfo"]


@dataclass
class CustomerInfo:
    name: str = ""
    first_name: str = ""
    last_name: str = ""
    salutation: str = ""
    email: str = ""
    phones: list[str] = field(default_factory=list)  # as written; normalised when matched
    street: str = ""
    postal_code: str = ""
    city: str = ""

    @property
    def display_name(self) -> str:
        return self.name or " ".join(p for p in (self.first_name, self.last_name) if p)

    def merge(self, other: CustomerInfo) -> None:
        """Fill what is empty here from ``other``; never overwrite a value with an empty one."""
        keys = ("first_name", "last_name", "salutation", "email", "street", "postal_code", "city")
        for key in keys:
            if not getattr(self, key) and getattr(other, key):
                setattr(self, key, getattr(other, key))
        if not self.display_name and other.display_name:
            self.name = other.display_name
        for phone in other.phones:
            if phone not in self.phones:
                self.phones.append(phone)


@dataclass
class VehicleInfo:
    interest: str = ""  # buy | lease | sell | trade-in | test-drive
    status: str = ""  # new | used | other
    year: int | None = None
    make: str = ""
    model: str = ""
    trim: str = ""
    vin: str = ""
    stock: str = ""
    price: float | None = None
    currency: str = ""
    odometer: int | None = None
    first_registration: str = ""
    url: str = ""
    label: str = ""  # free text where make/model could not be separated

    def is_empty(self) -> bool:
        return not any((self.make, self.model, self.vin, self.stock, self.year, self.label, self.url))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}


@dataclass
class Enquiry:
    type: str = "general"
    source: str = ""
    customer: CustomerInfo = field(default_factory=CustomerInfo)
    vehicle: VehicleInfo = field(default_factory=VehicleInfo)
    trade_ins: list[VehicleInfo] = field(default_factory=list)
    message: str = ""
    language: str = ""
    external_id: str = ""  # the sender's id of this lead (ADF <id>, portal reference)
    links: list[str] = field(default_factory=list)
    resend: bool = False
    format: str = "mail"  # adf | portal | form | mail | call
    vendor: str = ""  # ADF <vendor>: the dealership named by the sender
    # For a mail claiming a portal: verified | unverified | not_checked ("" no such claim).
    sender_check: str = ""
    sender_check_detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "source": self.source,
            "format": self.format,
            "contact": {
                "name": self.customer.display_name,
                "first_name": self.customer.first_name,
                "last_name": self.customer.last_name,
                "email": self.customer.email,
                "phones": self.customer.phones,
            },
            "vehicle": self.vehicle.as_dict(),
            "trade_ins": [v.as_dict() for v in self.trade_ins],
            "message": self.message,
            "language": self.language,
            "external_id": self.external_id,
            "links": self.links,
            "sender_check": self.sender_check or None,
            "sender_check_detail": self.sender_check_detail or None,
        }
