"""The dashboard's trend chart as SVG geometry: computed here, drawn by templates/portal/dashboard.html."""

from __future__ import annotations

# The trend chart's canvas and the plot area inside it (the room left of it holds the y axis' labels, below it
# the x axis' labels), in SVG user units.
CHART_WIDTH, CHART_HEIGHT = 720, 240
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 76, 712, 12, 214
Y_INTERVALS = 4  # the y axis is divided in about this many round steps


def _axis_step(top: int) -> int:
    """A round step (1, 2 or 5 × a power of ten yuan, in fen) dividing 0..`top` fen in at most Y_INTERVALS."""
    step = 100
    while True:
        for factor in (1, 2, 5):
            if step * factor * Y_INTERVALS >= top:
                return step * factor
        step *= 10


def _bucket_labels(bucket, period: str) -> tuple[str, str]:
    """(short, full) names of a day, week or month: the x axis' label, and the table's and the bars' tooltips'."""
    if period == "month":
        return f"{bucket.start:%Y-%m}", f"{bucket.start:%Y-%m}"
    if period == "week":
        return f"{bucket.start:%m-%d}", f"{bucket.start:%Y-%m-%d} – {bucket.last:%m-%d}"
    return f"{bucket.start:%m-%d}", f"{bucket.start:%Y-%m-%d}"


def trend_chart(buckets, period: str) -> dict:
    """The SVG geometry of the trend: per bucket a payments bar and a refunds bar side by side with their labels,
    and the y axis' ticks at round yuan amounts (¥0, ¥500, ¥1,000 …) with their grid lines. Coordinates are whole
    units (a template would localize a float's decimal point)."""
    top = max((max(b.paid_amount, b.refunded) for b in buckets), default=0)
    step = _axis_step(top)
    scale = step * max(1, -(-top // step))  # the highest tick: the highest bar rounded up to a whole step
    height = PLOT_BOTTOM - PLOT_TOP

    def y(fen: int) -> int:
        return PLOT_BOTTOM - fen * height // scale

    def bar(x: float, width: float, fen: int) -> dict:
        # A bar of a small non-zero amount keeps one unit of height, so it does not read as nothing.
        bar_top = min(y(fen), PLOT_BOTTOM - 1) if fen else PLOT_BOTTOM
        return {"x": round(x), "width": round(width), "y": bar_top, "height": PLOT_BOTTOM - bar_top}

    slot = (PLOT_RIGHT - PLOT_LEFT) / len(buckets)
    width = slot * 0.35
    groups = []
    for index, bucket in enumerate(buckets):
        left = PLOT_LEFT + index * slot
        short, full = _bucket_labels(bucket, period)
        groups.append(
            {
                "bucket": bucket,
                "short_label": short,
                "label": full,
                "paid": bar(left + slot * 0.12, width, bucket.paid_amount),
                "refund": bar(left + slot * 0.53, width, bucket.refunded),
                "label_x": round(left + slot / 2),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": PLOT_LEFT,
        "tick_x": PLOT_LEFT - 6,
        "right": PLOT_RIGHT,
        "bottom": PLOT_BOTTOM,
        "label_y": CHART_HEIGHT - 8,
        "ticks": [{"y": y(fen), "label": f"¥{fen // 100:,}"} for fen in range(0, scale + 1, step)],
        "groups": groups,
    }
