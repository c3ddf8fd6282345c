"""The one reader of tinynn files: a bounded reader of .npz archives (zip files of .npy arrays).

Every tinynn file (estimator, model, checkpoint) is read here, with limits decided before anything is read:

* the zip's end record is read by hand first: at most ``MAX_ENTRIES`` entries and a central directory of at most
  ``MAX_DIRECTORY_BYTES``, before ``zipfile`` parses it;
* only the compression method tinynn writes (``numpy.savez``: stored, uncompressed) is read; deflate, bzip2,
  lzma, ... are refused by name before a byte of them is decompressed, so no entry can expand beyond the bytes
  it occupies in the file;
* every entry's declared size fits inside the file, and the entries' declared sizes together do not exceed
  the file's size (overlapping entries cannot multiply one region);
* the metadata entry is read first (at most ``META_MAX_BYTES``); then every .npy header (at most
  ``HEADER_MAX_BYTES``), each checked against the entry's size; then the caller's ``plan`` checks the
  headers against the model the metadata describes (names, dtypes, shapes), before any array's data is read;
* the data of each entry is read in chunks into one buffer of the declared size; an entry that holds more or
  fewer bytes than it declares is refused (and the zip's CRC is checked at its end).

So the memory a file can make tinynn use is bounded by the file's size (plus the metadata's parse), and a file
whose arrays do not fit its own description of the model is refused before they are read. Every refusal is a
``FileFormatError`` naming the file, with a message of bounded length."""
from __future__ import annotations

import json
import math
import os
import struct
import tokenize
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import FileFormatError, short

MAX_ENTRIES = 4096                     # a checkpoint of a 100-layer model with 20 snapshots has < 2000
MAX_DIRECTORY_BYTES = 1 << 20          # 4096 entries of 256 bytes (tinynn's names are < 40 characters)
MAX_NAME = 255                         # characters of an entry name
META_MAX_BYTES = 64 << 20              # the JSON metadata (4 bytes per character in an .npy 'U' array)
HEADER_MAX_BYTES = 10000               # an .npy header (numpy's own limit for safe reading)
CHUNK = 1 << 20                        # bytes read at a time
ALLOWED_METHODS = {zipfile.ZIP_STORED}
METHOD_NAMES = {0: "stored", 1: "shrink", 6: "implode", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma",
                93: "zstandard", 95: "xz", 98: "ppmd", 99: "AES encryption"}
ARRAY_KINDS = "biufU"                  # booleans, integers, floats, text: all a tinynn file holds

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


class Header:
    """What an .npy header announces: ``shape``, ``dtype`` (and ``ndim``, ``size``, ``nbytes``), read without the
    data, so the checks of ``tinynn._filecheck`` that look at names, dtypes and shapes run on it as on arrays."""

    __slots__ = ("shape", "dtype", "fortran", "offset")

    def __init__(self, shape, dtype, fortran, offset):
        self.shape, self.dtype, self.fortran, self.offset = tuple(shape), dtype, fortran, offset

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def __repr__(self):
        return f"Header(shape={self.shape}, dtype={self.dtype})"


def _corrupt(path, e):
    return FileFormatError(path, f"truncated, empty or corrupt file ({type(e).__name__}: {short(str(e))})")


def _end_record(path, f, size):
    """(entries, directory bytes) from the zip's end-of-central-directory record (zip64 too), read by hand."""
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(_EOCD)
    if i < 0 or len(tail) - i < 22:
        raise FileFormatError(path, "truncated, empty or corrupt file (no zip end-of-directory record)")
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[i:i + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        pos = size - tail_len + i - 20
        if pos >= 0:
            f.seek(pos)
            loc = f.read(20)
            if loc[:4] == _ZIP64_LOCATOR:
                _, _, z64, _ = struct.unpack("<4sLQL", loc)
                if z64 + 56 <= size:
                    f.seek(z64)
                    rec = f.read(56)
                    if rec[:4] == _ZIP64_EOCD:
                        entries, cd_size = struct.unpack("<4sQ2H2L4Q", rec)[7:9]
    return entries, cd_size


class Archive:
    """An open tinynn file: ``entries`` (key -> ZipInfo, key = name without .npy), checked on opening.

    ``read_meta(key)`` the metadata text; ``headers()`` every other entry's .npy header; ``read(key, header)``
    one entry's data. Use as a context manager."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "rb")                          # OSErrors of the system (permissions) pass through
        try:
            self.size = os.fstat(self._f.fileno()).st_size
            self._open()
        except BaseException:
            self._f.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        zf = getattr(self, "zf", None)
        if zf is not None:
            zf.close()
        self._f.close()

    def fail(self, problem):
        raise FileFormatError(self.path, problem)

    def _open(self):
        entries, cd_size = _end_record(self.path, self._f, self.size)
        if entries > MAX_ENTRIES:
            self.fail(f"the zip directory announces {entries} entries; a tinynn file has at most {MAX_ENTRIES}")
        if cd_size > MAX_DIRECTORY_BYTES:
            self.fail(f"the zip directory takes {cd_size} bytes; a tinynn file's takes at most "
                      f"{MAX_DIRECTORY_BYTES}")
        try:
            self._f.seek(0)
            self.zf = zipfile.ZipFile(self._f)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error,
                UnicodeDecodeError, NotImplementedError, RuntimeError) as e:
            raise _corrupt(self.path, e) from None
        if len(infos) > MAX_ENTRIES:
            self.fail(f"the zip directory holds {len(infos)} entries; a tinynn file has at most {MAX_ENTRIES}")
        self.entries: dict[str, Any] = {}
        total = 0
        for info in infos:
            name = info.filename
            if len(name) > MAX_NAME:
                self.fail(f"entry {short(name, 60)!r} has a name of {len(name)} characters; tinynn's have at most "
                          f"{MAX_NAME}")
            if not name.endswith(".npy"):
                self.fail(f"entry {short(name, 80)!r} is not an .npy array (not a tinynn file)")
            key = name[:-4]
            if key in self.entries:
                self.fail(f"entry {short(name, 80)!r} appears twice (corrupt file)")
            if info.flag_bits & 0x1:
                self.fail(f"entry {short(name, 80)!r} is encrypted; tinynn files are not")
            if info.compress_type not in ALLOWED_METHODS:
                method = METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
                self.fail(f"entry {short(name, 80)!r} is compressed with {method}; tinynn files store their arrays "
                          "uncompressed (numpy.savez), and no other compression method is read")
            if info.compress_size != info.file_size:
                self.fail(f"entry {short(name, 80)!r} is stored with {info.compress_size} bytes but declares "
                          f"{info.file_size} (corrupt file)")
            if info.header_offset < 0 or info.header_offset + 30 + info.file_size > self.size:
                self.fail(f"entry {short(name, 80)!r} declares {info.file_size} bytes at offset "
                          f"{info.header_offset}, beyond the end of the {self.size}-byte file (truncated or "
                          "corrupt file)")
            total += info.file_size
            if total > self.size:
                self.fail(f"the entries declare more bytes than the {self.size}-byte file holds (overlapping "
                          "entries: corrupt or crafted file)")
            self.entries[key] = info

    # ------------------------------------------------------------------------------------------ reading
    def _stream(self, info):
        try:
            return self.zf.open(info)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error, NotImplementedError,
                RuntimeError) as e:
            raise _corrupt(self.path, e) from None

    def _header(self, key, f):
        info = self.entries[key]
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=HEADER_MAX_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=HEADER_MAX_BYTES)
            else:
                raise ValueError(f".npy format version {version} (tinynn files use 1.0 or 2.0)")
        except (ValueError, SyntaxError, TypeError, OverflowError, MemoryError, RecursionError,
                tokenize.TokenError) as e:              # numpy re-reads a header it cannot parse with tokenize
            self.fail(f"entry {info.filename!r}: not a readable .npy array ({type(e).__name__}: {short(str(e))})")
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise _corrupt(self.path, e) from None
        if dtype.hasobject:
            self.fail(f"refused: the file holds pickled objects (entry {info.filename!r} has dtype object), and "
                      "tinynn never unpickles (a tinynn file has plain arrays only)")
        if dtype.kind not in ARRAY_KINDS:                  # structured and subarray dtypes are kind "V"
            self.fail(f"entry {info.filename!r} has dtype {short(str(dtype), 80)}; a tinynn file holds arrays of "
                      "real numbers or strings only")
        if any(d < 0 for d in shape):
            self.fail(f"entry {info.filename!r}: its header announces the negative shape {short(str(shape), 80)}")
        h = Header(shape, dtype, fortran, f.tell())
        if info.file_size != h.offset + h.nbytes:
            self.fail(f"entry {info.filename!r}: its header announces shape {short(str(h.shape), 80)} of {dtype} "
                      f"({h.nbytes} bytes) but it holds {info.file_size - h.offset} bytes (corrupt file)")
        return h

    def header(self, key):
        with self._stream(self.entries[key]) as f:
            return self._header(key, f)

    def headers(self, skip=()):
        return {k: self.header(k) for k in self.entries if k not in skip}

    def read(self, key, header=None):
        """The array of entry ``key``: its header checked against its size, its data read in chunks into one
        buffer of exactly the declared size (more or fewer bytes than declared: refused)."""
        info = self.entries[key]
        try:
            with self._stream(info) as f:
                h = self._header(key, f)
                if header is not None and (h.shape, h.dtype, h.fortran) != (header.shape, header.dtype,
                                                                            header.fortran):
                    self.fail(f"entry {info.filename!r} changed while it was read")
                buf = np.empty(h.nbytes, np.uint8)
                # ndarray has the buffer protocol; numpy's stubs omit it on this Python
                view, pos = memoryview(buf), 0  # type: ignore[arg-type]
                while pos < h.nbytes:
                    chunk = f.read(min(CHUNK, h.nbytes - pos))
                    if not chunk:
                        self.fail(f"entry {info.filename!r}: truncated (corrupt file)")
                    view[pos:pos + len(chunk)] = chunk
                    pos += len(chunk)
                if f.read(1):
                    self.fail(f"entry {info.filename!r} holds more bytes than its header announces (corrupt file)")
        except FileFormatError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error, ValueError) as e:
            raise _corrupt(self.path, e) from None
        a = buf.view(h.dtype) if h.dtype.itemsize else np.empty(h.size, h.dtype)
        a = a.reshape(h.shape[::-1]).T if h.fortran else a.reshape(h.shape)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        return a

    def read_meta(self, key):
        """The metadata entry's text (a 0-d string array holding JSON), at most META_MAX_BYTES."""
        info = self.entries[key]
        if info.file_size > META_MAX_BYTES + HEADER_MAX_BYTES:
            self.fail(f"the metadata entry {info.filename!r} takes {info.file_size} bytes; a tinynn file's "
                      f"metadata takes at most {META_MAX_BYTES}")
        h = self.header(key)
        if h.dtype.kind != "U" or h.shape != ():
            self.fail(f"corrupt metadata: {key} is a {h.dtype} array of shape {h.shape}, expected a JSON string")
        return str(self.read(key, h)[()])


def parse_json(path, text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"corrupt metadata: not valid JSON ({type(e).__name__}: {short(str(e))})") \
            from None
