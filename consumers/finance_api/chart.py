"""Revenue per day by billing model as an SVG stacked bar chart, rendered on the server.

No JavaScript and no build step: the page embeds the SVG as is. Colours are fixed per
billing model so the same model has the same colour on every day and every page.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

WIDTH_PX = 720
HEIGHT_PX = 260
MARGIN_PX = 40
LEGEND_PX = 150
# More days than this would make bars thinner than a pixel: the page asks for a period.
DAYS_MAX = 120
COLOURS = {
    "ad_hoc_terminal": "#4e79a7", "wallet": "#f28e2b", "pre_authorization": "#e15759",
    "post_paid": "#76b7b2", "corporate": "#59a14f", "subscription_prepaid": "#edc948",
    "subscription_postpaid": "#b07aa1", "open_access": "#bab0ac",
}
OTHER_COLOUR = "#9c755f"


def revenue_svg(days: dict[str, dict[str, Decimal]], currency: str) -> str:
    shown = sorted(days)[-DAYS_MAX:]
    models = sorted({m for d in shown for m in days[d]})
    top = max((sum(days[d].values(), Decimal(0)) for d in shown), default=Decimal(0))
    plot_w = WIDTH_PX - 2 * MARGIN_PX - LEGEND_PX
    plot_h = HEIGHT_PX - 2 * MARGIN_PX
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" '
             f'height="{HEIGHT_PX}" role="img" aria-label="revenue per day by billing model">',
             f'<line x1="{MARGIN_PX}" y1="{MARGIN_PX + plot_h}" x2="{MARGIN_PX + plot_w}" '
             f'y2="{MARGIN_PX + plot_h}" stroke="#333"/>',
             f'<text x="{MARGIN_PX}" y="{MARGIN_PX - 12}" font-size="12">'
             f'max {escape(str(top))} {escape(currency)} net per day</text>']
    if not shown or top == 0:
        parts.append(f'<text x="{MARGIN_PX + 10}" y="{MARGIN_PX + plot_h // 2}" '
                     'font-size="14">no revenue in this period</text></svg>')
        return "".join(parts)
    slot = plot_w / len(shown)
    for i, day in enumerate(shown):
        y = float(MARGIN_PX + plot_h)
        x = MARGIN_PX + i * slot + slot * 0.15
        for model in models:
            value = days[day].get(model, Decimal(0))
            h = float(value / top) * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(model, OTHER_COLOUR)}"><title>{escape(day)} '
                f'{escape(model)}: {escape(str(value))} {escape(currency)}</title></rect>')
        parts.append(f'<text x="{x:.1f}" y="{MARGIN_PX + plot_h + 14}" font-size="10">'
                     f'{escape(day[5:])}</text>')
    for j, model in enumerate(models):
        ly = MARGIN_PX + j * 18
        lx = WIDTH_PX - LEGEND_PX
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" '
                     f'fill="{COLOURS.get(model, OTHER_COLOUR)}"/>'
                     f'<text x="{lx + 18}" y="{ly + 11}" font-size="12">{escape(model)}</text>')
    parts.append("</svg>")
    return "".join(parts)
