"""Secrets out of every text the build shows or records: the one place a URL becomes text.

A URL may carry credentials in its user-info part (``https://user:password@host/``) or in its query (a token, a
signature of a pre-signed redirect target). :func:`url` gives the form of a URL that messages may show;
:func:`text` does the same for every URL inside a free text (an exception's message, a line of output), and also
for the bare ``path?query`` that requests and urllib3 put in their errors. Every line printed through
:mod:`hermetic.log` and every :class:`hermetic.errors.HermeticError` passes through :func:`text`, so a message
built from a raw URL by mistake is still safe.
"""

from __future__ import annotations

import re
import urllib.parse

# What replaces a secret.
MASK = "***"

# scheme://user-info@ : up to the last '@' of the word, so a password holding '/', '?' or '#' unencoded (which a
# URL parser would misread) is masked whole; an '@' in a path is masked too, which is the safe mistake.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s'\"<>]*@)")
# user:password@host without a scheme, as a URL's network location printed on its own.
_BARE_CREDENTIALS = re.compile(r"(?<![\w/:@])[^\s/@:'\"<>]+:[^\s/@'\"<>]*@(?=[A-Za-z0-9\[])")
# key=value inside a query string: the value goes, the key stays (it tells which parameter was given).
_QUERY_VALUE = re.compile(r"(?P<lead>[?&][A-Za-z0-9_.~%-]+=)(?P<value>[^&#\s'\"<>)]+)")


def url(address: str) -> str:
    """`address` as messages may show it: no user-info, every query value masked.

    >>> url("https://user:pw@mirror.example:8443/f.tar.gz?token=abc&x=1")
    'https://***@mirror.example:8443/f.tar.gz?token=***&x=***'
    """
    return text(address)


def host(address: str) -> str:
    """The host (and port) of `address`, without user-info: what a progress line names."""
    shown = url(address)
    netloc = urllib.parse.urlsplit(shown).netloc
    return netloc.rpartition("@")[2] if netloc else shown


def text(message: str) -> str:
    """`message` with the user-info of every URL and the value of every query parameter masked."""
    if "@" in message:
        message = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", message)
        message = _BARE_CREDENTIALS.sub(f"{MASK}@", message)
    if "=" in message:
        message = _QUERY_VALUE.sub(lambda m: f"{m['lead']}{MASK}", message)
    return message
