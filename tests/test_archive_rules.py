"""tinynn._archive: the bounded reader of .npz files, against zips and .npy headers built by hand.

Each limit of the module docstring (entry count and directory size from the end record, zip64 included; names;
stored entries only; declared sizes inside the file and not overlapping; .npy header version, size, dtype and
shape against the entry's size; the metadata's size and kind) is checked at its boundary, with its message."""
import io as _io
import json
import struct
import zipfile

import numpy as np
import pytest

from tinynn import _archive
from tinynn._archive import Archive, Header, parse_json
from tinynn.errors import FileFormatError


def npy(a, version=(1, 0)):
    b = _io.BytesIO()
    np.lib.format.write_array(b, np.asarray(a), version=version, allow_pickle=False)
    return b.getvalue()


def raw_npy(header, data=b"", total=None):
    """An .npy (1.0) with ``header`` (the dict's text) padded with spaces to ``total`` characters (with '\\n')."""
    h = header.encode("latin1")
    if total is None:
        total = len(h) + 1 + (-(10 + len(h) + 1)) % 64
    h = h + b" " * (total - len(h) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def zip_bytes(entries, method=zipfile.ZIP_STORED, comment=b""):
    b = _io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
        z.comment = comment
    return bytearray(b.getvalue())


def write(tmp_path, data, name="f.npz"):
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


def central(data):
    """Offsets of the central directory headers."""
    out, i = [], data.find(b"PK\x01\x02")
    while i >= 0:
        out.append(i)
        i = data.find(b"PK\x01\x02", i + 4)
    return out


def eocd(data):
    return data.rfind(b"PK\x05\x06")


def refusal(path, fn=None):
    with pytest.raises(FileFormatError) as e:
        Archive(path).close() if fn is None else fn()
    assert e.value.path == str(path)
    return e.value.problem


ONE = [("w.npy", npy(np.arange(3.0)))]


def test_header_describes_without_data():
    h = Header([2, 3], np.dtype(np.float32), False, 128)
    assert (h.shape, h.ndim, h.size, h.nbytes, h.offset) == ((2, 3), 2, 6, 24, 128)
    assert repr(h) == "Header(shape=(2, 3), dtype=float32)"
    assert Header((), np.dtype("<U4"), False, 0).nbytes == 16 and Header((), np.dtype("f8"), 0, 0).size == 1


def test_a_plain_archive_reads_back(tmp_path):
    a = np.arange(6.0).reshape(2, 3)
    p = write(tmp_path, zip_bytes([("a.npy", npy(a)), ("m.npy", npy(np.array('{"x": 1}'))),
                                   ("b.npy", npy(np.array([True, False]), version=(2, 0)))]))
    with Archive(p) as ar:
        assert sorted(ar.entries) == ["a", "b", "m"] and ar.size == p.stat().st_size
        hs = ar.headers(skip=("m",))
        assert sorted(hs) == ["a", "b"] and hs["a"].shape == (2, 3) and hs["b"].dtype == np.bool_
        np.testing.assert_array_equal(ar.read("a", hs["a"]), a)
        np.testing.assert_array_equal(ar.read("b"), [True, False])
        assert ar.read_meta("m") == '{"x": 1}'
    assert ar._f.closed


# --------------------------------------------------------------------------------------------- the end record
@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not a zip at all", b"x" * 40 + b"PK\x05\x06" + b"\0" * 17])
def test_no_end_record(tmp_path, data):
    assert refusal(write(tmp_path, data)) == "truncated, empty or corrupt file (no zip end-of-directory record)"


def test_an_end_record_of_exactly_22_bytes_and_a_longest_comment_are_read(tmp_path):
    with Archive(write(tmp_path, zip_bytes(ONE, comment=b"c" * 65535))) as ar:     # the record is 65557 from the end
        assert list(ar.entries) == ["w"]


def test_the_end_record_is_looked_for_within_the_longest_comment(tmp_path):
    """22 bytes of record + at most 65535 of comment: a record further from the end is not one."""
    data = zip_bytes(ONE, comment=b"c" * 65535) + b"x"
    assert refusal(write(tmp_path, data)) == "truncated, empty or corrupt file (no zip end-of-directory record)"


def test_the_last_end_record_signature_is_the_record(tmp_path):
    """An array whose bytes hold the record's signature (and a count of 5000) before the real record."""
    fake = np.frombuffer(b"PK\x05\x06\0\0\0\0\x88\x13\x88\x13" + b"\0" * 20, np.uint8)
    with Archive(write(tmp_path, zip_bytes([("a.npy", npy(fake))]))) as ar:
        np.testing.assert_array_equal(ar.read("a"), fake)


def test_close_closes_the_zip_and_the_file(tmp_path):
    with Archive(write(tmp_path, zip_bytes(ONE))) as ar:
        assert ar.zf.fp is not None and not ar._f.closed
    assert ar.zf.fp is None and ar._f.closed


def test_entry_count_and_directory_size_from_the_end_record(tmp_path):
    data = zip_bytes(ONE)
    e = eocd(data)
    d = bytearray(data)
    d[e + 10:e + 12] = struct.pack("<H", 4097)
    assert refusal(write(tmp_path, d)) == ("the zip directory announces 4097 entries; a tinynn file has at most "
                                           "4096")
    d[e + 10:e + 12] = struct.pack("<H", 4096)                 # at the limit: zipfile reads the directory itself
    with Archive(write(tmp_path, d, "g.npz")) as ar:
        assert list(ar.entries) == ["w"]
    d = bytearray(data)
    d[e + 12:e + 16] = struct.pack("<L", (1 << 20) + 1)
    assert refusal(write(tmp_path, d)) == ("the zip directory takes 1048577 bytes; a tinynn file's takes at most "
                                           "1048576")
    d[e + 12:e + 16] = struct.pack("<L", 1 << 20)
    assert refusal(write(tmp_path, d)).startswith("truncated, empty or corrupt file (BadZipFile: ")


def zip64(data, entries, cd_size, z64_offset=None, markers=("entries", "size", "offset")):
    """``data`` (a zip) with a zip64 end record and locator before an end record that defers to them: its
    ``markers`` fields hold 0xFFFF / 0xFFFFFFFF ("look in the zip64 record"), the others their real values."""
    e = eocd(data)
    n, size, off = struct.unpack("<HLL", data[e + 10:e + 20])
    body = bytes(data[:e])
    rec = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, off)
    loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body) if z64_offset is None else z64_offset, 1)
    n16 = 0xFFFF if "entries" in markers else n
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n16, n16, 0xFFFFFFFF if "size" in markers else size,
                      0xFFFFFFFF if "offset" in markers else off, 0)
    return body + rec + loc + end


@pytest.mark.parametrize("marker", ["entries", "size", "offset"])
def test_any_one_zip64_marker_sends_the_reader_to_the_zip64_record(tmp_path, marker):
    data = zip_bytes(ONE)
    e = eocd(data)
    n, size = struct.unpack("<HL", data[e + 10:e + 16])
    with Archive(write(tmp_path, zip64(data, n, size, markers=(marker,)))) as ar:
        np.testing.assert_array_equal(ar.read("w"), np.arange(3.0))
    assert refusal(write(tmp_path, zip64(data, 5000, size, markers=(marker,)))) == (
        "the zip directory announces 5000 entries; a tinynn file has at most 4096")


def test_zip64_end_record_counts(tmp_path):
    data = zip_bytes(ONE)
    e = eocd(data)
    n, size = struct.unpack("<HL", data[e + 10:e + 16])
    with Archive(write(tmp_path, zip64(data, n, size))) as ar:
        np.testing.assert_array_equal(ar.read("w"), np.arange(3.0))
    assert refusal(write(tmp_path, zip64(data, 5000, size))) == ("the zip directory announces 5000 entries; a tinynn "
                                                                 "file has at most 4096")
    assert refusal(write(tmp_path, zip64(data, n, 3 << 20))) == ("the zip directory takes 3145728 bytes; a tinynn "
                                                                 "file's takes at most 1048576")
    # a locator pointing past the end: the 16-bit fields stand (0xFFFF entries: refused)
    p = write(tmp_path, zip64(data, n, size, z64_offset=10**9))
    assert refusal(p) == "the zip directory announces 65535 entries; a tinynn file has at most 4096"


# --------------------------------------------------------------------------------------------- the entries
def test_entry_count_of_the_directory_itself(tmp_path):
    entries = [(f"a{i}.npy", b"") for i in range(4097)]
    data = zip_bytes(entries)
    e = eocd(data)
    data[e + 8:e + 12] = struct.pack("<2H", 7, 7)             # the end record understates the count
    assert refusal(write(tmp_path, data)) == ("the zip directory holds 4097 entries; a tinynn file has at most "
                                              "4096")
    with Archive(write(tmp_path, zip_bytes(entries[:4096]), "g.npz")) as ar:
        assert len(ar.entries) == 4096


def test_entry_names(tmp_path):
    ok = "n" * 251 + ".npy"
    with Archive(write(tmp_path, zip_bytes([(ok, npy(1.0))]))) as ar:
        assert list(ar.entries) == ["n" * 251]
    long = "n" * 252 + ".npy"
    assert refusal(write(tmp_path, zip_bytes([(long, npy(1.0))]))) == (
        "entry '" + "n" * 28 + "... (228 more characters)' has a name of 256 characters; tinynn's have at most 255")
    assert refusal(write(tmp_path, zip_bytes([("a.txt", b"x")]))) == ("entry 'a.txt' is not an .npy array (not a "
                                                                      "tinynn file)")
    with pytest.warns(UserWarning):
        data = zip_bytes([("a.npy", npy(1.0)), ("a.npy", npy(2.0))])
    assert refusal(write(tmp_path, data)) == "entry 'a.npy' appears twice (corrupt file)"


def test_long_entry_names_are_quoted_cut(tmp_path):
    name = "n" * 100 + ".npy"
    cut = repr(name[:48] + "... (56 more characters)")
    assert refusal(write(tmp_path, zip_bytes([("t" * 100 + ".txt", b"x")]))) == (
        f"entry {'t' * 48 + '... (56 more characters)'!r} is not an .npy array (not a tinynn file)")
    with pytest.warns(UserWarning):
        data = zip_bytes([(name, npy(1.0)), (name, npy(2.0))])
    assert refusal(write(tmp_path, data)) == f"entry {cut} appears twice (corrupt file)"
    assert refusal(write(tmp_path, zip_bytes([(name, npy(1.0))], zipfile.ZIP_DEFLATED))).startswith(
        f"entry {cut} is compressed with deflate; ")
    data = zip_bytes([(name, npy(1.0))])
    c = central(data)[0]
    d = bytearray(data)
    d[c + 8:c + 10] = struct.pack("<H", 1)
    assert refusal(write(tmp_path, d)) == f"entry {cut} is encrypted; tinynn files are not"
    d = bytearray(data)
    d[c + 20:c + 24] = struct.pack("<L", 5)
    assert refusal(write(tmp_path, d)).startswith(f"entry {cut} is stored with 5 bytes but declares ")
    d = bytearray(data)
    d[c + 20:c + 28] = struct.pack("<2L", len(d), len(d))
    assert refusal(write(tmp_path, d)).startswith(f"entry {cut} declares {len(d)} bytes at offset 0, beyond the end")


def test_encrypted_flag(tmp_path):
    data = zip_bytes(ONE)
    c = central(data)[0]
    data[c + 8:c + 10] = struct.pack("<H", 1)
    assert refusal(write(tmp_path, data)) == "entry 'w.npy' is encrypted; tinynn files are not"
    data[c + 8:c + 10] = struct.pack("<H", 2 | 8)             # other flags (options, data descriptor): read
    with Archive(write(tmp_path, data, "g.npz")) as ar:
        assert list(ar.entries) == ["w"]


@pytest.mark.parametrize("method, name", [(zipfile.ZIP_DEFLATED, "deflate"), (zipfile.ZIP_BZIP2, "bzip2"),
                                          (zipfile.ZIP_LZMA, "lzma")])
def test_compressed_entries_are_refused_by_name(tmp_path, method, name):
    assert refusal(write(tmp_path, zip_bytes(ONE, method))) == (
        f"entry 'w.npy' is compressed with {name}; tinynn files store their arrays uncompressed (numpy.savez), "
        "and no other compression method is read")


@pytest.mark.parametrize("code, name", [(77, "method 77"), (99, "AES encryption"), (93, "zstandard"),
                                        (1, "shrink")])
def test_unknown_methods_are_named(tmp_path, code, name):
    data = zip_bytes(ONE)
    c = central(data)[0]
    data[c + 10:c + 12] = struct.pack("<H", code)
    assert refusal(write(tmp_path, data)).startswith(f"entry 'w.npy' is compressed with {name}; ")


def test_declared_sizes(tmp_path):
    data = zip_bytes(ONE)
    size = len(data)
    c = central(data)[0]
    d = bytearray(data)
    d[c + 20:c + 24] = struct.pack("<L", 5)
    n = len(ONE[0][1])
    assert refusal(write(tmp_path, d)) == f"entry 'w.npy' is stored with 5 bytes but declares {n} (corrupt file)"
    d = bytearray(data)
    d[c + 20:c + 28] = struct.pack("<2L", size - 29, size - 29)       # 30 bytes of local header + this: 1 too many
    assert refusal(write(tmp_path, d)) == (f"entry 'w.npy' declares {size - 29} bytes at offset 0, beyond the end "
                                           f"of the {size}-byte file (truncated or corrupt file)")
    d[c + 20:c + 28] = struct.pack("<2L", size - 30, size - 30)       # just fits: not refused on opening
    with Archive(write(tmp_path, d, "g.npz")) as ar:
        assert ar.entries["w"].file_size == size - 30


def test_overlapping_entries(tmp_path):
    data = zip_bytes([("a.npy", npy(1.0)), ("b.npy", npy(2.0))])
    size = len(data)
    ca, cb = central(data)
    off_b = struct.unpack("<L", data[cb + 42:cb + 46])[0]
    d = bytearray(data)
    d[ca + 20:ca + 28] = struct.pack("<2L", size - 30, size - 30)    # each fits in the file, together they do not
    assert refusal(write(tmp_path, d)) == (f"the entries declare more bytes than the {size}-byte file holds "
                                           "(overlapping entries: corrupt or crafted file)")
    fa = size - 30 - (struct.unpack("<L", data[cb + 24:cb + 28])[0])  # a's size + b's size == the file's size
    d = bytearray(data)
    d[ca + 20:ca + 28] = struct.pack("<2L", fa, fa)
    assert off_b + 30 + 0 < size
    with Archive(write(tmp_path, d, "g.npz")) as ar:
        assert sum(i.file_size for i in ar.entries.values()) == size - 30


# --------------------------------------------------------------------------------------------- .npy headers
def one(tmp_path, data, name="x.npy"):
    return write(tmp_path, zip_bytes([(name, data)]))


def header_refusal(tmp_path, data):
    p = one(tmp_path, data)
    with Archive(p) as ar:
        return refusal(p, lambda: ar.header("x"))


def test_npy_versions(tmp_path):
    a = np.arange(4, dtype=np.float32)
    for v in ((1, 0), (2, 0)):
        with Archive(one(tmp_path, npy(a, v))) as ar:
            np.testing.assert_array_equal(ar.read("x"), a)
    d = bytearray(npy(a, (2, 0)))
    d[6:8] = b"\x03\x00"
    assert header_refusal(tmp_path, d) == ("entry 'x.npy': not a readable .npy array (ValueError: .npy format version "
                                           "(3, 0) (tinynn files use 1.0 or 2.0))")


def test_npy_header_size_limit(tmp_path):
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }"
    with Archive(one(tmp_path, raw_npy(head, b"\0" * 8, total=10000))) as ar:
        assert ar.header("x").shape == (1,)
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 8, total=10001)).startswith(
        "entry 'x.npy': not a readable .npy array (ValueError: Header info length (10001) is large")


@pytest.mark.parametrize("head", ["{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",     # TokenError
                                  "{'descr': '<f8'}", "[1, 2]", "{'descr': 'zz', 'fortran_order': False, 'shape': ()}"])
def test_unreadable_headers(tmp_path, head):
    """Refused as unreadable, whatever numpy raises (an unclosed brace: tokenize.TokenError, no ValueError)."""
    assert header_refusal(tmp_path, raw_npy(head)).startswith("entry 'x.npy': not a readable .npy array (")


def test_object_arrays_are_refused_as_pickles(tmp_path):
    head = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 8)) == (
        "refused: the file holds pickled objects (entry 'x.npy' has dtype object), and tinynn never unpickles (a "
        "tinynn file has plain arrays only)")


@pytest.mark.parametrize("descr, shown", [("'<c16'", "complex128"), ("[('a', '<f8')]", "[('a', '<f8')]"),
                                          ("('<f8', (2,))", "('<f8', (2,))"), ("'|V8'", "|V8"),
                                          ("'<M8[s]'", "datetime64[s]"), ("'|S8'", "|S8")])
def test_dtypes_other_than_numbers_and_text(tmp_path, descr, shown):
    head = "{'descr': %s, 'fortran_order': False, 'shape': (1,), }" % descr
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 16)) == (
        f"entry 'x.npy' has dtype {shown}; a tinynn file holds arrays of real numbers or strings only")


@pytest.mark.parametrize("descr", ["'|b1'", "'<i8'", "'<u2'", "'<f4'", "'<U3'"])
def test_numbers_and_text_are_read(tmp_path, descr):
    head = "{'descr': %s, 'fortran_order': False, 'shape': (2,), }" % descr
    dt = np.dtype(eval(descr))
    with Archive(one(tmp_path, raw_npy(head, b"\0" * (2 * dt.itemsize)))) as ar:
        assert ar.read("x").tolist() == np.zeros(2, dt).tolist()


def test_long_dtypes_and_shapes_are_quoted_cut(tmp_path):
    dt = np.dtype([(f"f{i}", "<f8") for i in range(10)])
    head = "{'descr': %r, 'fortran_order': False, 'shape': (1,), }" % (np.lib.format.dtype_to_descr(dt),)
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 80)) == (
        f"entry 'x.npy' has dtype {str(dt)[:48]}... ({len(str(dt)) - 48} more characters); a tinynn file holds arrays "
        "of real numbers or strings only")
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % ((-1,) * 30,)
    assert header_refusal(tmp_path, raw_npy(head)) == ("entry 'x.npy': its header announces the negative shape "
                                                       + str((-1,) * 30)[:48] + "... (72 more characters)")


def test_a_long_shape_against_its_size_is_quoted_cut(tmp_path):
    shape = (1,) * 40
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % (shape,)
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 16)) == (
        f"entry 'x.npy': its header announces shape {str(shape)[:48]}... ({len(str(shape)) - 48} more characters) of "
        "float64 (8 bytes) but it holds 16 bytes (corrupt file)")


def test_strings_of_no_characters(tmp_path):
    head = "{'descr': '<U0', 'fortran_order': False, 'shape': (3,), }"
    with Archive(one(tmp_path, raw_npy(head))) as ar:
        assert ar.header("x").nbytes == 0
        a = ar.read("x")
    assert a.shape == (3,) and a.dtype.kind == "U" and a.tolist() == ["", "", ""]


def test_a_damaged_local_header_is_refused_as_corrupt(tmp_path):
    data = zip_bytes(ONE)
    data[3] = 5                                                  # PK\x03\x04 -> PK\x03\x05: the directory is intact
    p = write(tmp_path, data)
    with Archive(p) as ar:
        assert refusal(p, lambda: ar.read("w")) == ("truncated, empty or corrupt file (BadZipFile: Bad magic number "
                                                    "for file header)")


def test_shapes_against_sizes(tmp_path):
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }"
    assert header_refusal(tmp_path, raw_npy(head)) == "entry 'x.npy': its header announces the negative shape (-1,)"
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 16)) == (
        "entry 'x.npy': its header announces shape (3,) of float64 (24 bytes) but it holds 16 bytes (corrupt file)")
    assert header_refusal(tmp_path, raw_npy(head, b"\0" * 32)).endswith("(24 bytes) but it holds 32 bytes "
                                                                        "(corrupt file)")
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }"
    with Archive(one(tmp_path, raw_npy(head))) as ar:
        assert ar.read("x").shape == (0, 5)


# --------------------------------------------------------------------------------------------- reading
def test_read_checks_the_header_it_was_given(tmp_path):
    a = np.arange(6.0).reshape(2, 3)
    with Archive(one(tmp_path, npy(a))) as ar:
        h = ar.header("x")
        np.testing.assert_array_equal(ar.read("x", h), a)
        for other in (Header((3, 2), h.dtype, False, 0), Header((2, 3), np.dtype("f4"), False, 0),
                      Header((2, 3), h.dtype, True, 0)):
            assert refusal(ar.path, lambda: ar.read("x", other)) == "entry 'x.npy' changed while it was read"


def test_read_gives_native_c_contiguous_arrays(tmp_path):
    a = np.arange(6.0).reshape(2, 3)
    for stored in (np.asfortranarray(a), a.astype(">f8"), np.asfortranarray(a.astype(">f4"))):
        with Archive(one(tmp_path, npy(stored))) as ar:
            back = ar.read("x")
        np.testing.assert_array_equal(back, a)
        assert back.flags.c_contiguous and back.dtype.isnative and back.dtype == stored.dtype.newbyteorder("=")


def test_read_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "CHUNK", 7)
    a = np.arange(10.0)
    with Archive(one(tmp_path, npy(a))) as ar:
        np.testing.assert_array_equal(ar.read("x"), a)


@pytest.mark.parametrize("n", [100, 10000])
def test_a_corrupted_entry_is_refused_as_corrupt(tmp_path, n):
    """The CRC fails where the entry's end is read: with the header (a small entry) or with the data."""
    a = np.arange(float(n))
    data = zip_bytes([("x.npy", npy(a))])
    data[data.index(a[-2:].tobytes())] ^= 0xFF                   # near the end of the data
    p = write(tmp_path, data)
    with Archive(p) as ar:
        assert refusal(p, lambda: ar.read("x")) == "truncated, empty or corrupt file (BadZipFile: Bad CRC-32 for " \
                                                    "file 'x.npy')"


def test_corrupt_message():
    e = _archive._corrupt("p", ValueError("boom"))
    assert isinstance(e, FileFormatError) and str(e) == "p: truncated, empty or corrupt file (ValueError: boom)"
    assert _archive._corrupt("p", EOFError("z" * 300)).problem == ("truncated, empty or corrupt file (EOFError: "
                                                                   + "z" * 168 + "... (132 more characters))")


@pytest.mark.parametrize("chunk", [1 << 20, 7])
def test_an_entry_stream_shorter_or_longer_than_its_header_is_refused(tmp_path, monkeypatch, chunk):
    """Whatever the zip layer gives: fewer bytes than the header announces (no endless loop) or more."""
    monkeypatch.setattr(_archive, "CHUNK", chunk)
    entry = npy(np.arange(10.0))
    p = one(tmp_path, entry)
    with Archive(p) as ar:
        for payload, says in ((entry[:-8], "entry 'x.npy': truncated (corrupt file)"),
                              (entry + b"xyz", "entry 'x.npy' holds more bytes than its header announces (corrupt "
                                               "file)")):
            monkeypatch.setattr(ar, "_stream", lambda info, payload=payload: _io.BytesIO(payload))
            assert refusal(p, lambda: ar.read("x")) == says
        monkeypatch.setattr(ar, "_stream", lambda info: _io.BytesIO(entry))
        np.testing.assert_array_equal(ar.read("x"), np.arange(10.0))


# --------------------------------------------------------------------------------------------- the metadata
def test_metadata_entry(tmp_path, monkeypatch):
    text = json.dumps({"a": [1, 2]})
    data = npy(np.array(text))
    p = write(tmp_path, zip_bytes([("m.npy", data), ("f.npy", npy(np.zeros(2))), ("u.npy", npy(np.array(["a"])))]))
    with Archive(p) as ar:
        assert ar.read_meta("m") == text
        assert refusal(p, lambda: ar.read_meta("f")) == ("corrupt metadata: f is a float64 array of shape (2,), "
                                                         "expected a JSON string")
        assert refusal(p, lambda: ar.read_meta("u")) == ("corrupt metadata: u is <U1 array of shape (1,), expected "
                                                         "a JSON string").replace("is <U1", "is a <U1")
        monkeypatch.setattr(_archive, "META_MAX_BYTES", len(data) - _archive.HEADER_MAX_BYTES)
        assert ar.read_meta("m") == text                         # exactly at the limit
        monkeypatch.setattr(_archive, "META_MAX_BYTES", len(data) - _archive.HEADER_MAX_BYTES - 1)
        assert refusal(p, lambda: ar.read_meta("m")) == (
            f"the metadata entry 'm.npy' takes {len(data)} bytes; a tinynn file's metadata takes at most "
            f"{len(data) - _archive.HEADER_MAX_BYTES - 1}")


def test_limits_are_what_the_docstring_says():
    assert (_archive.MAX_ENTRIES, _archive.MAX_DIRECTORY_BYTES, _archive.MAX_NAME) == (4096, 1 << 20, 255)
    assert (_archive.META_MAX_BYTES, _archive.HEADER_MAX_BYTES) == (64 << 20, 10000)
    assert _archive.ALLOWED_METHODS == {zipfile.ZIP_STORED}


def test_parse_json():
    assert parse_json("p", '{"a": 1}') == {"a": 1}
    with pytest.raises(FileFormatError) as e:
        parse_json("p", "{nope")
    assert e.value.path == "p" and e.value.problem.startswith("corrupt metadata: not valid JSON (JSONDecodeError: "
                                                              "Expecting property name")
    with pytest.raises(FileFormatError, match=r"^p: corrupt metadata: not valid JSON \(RecursionError: "):
        parse_json("p", "[" * 100000 + "]" * 100000)
