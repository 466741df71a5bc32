"""Credentials, one module per cloud: each turns a Route's Grant into the options an inner
filesystem (and later the hot read path) needs. Nothing here decides *which* identity to use:
rules.py did that; these modules only build, cache and refresh what the Grant names."""
