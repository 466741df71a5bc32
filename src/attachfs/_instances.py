"""What an ``attach`` filesystem instance is, to fsspec.

* ``Resolving``: fsspec's instance cache (its ``_Cached`` metaclass) reuses a filesystem for
  equal constructor arguments. ``config="attachfs.toml"`` is the same argument before and after
  the file changed, and ``tenant=None`` the same whatever ``$ATTACHFS_TENANT`` says; so the
  options are resolved first (``_options``) and the token holds the tenant and the config's
  content. ``storage_options`` becomes the secret-free recipe ``to_json`` and pickles carry.
* fsspec's caching filesystems (``filecache``, ``blockcache``, ``simplecache``) are refused
  when they are set up over attach: they key their copies by path alone.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType
from typing import Any

from fsspec.asyn import mirror_sync_methods
from fsspec.config import conf as fsspec_conf
from fsspec.spec import _Cached
from fsspec.utils import tokenize

from . import _options
from ._errors import ConfigError

__all__ = ["Protocol", "Resolving"]

_FSSPEC_CACHES = "fsspec.implementations.cached"
_REFUSED_CACHE = (
    "fsspec's filecache, blockcache and simplecache keep one copy per path, whoever read it: "
    "over attach they would serve one tenant's bytes to another. Use attachfs's own cache, "
    "keyed by tenant and version: cache='/dir' (or [cache] in the config)")


def _refuse_fsspec_caches(frames: int) -> None:
    """Refuse to serve fsspec's caching filesystems (``filecache``, ``blockcache``,
    ``simplecache``): one of the ``frames`` callers above is their code.

    They key their copies by path alone and serve a hit without asking the filesystem again,
    so they cannot be made tenant-safe from here. What each of them does when it is set up is
    checked: build its target (``X::attach::`` URLs, ``target_protocol="attach"``), or read
    the ``protocol`` of the instance it is handed (``fs=``; fsspec refuses both at once).
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(frames):
        if frame is None:
            return
        if frame.f_globals.get("__name__") == _FSSPEC_CACHES:
            raise ConfigError(_REFUSED_CACHE)
        frame = frame.f_back


class Protocol:
    """``protocol`` of the class, ``("attach",)``; read on an instance by fsspec's caching
    filesystems when one is wrapped around it (``fs=``), it refuses."""

    def __get__(self, obj: object, objtype: type | None = None) -> tuple[str, ...]:
        if obj is not None:
            _refuse_fsspec_caches(1)
        return ("attach",)


class Resolving(_Cached):
    """fsspec's instance cache, keyed by what a filesystem *is*: its options are resolved
    first (tenant and config from the arguments, fsspec's conf, then the environment), and the
    token holds the tenant and the config's content, never the raw arguments."""

    _pid: int  # set by fsspec's _Cached.__init__ for each class

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{cls.__name__} takes keyword arguments only")
        _refuse_fsspec_caches(3)  # built as their target: fsspec.registry.filesystem, then them
        opts = _options.resolve(kwargs, defaults=fsspec_conf.get("attach", {}),
                                environ=os.environ)
        pid = os.getpid()
        ident: tuple[Any, ...] = (cls, pid, opts.identity)
        if opts.fsspec.get("asynchronous"):
            ident += (threading.get_ident(),)
        token = tokenize(*ident)
        if pid != cls._pid:
            with cls._instantiation_lock:
                if pid != cls._pid:
                    cls._cache.clear()
                    cls._pid = pid
        use_cache = cls.cachable and not opts.skip_instance_cache
        if use_cache:
            with cls._instantiation_lock:
                found = cls._check_instance_cache(token)
                if found is not None:
                    found._config_stamp = opts.stamp  # same content: the newer stamp holds
                    return found
        obj = type.__call__(cls, tenant=opts.tenant, config=opts.config, cache=opts.cache,
                            target_protocol=opts.target_protocol,
                            target_options=opts.target_options, **opts.fsspec)
        obj._fs_token_ = token
        obj.storage_args = ()
        obj.storage_options = opts.recipe
        obj._config_stamp = opts.stamp
        if obj.async_impl and obj.mirror_sync_methods:
            mirror_sync_methods(obj)
        if use_cache:
            with cls._instantiation_lock:
                found = cls._check_instance_cache(token)
                if found is not None:
                    return found
                cls._latest = token
                cls._cache[token] = obj
        return obj
