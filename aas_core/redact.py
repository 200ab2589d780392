"""One ``redact_url`` for every URL we show: database URLs, camera URLs, device indices.

Parsing is the standard library's (``urllib.parse``); what is hand-written is only the
policy of what counts as secret -- the password in ``user:pw@`` and query values whose key
looks like a credential (``password=``, ``token=``, ``sig=``, ...). SQLAlchemy's
``URL.render_as_string(hide_password=True)`` covers the first rule for database URLs only,
re-orders query keys, and knows nothing of camera tokens or device indices.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["UNPARSEABLE", "redact_url"]

UNPARSEABLE = "<unparseable url>"
_SECRET_QUERY_KEYS = re.compile(r"(pass|pwd|token|key|secret|auth|sig)", re.IGNORECASE)


def redact_url(url: str | int) -> str:
    """URL safe to show: password in ``user:pw@`` and secret-looking query values -> ``***``.

    ``mysql+pymysql://aas:pw@db/aas`` -> ``mysql+pymysql://aas:***@db/aas``;
    ``rtsp://admin:pw@10.0.0.5/x?token=t`` -> ``rtsp://admin:***@10.0.0.5/x?token=***``.
    Device indices (int), plain paths and ``sqlite:///file`` URLs are returned unchanged.
    Text with a scheme and an ``@`` whose host cannot be told apart from a password is
    hidden whole (``<unparseable url>``): showing too little is the safe mistake.
    """
    if isinstance(url, int):
        return str(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return UNPARSEABLE
    if not parts.scheme or not parts.netloc:
        return UNPARSEABLE if parts.scheme and "@" in url else url
    netloc = parts.netloc
    if "@" not in netloc and ":" in netloc and "@" in url.split(netloc, 1)[1]:
        return UNPARSEABLE  # a "/", "?" or "#" in the password ended the host early: u:p/w@h
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs],
            safe="*",
            quote_via=quote,
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
