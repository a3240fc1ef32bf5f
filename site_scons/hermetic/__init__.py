"""Generic hermetic build machinery: pins, fetching, toolchains, sandboxed actions, archives.

Nothing in this package knows about OpenSSL or CPython; the domain rules live in ``pydist``.
"""
