"""Words with a fixed meaning across the product (INTERFACE.md). (Pure.)"""

LEAD_TYPES = (
    "new_car",
    "used_car",
    "test_drive",
    "trade_in",
    "financing",
    "leasing",
    "service",
    "parts",
    "callback",
    "general",
)
