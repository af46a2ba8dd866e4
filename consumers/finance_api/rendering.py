"""The Jinja2 environment of the pages (templates are package data, autoescaped)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

TEMPLATES = Environment(
    loader=PackageLoader("consumers.finance_api", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True, lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    return TEMPLATES.get_template(template).render(**context)


def document_html(document: dict[str, Any], tenant_id: str) -> str:
    """A document on its own (the HTML download): no navigation, printable."""
    return render("document.html", document=document, tenant=tenant_id, standalone=True)
