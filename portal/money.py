"""Money as people type it in the console. Everything else handles integer fen only, never floats."""

from decimal import Decimal, InvalidOperation


def yuan_to_fen(text: str) -> int | None:
    """'12.34' → 1234. Exact decimal arithmetic; zero, negative, more than two decimals, more than a trillion yuan
    or a non-number → None."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    # Bounded before quantize(), which raises once a result needs more digits than the context's precision (1e30).
    if not value.is_finite() or value <= 0 or value.adjusted() >= 12:
        return None
    if value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)
