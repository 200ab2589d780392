"""One ``redact_url`` for every URL we show: database URLs, camera URLs, device indices.

Parsing is the standard library's (``urllib.parse``); what is hand-written is only the
policy of what counts as secret -- the password in ``user:pw@`` and query values whose key
looks like a credential (``password=``, ``pwd=``, ``loginpas=``, ``psw=``, ``token=``,
``apikey=``, ``auth=``, ``sig=``, ...). SQLAlchemy's ``URL.render_as_string(hide_password=True)``
covers the first rule for database URLs only, re-orders query keys, and knows nothing of
camera tokens or device indices.

``redact_text`` applies the same policy to free text (exception messages from libraries,
log lines), and ``install_log_redaction`` makes every log record of ``aas_core`` go through
it: cheap IP cameras take their credentials in the query string
(``/snapshot.cgi?user=admin&pwd=...``), so a URL in any message is a password in a log.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["UNPARSEABLE", "RedactingFilter", "install_log_redaction", "is_secret_key", "redact_text", "redact_url"]

UNPARSEABLE = "<unparseable url>"
#: Query / form keys whose value is a credential, matched anywhere in the key, any case.
#: "pas" covers pass, passwd, password and the "loginpas" of Foscam-style cameras; "pw"
#: pwd/pw/passw; "psw"/"psk" camera and Wi-Fi spellings; "key" apikey/api_key/key; "auth"
#: auth/authorization/auth_token; "sig" signatures of pre-signed URLs; "cred", "secret",
#: "token", "session"/"sid"-like ids are bearer credentials too. Showing "***" for a
#: harmless key (a "keyframe=1") is the safe mistake.
_SECRET_KEY_PATTERN = r"pas|pw|psw|psk|token|key|secret|auth|sig|cred|session|cookie|jwt|bearer|otp"
_SECRET_QUERY_KEYS = re.compile(_SECRET_KEY_PATTERN, re.IGNORECASE)

#: A URL inside free text: scheme "://" up to whitespace, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
#: ``key=value`` / ``key: value`` credential pairs outside URLs (form bodies, query strings
#: without a scheme, "password: x" in a library message).
_PAIR_IN_TEXT = re.compile(
    r"(?P<key>[A-Za-z0-9_.\-]*(?:" + _SECRET_KEY_PATTERN + r")[A-Za-z0-9_.\-]*)"
    r"(?P<sep>\s*=\s*|\"?\s*:\s*\"?)(?P<value>[^\s&;,'\"<>)\]}]+)",
    re.IGNORECASE,
)
#: ``user:password@host`` without a scheme (a host string, a netloc in a message).
_USERINFO_IN_TEXT = re.compile(r"(?P<user>[^\s:/@'\"<>]+):(?P<pw>[^\s@/'\"<>]+)@(?=[\w\[])")


def is_secret_key(key: str) -> bool:
    """Whether a query/form key names a credential (``pwd``, ``loginpas``, ``apikey``, ...)."""
    return bool(_SECRET_QUERY_KEYS.search(key))


def redact_url(url: str | int) -> str:
    """URL safe to show: password in ``user:pw@`` and secret-looking query values -> ``***``.

    ``mysql+pymysql://aas:pw@db/aas`` -> ``mysql+pymysql://aas:***@db/aas``;
    ``rtsp://admin:pw@10.0.0.5/x?token=t`` -> ``rtsp://admin:***@10.0.0.5/x?token=***``;
    ``http://cam/snapshot.cgi?user=admin&pwd=pw`` -> ``http://cam/snapshot.cgi?user=admin&pwd=***``.
    Device indices (int), plain paths and ``sqlite:///file`` URLs are returned unchanged.
    Text with a scheme and an ``@`` whose host cannot be told apart from a password is
    hidden whole (``<unparseable url>``): showing too little is the safe mistake. The
    fragment is dropped (single-page camera UIs put tokens there).
    """
    if isinstance(url, int):
        return str(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return UNPARSEABLE
    if not parts.scheme or not parts.netloc:
        if parts.scheme and "@" in url:
            return UNPARSEABLE
        # a path with a query ("/snapshot.cgi?pwd=x", "host/x?token=y"): redact its pairs
        return _redact_pairs(url) if "=" in url else url
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
            [(k, "***" if is_secret_key(k) else v) for k, v in pairs],
            safe="*",
            quote_via=quote,
        )
    # ";key=value" path parameters (some RTSP servers) are credentials too
    path = _redact_pairs(parts.path) if "=" in parts.path else parts.path
    return urlunsplit((parts.scheme, netloc, path, query, ""))


_TRAILING = ".,:;!?"  # sentence punctuation after a URL or a value ("...?pwd=x: timed out")


def _split_trailing(token: str) -> tuple[str, str]:
    core = token.rstrip(_TRAILING)
    return core, token[len(core):]


def _redact_pairs(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        _, tail = _split_trailing(m.group("value"))
        return f"{m.group('key')}{m.group('sep')}***{tail}"

    return _PAIR_IN_TEXT.sub(repl, text)


def _redact_url_in_text(m: re.Match[str]) -> str:
    url, tail = _split_trailing(m.group(0))
    return redact_url(url) + tail


def redact_text(text: object) -> str:
    """Free text (an error message, a log line) with every credential in it replaced by ``***``.

    Each URL in it goes through ``redact_url``; then ``key=value`` pairs whose key names a
    credential (outside URLs too: ``pwd=x`` in a form body or a scheme-less query) and
    ``user:password@host`` are redacted. Idempotent, and safe on text without secrets.
    """
    s = str(text)
    if not s:
        return s
    s = _URL_IN_TEXT.sub(_redact_url_in_text, s)
    s = _redact_pairs(s)
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('user')}:***@", s)


# --- logging ----------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) through ``redact_text``; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Format the message now (args may hold a URL) and redact it; the same for the traceback."""
    if getattr(record, "_aas_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: let logging report it as usual
        return record
    record.msg = redact_text(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        # Formatter.format uses exc_text when it is set: exception messages often carry the
        # request URL (httpx: "... for url 'http://cam/x?pwd=...'").
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record._aas_redacted = True  # type: ignore[attr-defined]
    return record


_FILTER = RedactingFilter()
_INSTALL_LOCK = threading.Lock()
_installed = False


#: Loggers whose records are redacted: ours, and the HTTP client we hand camera URLs to
#: (httpx logs every request's full URL at INFO: "HTTP Request: GET http://cam/x?pwd=...").
_REDACTED_LOGGERS = ("aas_core", "httpx", "httpcore")


def _is_ours(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in _REDACTED_LOGGERS)


def install_log_redaction() -> None:
    """Redact every log record of ``aas_core`` and its child loggers (idempotent).

    A filter on the ``aas_core`` logger alone is not enough: logging consults a logger's
    filters only for records logged *to that logger*, not for records propagated up from
    ``aas_core.capture.base`` and friends. So the filter is put on the ``aas_core`` logger
    (records logged to it directly) and the record factory is wrapped to run it for every
    record whose logger is ``aas_core.*`` (or ``httpx``/``httpcore``, which log request
    URLs), whichever handler (console, file, pytest's caplog) later formats it. Records of
    other libraries are left alone.
    """
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        logging.getLogger("aas_core").addFilter(_FILTER)
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _is_ours(record.name):
                redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


# Installed on import: every entry point (CLI, pages, services, capture) imports this module
# through aas_core.config or aas_core.capture.base, so no caller can forget it.
install_log_redaction()
