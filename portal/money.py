"""Money as people type it in the console. Everything else handles integer fen only (STYLE §3)."""

from decimal import Decimal, InvalidOperation


def yuan_to_fen(text: str) -> int | None:
    """'12.34' → 1234. Exact decimal arithmetic; zero, negative, more than two decimals or a non-number → None."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")) or value <= 0:
        return None
    return int(value * 100)
