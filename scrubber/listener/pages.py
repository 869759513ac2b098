"""The pages of ``GET /u/<token>`` (one-click unsubscribe): the one with the
button, and the one its POST answers. Self-contained: nothing to fetch, no
script, no cookie; only a form that posts back to the same URL."""

from __future__ import annotations

from scrubber.unsubscribe import ONE_CLICK_POST

ONE_CLICK_FIELD, ONE_CLICK_VALUE = ONE_CLICK_POST.split("=")
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
button{{font:inherit;padding:.6rem 1.2rem;cursor:pointer}}</style>
</head><body><main>
{main}
</main></body></html>
"""
UNSUBSCRIBE_PAGE = _PAGE.format(
    title="Unsubscribe",
    main=(
        "<h1>Unsubscribe</h1>\n"
        "<p>Press the button to stop all mail from this sender to your address.</p>\n"
        '<form method="post">\n'
        f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">\n'
        '<input type="hidden" name="from" value="page">\n'
        '<button type="submit" id="unsubscribe">Unsubscribe</button>\n'
        "</form>"
    ),
).encode()
UNSUBSCRIBED_PAGE = _PAGE.format(
    title="Unsubscribed",
    main='<h1 id="done">Unsubscribed</h1>\n<p>You will get no more mail from this sender.</p>',
).encode()
