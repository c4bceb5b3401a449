"""HTML building blocks: escaping, the page frame and its inline style (no external file)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from string import Template
from urllib.parse import urlencode

# The dashboard is the site root; the JSON API is under /api/ (host.json routePrefix "").
BASE = ""

NAV = (("", "Overview"), ("images", "Images"), ("vulnerabilities", "Vulnerabilities"),
       ("rules", "Rules"), ("billing", "Billing"))

# Colours keep at least 4.5:1 contrast with their text (WCAG AA).
_STYLE = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1b1f24;
background:#f6f8fa}header{background:#0b3d6e;color:#fff;padding:.6rem 1rem;display:flex;
flex-wrap:wrap;gap:.5rem 1rem;align-items:center}header a{color:#fff}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem}
nav a[aria-current=page]{font-weight:700;text-decoration:underline}
main{padding:1rem;max-width:1400px}h1{font-size:1.4rem;margin:.2rem 0 1rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eaeef2}.wrap{overflow-x:auto}.cards{display:flex;flex-wrap:wrap;gap:.6rem;
margin-bottom:1rem}.card{background:#fff;border:1px solid #d0d7de;padding:.5rem .8rem;
min-width:8rem}.card b{display:block;font-size:1.5rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85rem;color:#fff}
.healthy{background:#1a7f37}.unhealthy{background:#b3261e}.partial{background:#7d4e00}
.failed{background:#6e2c91}.unsupported,.not_applicable,.none{background:#57606a}
.critical{color:#a40e26;font-weight:700}.high{color:#b3261e}.medium{color:#7d4e00}
.error{background:#ffebe9;border:1px solid #b3261e;padding:.6rem;margin-bottom:1rem}
.notice{background:#dafbe1;border:1px solid #1a7f37;padding:.6rem;margin-bottom:1rem}
form.inline{display:inline}label{display:block;margin:.3rem 0 .1rem}
input,select,textarea,button{font:inherit;padding:.25rem .4rem}
.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin-bottom:1rem}
.filters label{margin:0}.bar{background:#0b3d6e;height:1rem;display:inline-block}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f0b400}
code{font-size:.9em}.visually-hidden,.skip{position:absolute;left:-9999px}
.skip:focus{left:.5rem;top:.5rem;background:#fff;color:#0b3d6e;padding:.3rem;z-index:1}
.bar.fixable{background:#1a7f37}.bar.key{width:1rem}.asof{display:flex;flex-wrap:wrap;
gap:.4rem;align-items:center;margin-bottom:1rem}.chart{margin:0 0 .5rem}.chart>svg{width:100%;
max-width:720px;height:auto;background:#fff;border:1px solid #d0d7de}
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;padding:0;margin:.3rem 0}
.pager{display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin-bottom:1rem}label.inline{display:inline}
th a{color:inherit}
@media (max-width:700px){main{padding:.5rem}th,td{padding:.2rem .3rem;font-size:.85rem}}
"""

_FRAME = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · acr-scan</title><style>$style</style></head>
<body><a class="skip" href="#main">Skip to content</a>
<header><strong>acr-scan</strong><nav aria-label="Pages">$nav</nav>$signout</header>
<main id="main">$body</main></body></html>
""")


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def url(page: str, query: Mapping[str, str] | None = None) -> str:
    shown = {name: value for name, value in (query or {}).items() if value}
    return f"{BASE}/{page}" + (f"?{urlencode(shown)}" if shown else "")


def link(page: str, text: str, query: Mapping[str, str] | None = None) -> str:
    return f'<a href="{e(url(page, query))}">{e(text)}</a>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], caption: str,
          empty: str = "Nothing to show.") -> str:
    """``rows`` are cells of HTML already escaped."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    if not body:
        return f"<p>{e(empty)}</p>"
    head = "".join(f'<th scope="col">{e(name)}</th>' for name in headers)
    return (f'<div class="wrap"><table><caption class="visually-hidden">{e(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def badge(status: str | None) -> str:
    shown = status or "none"
    return f'<span class="badge {e(shown)}">{e(shown.replace("_", " "))}</span>'


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{e(name)}" value="{e(value)}">'


def bars(rows: Iterable[tuple[str, int]], caption: str) -> str:
    """A bar chart as a table (readable without colour or script)."""
    items = list(rows)
    top = max((value for _, value in items), default=0) or 1
    return table((caption, "Count"), (
        (e(label), f'<span class="bar" style="width:{value * 12 // top}rem"></span> {value}')
        for label, value in items), caption)


def page(title: str, body: str, current: str, *, signed_in: bool, csrf: str = "") -> str:
    nav = "".join(
        f'<a href="{e(url(target))}"' + (' aria-current="page"' if target == current else "")
        + f">{e(name)}</a>" for target, name in NAV) if signed_in else ""
    signout = (f'<form class="inline" method="post" action="{e(url("signout"))}">'
               f'{hidden("csrf", csrf)}<button type="submit">Sign out</button></form>'
               if signed_in and csrf else "")
    return _FRAME.substitute(title=e(title), style=_STYLE, nav=nav, signout=signout,
                             body=f"<h1>{e(title)}</h1>{body}")
