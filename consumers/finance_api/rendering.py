"""The Jinja2 environment of the pages (templates are package data, autoescaped)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from projections.einvoice import offers_einvoice

TEMPLATES = Environment(
    loader=PackageLoader("consumers.finance_api", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True, lstrip_blocks=True,
)
# Which documents offer an e-invoice download (the pages link it only for those).
TEMPLATES.globals["offers_einvoice"] = offers_einvoice


def render(template: str, **context: Any) -> str:
    return TEMPLATES.get_template(template).render(**context)


def document_html(document: dict[str, Any], tenant_id: str) -> str:
    """A document on its own (the HTML download): no navigation, printable."""
    return render("document.html", document=document, tenant=tenant_id, standalone=True)
