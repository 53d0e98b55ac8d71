"""Fixtures of the data tests (helpers live in tests/support.py)."""
from support import brown_tgz  # noqa: F401 - a fixture, shared with the other tests that read the corpus
