"""Where a window state's files live, and how a new version of it is committed.

A state is a set of immutable Parquet files and a numbered manifest that lists them. Nothing is
ever changed in place: a night writes its new files under names no other version can take,
then commits by writing the next manifest (`manifests/<version>.json`, written aside and moved
into place, which is atomic on a local disk; an object store makes an object visible whole).
Readers take the newest manifest that parses. So a crash at any point leaves the last committed
version readable, and the next run deletes what the crash left (`collect_garbage`): files that
no manifest lists. This is how Delta Lake and Iceberg commit a table version; a table format
would add concurrent writers and time travel, which a state behind the output lock does not
need.

The location is a folder or an object-store URI (the filesystems of
`pipelines.executors.exchange`), so a
state on S3 is read and written by the shard tasks on every worker of a Ray cluster.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.errors import ExpscoreError
from pipelines.executors.exchange import resolve

MANIFESTS = "manifests"
DATA = "data"
COMPRESSION = "lz4"


class StateDamaged(ExpscoreError):
    """A state file the manifest lists is missing or unreadable: the state is rebuilt."""


@dataclass
class Manifest:
    """One committed version of the state: what it was built for, what it read, its files.

    `meta` decides whether the state can serve a run (window length, time zone, shards,
    format); `raw` is every raw file ingested, by log, partition and path, with its fingerprint
    and counts; `files` lists the data files per shard, table and key (a date), each with its
    size, so a truncated file is found before it is read.
    """

    version: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    run_date: str | None = None
    raw: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    files: dict[str, dict[str, dict[str, dict[str, int]]]] = field(default_factory=dict)

    def shard_files(self, shard: int) -> dict[str, dict[str, dict[str, int]]]:
        return self.files.get(str(shard), {})

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "meta": self.meta,
                "run_date": self.run_date,
                "raw": self.raw,
                "files": self.files,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(text: str) -> Manifest:
        data = json.loads(text)
        return Manifest(
            version=int(data["version"]),
            meta=data["meta"],
            run_date=data["run_date"],
            raw=data["raw"],
            files=data["files"],
        )


@dataclass(frozen=True)
class StateStore:
    """The files of one window state under `location` (a folder or URI)."""

    location: str

    def _path(self, relative: str) -> tuple[pafs.FileSystem, str]:
        fs, root = resolve(self.location)
        return fs, f"{root.rstrip('/')}/{relative}"

    # ---------------------------------------------------------------------------------------
    # data files

    def new_file(self, shard: int, table: str, key: str, version: int) -> str:
        """A name no other file of any version can have: data/<shard>/<table>/<key>/..."""
        return f"{DATA}/{shard:04d}/{table}/{key}/{version:08d}-{uuid.uuid4().hex[:10]}.parquet"

    def write(self, frame: pl.DataFrame, relative: str, row_group_size: int | None = None) -> int:
        """Write an immutable Parquet file; returns its size for the manifest."""
        fs, path = self._path(relative)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # page checksums: a damaged data block is found when read, not scored
        pq.write_table(
            frame.to_arrow(),
            path,
            filesystem=fs,
            compression=COMPRESSION,
            write_page_checksum=True,
            row_group_size=row_group_size,
        )
        return fs.get_file_info(path).size

    def read(
        self,
        files: dict[str, int],
        columns: list[str] | None = None,
        match: tuple[str, pl.Series] | None = None,
    ) -> list[pl.DataFrame]:
        """The listed files, in the order given; a missing or damaged one raises StateDamaged.

        With `match` (a column and sorted, unique ids), a lookup, not a scan: per file, only
        the row groups whose range of that column (the Parquet statistics) holds one of the ids
        are read, and the file's rows are matched against the ids in its own range only, so
        looking up a night's few hundred thousand orders in a date's file costs about what that
        date's matching row groups cost.
        """
        frames = []
        for relative, size in files.items():
            fs, path = self._checked(relative, size)
            try:
                if match is None:
                    table = pq.read_table(
                        path, filesystem=fs, columns=columns, page_checksum_verification=True
                    )
                    frames.append(pl.from_arrow(table))
                    continue
                column, ids = match
                with fs.open_input_file(path) as handle:
                    parquet = pq.ParquetFile(handle, page_checksum_verification=True)
                    groups, low, high = _groups_holding(parquet, column, ids)
                    table = parquet.read_row_groups(groups, columns=columns)
            except (OSError, ValueError) as exc:
                raise StateDamaged(f"state file {relative}: unreadable ({exc})") from exc
            wanted = ids.slice(low, high - low).implode()
            frames.append(pl.from_arrow(table).filter(pl.col(column).is_in(wanted)))
        return frames

    def _checked(self, relative: str, size: int) -> tuple[pafs.FileSystem, str]:
        """The file's filesystem and path, once its size is the one the manifest lists."""
        fs, path = self._path(relative)
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File or info.size != size:
            found = "missing" if info.type == pafs.FileType.NotFound else f"{info.size} bytes"
            raise StateDamaged(f"state file {relative}: {found}, the manifest says {size}")
        return fs, path

    # ---------------------------------------------------------------------------------------
    # versions

    def _manifest_versions(self) -> list[int]:
        fs, folder = self._path(MANIFESTS)
        selector = pafs.FileSelector(folder, allow_not_found=True)
        versions = []
        for info in fs.get_file_info(selector):
            name = info.base_name
            if name.endswith(".json") and name[:-5].isdigit():
                versions.append(int(name[:-5]))
        return sorted(versions)

    def latest(self) -> tuple[Manifest | None, str | None]:
        """The newest manifest that reads whole, and why a newer one was passed over (or None).

        A manifest is written whole or not at all; one that does not parse is a damaged state,
        reported so that the run can say why it rebuilds.
        """
        skipped = None
        for version in reversed(self._manifest_versions()):
            fs, path = self._path(f"{MANIFESTS}/{version:08d}.json")
            try:
                with fs.open_input_stream(path) as stream:
                    return Manifest.from_json(stream.read().decode("utf-8")), skipped
            except (OSError, ValueError, KeyError) as exc:
                skipped = f"manifest {version:08d}.json cannot be read ({exc})"
        return None, skipped

    def commit(self, manifest: Manifest) -> None:
        """Make `manifest` the newest version: written aside, then moved into place.

        The caller holds the output lock, so no other writer takes the same number.
        """
        fs, final = self._path(f"{MANIFESTS}/{manifest.version:08d}.json")
        if fs.get_file_info(final).type != pafs.FileType.NotFound:
            raise ExpscoreError(f"state version {manifest.version} exists already at {final}")
        fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        temporary = f"{final}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open_output_stream(temporary) as stream:
            stream.write(manifest.to_json().encode("utf-8"))
        if isinstance(fs, pafs.LocalFileSystem):
            _fsync(temporary)
        fs.move(temporary, final)
        if isinstance(fs, pafs.LocalFileSystem):
            _fsync(final.rsplit("/", 1)[0])

    def collect_garbage(self, manifest: Manifest | None) -> int:
        """Delete every file `manifest` does not list, and the older manifests. Returns files.

        Runs after each commit: it deletes the files the new version replaced and whatever a
        killed night left (their names are unique, so they never stand in a night's way).
        """
        keep = (
            {
                relative
                for tables in manifest.files.values()
                for keys in tables.values()
                for files in keys.values()
                for relative in files
            }
            if manifest
            else set()
        )
        fs, root = self._path("")
        deleted = 0
        for folder in (DATA, MANIFESTS):
            selector = pafs.FileSelector(f"{root}{folder}", recursive=True, allow_not_found=True)
            for info in fs.get_file_info(selector):
                if info.type != pafs.FileType.File:
                    continue
                relative = info.path[len(root) :].lstrip("/")
                current = manifest and relative == f"{MANIFESTS}/{manifest.version:08d}.json"
                if relative not in keep and not current:
                    fs.delete_file(info.path)
                    deleted += 1
        return deleted

    def wipe(self) -> None:
        """Delete the whole state (a rebuild starts from nothing)."""
        fs, root = self._path("")
        for folder in (DATA, MANIFESTS):
            if fs.get_file_info(f"{root}{folder}").type == pafs.FileType.Directory:
                fs.delete_dir(f"{root}{folder}")


def _groups_holding(
    parquet: pq.ParquetFile, column: str, ids: pl.Series
) -> tuple[list[int], int, int]:
    """The row groups whose `column` range holds one of `ids` (sorted), and the slice of `ids`
    within the file's range. A row group without statistics is always read."""
    metadata, index = parquet.metadata, parquet.schema_arrow.get_field_index(column)
    groups, low, high = [], ids.len(), 0
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            groups.append(group)
            low, high = 0, ids.len()
            continue
        first = ids.search_sorted(stats.min, "left")
        last = ids.search_sorted(stats.max, "right")
        if last > first:
            groups.append(group)
            low, high = min(low, first), max(high, last)
    return groups, low, max(low, high)


def _fsync(path: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
