"""The domain rules: dependency libraries, OpenSSL with the FIPS provider, CPython and its distribution."""
