"""Where shop shards meet between stages: files under a folder or an object-store URI.

The nightly run hands work to shard tasks and back through files, not through the executor: a
task on another machine (a Ray worker) reads its shard from the same place the driver wrote it.
A local path is the default (under `<out>/.state`); a URI such as `s3://bucket/expscore/tmp` puts
the files on object storage that every node of a cluster can reach. URIs are resolved by
pyarrow's filesystems (local, s3, gs, hdfs, abfs) and, for any other scheme, by fsspec when it is
installed.

An exchange is named by a string so that it crosses process and machine boundaries as a plain
value; each side resolves the filesystem itself.
"""

from __future__ import annotations

import functools
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc
import pyarrow.parquet as pq

from pipelines.errors import InputError

# A night's routed rows (the whole window's on a rebuild: tens of millions at M scale) go through
# Arrow IPC files: written and read without encoding. Bucketing the M window (29.7M orders, B = 1)
# for the earlier DuckDB state took 38.9 s into Parquet (LZ4) and 9.5 s into IPC, 5.8 s of
# which was DuckDB's scan. Parquet stays the format of
# the per-shard sums, which are small and which an analyst may want to open. A remote exchange
# compresses with LZ4: it halves what crosses the network for about 0.15 s per million rows.
REMOTE_COMPRESSION = "lz4"


def is_uri(location: str) -> bool:
    return "://" in location


def subfolder(location: str, name: str) -> str:
    """`location/name` for a folder or a URI; a URI keeps its query (`?endpoint_override=...`)."""
    if not is_uri(location):
        return str(Path(location) / name)
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path within it for a local path or a URI."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).absolute())
    return _resolve_uri(location)


@functools.lru_cache(maxsize=64)
def _resolve_uri(location: str) -> tuple[pafs.FileSystem, str]:
    """Once per URI and process: an object-store filesystem is a client, and one without a
    region in its URI asks the store for the bucket's region when it is made."""
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as arrow_error:
        try:
            import fsspec
        except ImportError:
            raise InputError(
                f"exchange {location}: pyarrow cannot open this URI ({arrow_error}) and fsspec "
                "is not installed"
            ) from arrow_error
        fs, path = fsspec.core.url_to_fs(location)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


@dataclass(frozen=True)
class Exchange:
    """One run's folder of shard files: `<location>/run-<id>/<table>/part-<shard>.<format>`."""

    location: str

    @staticmethod
    def for_run(base: str) -> Exchange:
        """A fresh folder under `base` for one run, so runs sharing a base never meet."""
        return Exchange(subfolder(base, f"run-{uuid.uuid4().hex[:12]}"))

    def _file(self, *parts: str) -> tuple[pafs.FileSystem, str]:
        fs, folder = resolve(self.location)
        return fs, "/".join([folder.rstrip("/"), *parts])

    def _output(self, *parts: str) -> tuple[pafs.FileSystem, str]:
        fs, path = self._file(*parts)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return fs, path

    def arrow_writer(self, schema: pa.Schema, *parts: str) -> pa.ipc.RecordBatchFileWriter:
        """An Arrow IPC file writer, for rows appended batch by batch (a night's routed rows)."""
        fs, path = self._output(*parts)
        compression = REMOTE_COMPRESSION if is_uri(self.location) else None
        options = pa.ipc.IpcWriteOptions(compression=compression)
        return pa.ipc.new_file(fs.open_output_stream(path), schema, options=options)

    def read_arrow(self, *parts: str) -> pa.Table:
        fs, path = self._file(*parts)
        if isinstance(fs, pafs.LocalFileSystem):
            return pa.ipc.open_file(pa.memory_map(path)).read_all()
        with fs.open_input_file(path) as source:
            return pa.ipc.open_file(source).read_all()

    def write_parquet(self, table: pa.Table, *parts: str) -> None:
        fs, path = self._output(*parts)
        pq.write_table(table, path, filesystem=fs, compression="lz4")

    def read_parquet(self, *parts: str) -> pa.Table:
        fs, path = self._file(*parts)
        return pq.read_table(path, filesystem=fs)

    def remove(self) -> None:
        """Delete the run's folder and everything in it (nothing if it was never written)."""
        fs, path = resolve(self.location)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)
