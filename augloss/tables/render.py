"""LaTeX (booktabs) and HTML from the Markdown cells of a table, and the writer of a table's
four formats (:func:`write_formats`); the Markdown marks ``**bold**``, `` `code` `` and ``x*``
(significant) become LaTeX / HTML markup."""

from __future__ import annotations

from pathlib import Path
import math
from typing import Sequence

from augloss.io import atomic_write_text

#: Unicode in table cells and the LaTeX for it (tabulate escapes only LaTeX's special characters).
_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "ρ": r"$\rho$", "τ": r"$\tau$", "—": "---",
                "–": "--", "≥": r"$\geq$", "≤": r"$\leq$", "†": r"$^{\dagger}$",
                "²": r"$^2$", "σ": r"$\sigma$", "α": r"$\alpha$"}


def missing(v) -> bool:
    """None or NaN: a value a table shows as "—"."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def p_text(v) -> str:
    """A p-value as the tables show it: "—" when untestable; one below float resolution (scipy
    gives 0 for a perfect rank correlation) is "< 1e-15", never 0."""
    return "—" if missing(v) else "< 1e-15" if v < 1e-15 else f"{v:.3g}"

def _markup(cell) -> tuple[str, bool, bool, bool]:
    """``(text, bold, code, significant)`` of a Markdown cell: ``**x**``, `` `x` ``, ``x*``."""
    text = str(cell)
    bold = len(text) > 4 and text.startswith("**") and text.endswith("**")
    if bold:
        text = text[2:-2]
    code = len(text) > 2 and text.startswith("`") and text.endswith("`")
    if code:
        text = text[1:-1]
    sig = not code and text.endswith("*") and not text.endswith("**")
    return (text[:-1] if sig else text), bold, code, sig


def booktabs(headers: list[str], body: list[list], raw: dict[int, list[str]] | None = None
             ) -> str:
    """A LaTeX booktabs table through tabulate, which escapes every special character of the
    cells; bold, significance marks and the symbols in :data:`_TEX_SYMBOLS` become LaTeX.
    ``raw`` maps a column to LaTeX that goes in unescaped (a loss formula, as ``$...$``)."""
    from tabulate import tabulate

    marks = {"@@B@@": r"\textbf{", "@@E@@": "}", "@@S@@": "$^{*}$"}
    raw_cells: dict[str, str] = {}
    rows = []
    for i, row in enumerate(body):
        out = []
        for j, cell in enumerate(row):
            if raw and j in raw:
                key = f"@@R{len(raw_cells)}@@"
                raw_cells[key] = raw[j][i]
                out.append(key)
                continue
            text, bold, _, sig = _markup(cell)
            text += "@@S@@" if sig else ""
            out.append(f"@@B@@{text}@@E@@" if bold else text)
        rows.append(out)
    grid = tabulate(rows, headers, tablefmt="latex_booktabs", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))
    for key, value in {**marks, **raw_cells}.items():
        grid = grid.replace(key, value)
    for char, tex in _TEX_SYMBOLS.items():
        grid = grid.replace(char, tex)
    return grid + "\n"


def _html_cell(cell) -> str:
    import html

    text, bold, code, sig = _markup(cell)
    text = html.escape(text)
    text = f"<code>{text}</code>" if code else text
    text += "<sup>*</sup>" if sig else ""
    return f"<b>{text}</b>" if bold else text


_CSS = ("body{font-family:sans-serif;font-size:14px;margin:1em}"
        "table{border-collapse:collapse;margin:.5em 0 1em}"
        "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;"
        "white-space:nowrap}th:first-child,td:first-child{text-align:left}"
        "th{border-bottom:2px solid #444}p{max-width:60em}code{font-size:13px}")


def html_page(title: str, sections: Sequence[tuple[str, list[str], list[list], Sequence[str]]]
              ) -> str:
    """A self-contained HTML page (what ``snakemake --report`` shows inline): per section a
    heading, the table (cells as in the Markdown, bold and code rendered) and its notes."""
    import html

    from tabulate import tabulate

    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body>"]
    for heading, headers, body, notes_ in sections:
        grid = tabulate([[_html_cell(c) for c in row] for row in body],
                        [html.escape(h) for h in headers], tablefmt="unsafehtml",
                        disable_numparse=True)
        parts.append(f"<h3>{html.escape(heading)}</h3>\n{grid}")
        parts += [f"<p>{_inline_html(n)}</p>" for n in notes_]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """Escape ``text`` and render its inline Markdown (``**bold**``, `` `code` ``)."""
    import html
    import re

    out = html.escape(str(text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)

def write_formats(prefix: str | Path, md: str, csv: str, tex: str, html: str) -> list[Path]:
    """Write ``prefix.md``, ``.csv``, ``.tex`` and ``.html`` atomically; return the paths."""
    prefix = Path(prefix)
    paths = []
    for suffix, text in ((".md", md), (".csv", csv), (".tex", tex), (".html", html)):
        path = prefix.with_name(prefix.name + suffix)
        atomic_write_text(path, text)
        paths.append(path)
    return paths
