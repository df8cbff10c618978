"""Pieces the stereo training and evaluation tools share: seed lists, window stores, model export."""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import logging
import os
import re
import subprocess
from pathlib import Path

from eventstereo.events.sbt import SBTSettings
from eventstereo.training.data import ConcatStores, EncodedWindows

log = logging.getLogger(__name__)


MAX_SEEDS = 10_000
"""Most seeds one list may name (a typo such as 0-99999999 would otherwise build a list for minutes)."""


def parse_seeds(spec: str) -> list[int]:
    """``"0-63"``, ``"1,5,9"`` or ``"0-3,10-11"`` -> the listed integers, in order, without repeats.

    ValueError for a part that is not N or N-M, an empty list, or more than MAX_SEEDS seeds (counted
    before any range is expanded).
    """
    ranges: list[range] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, sep, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if sep else range(int(lo), int(lo) + 1)
        except ValueError:
            raise ValueError(f"bad seed list {spec!r}: {part!r} is not N or N-M") from None
        ranges.append(values)
        if sum(map(len, ranges)) > MAX_SEEDS:
            raise ValueError(f"seed list {spec!r} names more than {MAX_SEEDS} seeds")
    out = list(dict.fromkeys(v for r in ranges for v in r))
    if not out:
        raise ValueError(f"empty seed list {spec!r}")
    return out


def sources_for_seeds(args: argparse.Namespace, seeds: list[int]):
    """One registry source per seed (the other source arguments as given); opened lazily."""
    from eventstereo.sources.registry import open_source

    for seed in seeds:
        a = copy.copy(args)
        a.seed = seed
        yield open_source(a)


def source_key(args: argparse.Namespace) -> str:
    """A short digest of every source option except the seed (root, split, sensor size, ...)."""
    from eventstereo.sources.registry import add_source_arguments

    probe = argparse.ArgumentParser(add_help=False)
    add_source_arguments(probe)
    dests = sorted(a.dest for a in probe._actions if a.dest != "seed")
    blob = json.dumps({d: getattr(args, d, None) for d in dests}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cache_name(args: argparse.Namespace, source, seed: int, windows: int | None,
               settings: SBTSettings) -> str:
    """A cache file name that changes whenever what it holds would (source options, seed, count, SBT)."""
    return (f"{source.name}-{source_key(args)}-seed{seed}-n{windows or 'all'}-"
            f"{settings.mode}{settings.n_bins}{'' if settings.newest_first else 'old'}-"
            f"{settings.window_us}us.h5")


def cached_windows(args: argparse.Namespace, seeds: list[int], windows: int | None, settings: SBTSettings,
                   cache_dir: str | os.PathLike, *, build: bool = True):
    """The windows of one registry source per seed, each encoded once into ``cache_dir`` (an SBT cache
    file per seed, reused by later runs) and read back as one store. ``build=False`` only opens."""
    from eventstereo.sources.cache import SBTCache, write_sbt_cache

    stores = []
    for seed, source in zip(seeds, sources_for_seeds(args, seeds)):
        with source:
            path = Path(cache_dir) / cache_name(args, source, seed, windows, settings)
            if build and not path.exists():
                write_sbt_cache(source, path, settings, max_windows=windows, progress=False)
        stores.append(SBTCache(path, expect_settings=settings))
    log.info("%d cached windows from %d seeds in %s", sum(len(s) for s in stores), len(stores), cache_dir)
    return ConcatStores(stores)


def _natural_key(name: str) -> list:
    """Sort key that orders seed2 before seed10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def expand_cache_paths(paths) -> list[str]:
    """Cache paths with shell patterns (``runs/varied-cache/*.h5``) expanded, each in natural seed order.

    A JSON training config cannot rely on a shell to expand them, and cache file names carry a hash of the
    source settings that a hand-written list goes stale against. A pattern that matches nothing is an
    InputError naming it (an empty training set would otherwise fail far from the cause).
    """
    from eventstereo.errors import InputError

    out: list[str] = []
    for p in map(str, paths):
        if not glob.has_magic(p):
            out.append(p)
            continue
        found = sorted(glob.glob(p), key=_natural_key)
        if not found:
            raise InputError(f"{p}: no cache file matches this pattern")
        out.extend(found)
    return out


def store_from_args(args: argparse.Namespace, seeds: str | None, windows: int | None, settings: SBTSettings,
                    *, cache_dir: str | os.PathLike | None = None, build: bool = True):
    """A window store: the SBT cache file(s) ``args.cache`` if set; else one registry source per seed of
    ``seeds`` (default ``args.seed``), cached in ``cache_dir`` when given, else encoded in memory."""
    if getattr(args, "cache", None):
        from eventstereo.sources.cache import SBTCache

        paths = [args.cache] if isinstance(args.cache, (str, os.PathLike)) else list(args.cache)
        return ConcatStores([SBTCache(p) for p in expand_cache_paths(paths)])
    seed_list = parse_seeds(seeds) if seeds else [args.seed]
    if cache_dir:
        return cached_windows(args, seed_list, windows, settings, cache_dir, build=build)
    return EncodedWindows.from_sources(sources_for_seeds(args, seed_list), settings,
                                       windows_per_source=windows)


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The checkout's commit (with "+dirty" when it has changes), or "unknown" outside git."""
    try:
        cwd = cwd or Path(__file__).resolve().parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
