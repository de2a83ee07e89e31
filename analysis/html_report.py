"""``diffbrain report STORE --html``: one self-contained ``report.html`` (opens offline, can be sent as is).

The page is the report's ``summary.md`` (provenance, tables, the sweep file, skipped figures with their
reasons) rendered by markdown-it, followed by every figure embedded as a base64 PNG data URI; the summary's
links to the figure files point at the embedded figures. No script, no external resource.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

REPORT_HTML = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #eee; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; }
figure { margin: 2rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; margin-top: 0.4rem; }
"""


def _anchor(name: str) -> str:
    return "fig-" + "".join(c if c.isalnum() else "-" for c in name)


def render_html(title: str, summary_md: str, figures: dict[str, Path], captions: dict[str, str]) -> str:
    """The page: ``summary_md`` rendered, then each figure (name -> PNG file) embedded with its caption."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(summary_md)
    parts = []
    for name, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        body = body.replace(f'href="{html.escape(name)}"', f'href="#{_anchor(name)}"')
        parts.append(f'<figure id="{_anchor(name)}"><img alt="{html.escape(name)}" '
                     f'src="data:image/png;base64,{data}"><figcaption><code>{html.escape(name)}</code>: '
                     f'{html.escape(captions.get(name, ""))}</figcaption></figure>')
    figures_html = "<h2>Figures (embedded)</h2>\n" + "\n".join(parts) if parts else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n{figures_html}\n</body></html>\n")
