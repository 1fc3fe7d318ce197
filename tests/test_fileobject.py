"""verdigris.fileobject: cooperative file objects over pipes, and thread-pool ones over files.

Real pipes between greenlets of this process, real temporary files, the hub's real thread pool.
Every wait is bounded.
"""
import errno
import io
import os
import threading
import time

import pytest

import verdigris
from verdigris.fileobject import FileObject, FileObjectBlock, FileObjectPosix, FileObjectThread

BOUND = 10


@pytest.fixture
def pipe_fds():
    """A pipe's two fds; closed afterwards unless a file object took them over."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_fileobject_is_posix():
    assert FileObject is FileObjectPosix


# -- FileObjectPosix -----------------------------------------------------------------------------

def test_writer_and_reader_greenlets_take_turns_on_a_pipe(pipe_fds):
    r, w = pipe_fds
    reader = FileObjectPosix(r, "rb")
    writer = FileObjectPosix(w, "wb")
    record = []

    def write():
        for n in range(3):
            line = b"line %d\n" % n
            writer.write(line)
            writer.flush()
            record.append(("wrote", line))
            verdigris.sleep(0.02)
        writer.close()

    def read():
        for line in reader:
            record.append(("read", line))
        reader.close()

    jobs = [verdigris.spawn(read), verdigris.spawn(write)]
    verdigris.joinall(jobs, timeout=BOUND, raise_error=True)
    assert record == [("wrote", b"line 0\n"), ("read", b"line 0\n"),
                      ("wrote", b"line 1\n"), ("read", b"line 1\n"),
                      ("wrote", b"line 2\n"), ("read", b"line 2\n")]


def test_a_blocked_reader_lets_other_greenlets_run(pipe_fds):
    r, w = pipe_fds
    reader = FileObjectPosix(r, "rb", closefd=False)
    ticks = []

    def tick():
        for _ in range(10):
            ticks.append(1)
            verdigris.sleep(0.01)
        os.write(w, b"done")

    verdigris.spawn(tick)
    with verdigris.Timeout(BOUND):
        assert reader.read(4) == b"done"
    assert len(ticks) == 10
    reader.close()


def test_megabytes_through_a_pipe(pipe_fds):
    r, w = pipe_fds
    payload = os.urandom(1 << 20) * 4
    reader = FileObjectPosix(r, "rb")
    writer = FileObjectPosix(w, "wb", 0)  # unbuffered: short writes reach the caller

    def write():
        view = memoryview(payload)
        while view:
            view = view[writer.write(view):]
        writer.close()

    g = verdigris.spawn(write)
    with verdigris.Timeout(BOUND):
        data = reader.read()
    g.join(timeout=BOUND)
    reader.close()
    assert data == payload


def test_text_mode_encoding_and_newlines(pipe_fds):
    r, w = pipe_fds
    writer = FileObjectPosix(w, "w", encoding="utf-8")
    reader = FileObjectPosix(r, "r", encoding="utf-8")
    writer.write("caf\u00e9\r\nsecond\n")
    writer.close()
    with verdigris.Timeout(BOUND):
        assert reader.readline() == "caf\u00e9\n"
        assert reader.readlines() == ["second\n"]
    reader.close()


def test_read_sizes_and_readinto(pipe_fds):
    r, w = pipe_fds
    os.write(w, b"abcdefgh")
    os.close(w)
    reader = FileObjectPosix(r, "rb")
    buf = bytearray(3)
    with verdigris.Timeout(BOUND):
        assert reader.read(2) == b"ab"
        assert reader.readinto(buf) == 3 and bytes(buf) == b"cde"
        assert reader.read() == b"fgh"
        assert reader.read() == b""
    reader.close()


def test_close_semantics(pipe_fds):
    r, w = pipe_fds
    reader = FileObjectPosix(r, "rb")
    assert reader.fileno() == r
    assert not reader.closed
    reader.close()
    reader.close()  # idempotent
    assert reader.closed
    with pytest.raises(OSError) as info:
        reader.read()
    assert info.value.errno == errno.EBADF
    with pytest.raises((OSError, ValueError)):
        reader.fileno()
    with pytest.raises(OSError):
        os.fstat(r)  # closefd=True (the default) closed the fd


def test_closefd_false_leaves_the_fd_open(pipe_fds):
    r, w = pipe_fds
    with FileObjectPosix(w, "wb", closefd=False) as writer:
        writer.write(b"kept")
    assert writer.closed
    os.write(w, b"!")  # still open
    assert os.read(r, 10) == b"kept!"


def test_wraps_a_file_object_and_closes_it(pipe_fds):
    r, w = pipe_fds
    raw = io.open(r, "rb", buffering=0)
    reader = FileObjectPosix(raw, "rb")
    os.write(w, b"via object")
    with verdigris.Timeout(BOUND):
        assert reader.read(10) == b"via object"
    reader.close()
    assert raw.closed


def test_works_on_a_regular_file(tmp_path):
    path = tmp_path / "data.txt"
    with FileObjectPosix(str(path), "w") as f:
        f.write("one\ntwo\n")
    with FileObjectPosix(path, "r") as f:
        assert list(f) == ["one\n", "two\n"]


@pytest.mark.verdigris_only  # gevent raises 'reentrant call' RuntimeError in the closer instead
def test_closing_in_another_greenlet_wakes_the_reader_with_ebadf(pipe_fds):
    r, _ = pipe_fds
    reader = FileObjectPosix(r, "rb")
    outcome = []

    def read():
        try:
            reader.read(10)
        except OSError as ex:
            outcome.append(ex.errno)

    g = verdigris.spawn(read)
    verdigris.sleep(0.05)
    reader.close()
    g.join(timeout=BOUND)
    assert outcome == [errno.EBADF]


@pytest.mark.verdigris_only  # gevent raises 'reentrant call' RuntimeError in the closer instead
def test_closing_under_read_to_the_end_returns_what_was_read(pipe_fds):
    r, w = pipe_fds
    reader = FileObjectPosix(r, "rb")
    os.write(w, b"so far")
    g = verdigris.spawn(reader.read)
    verdigris.sleep(0.05)
    reader.close()  # as gevent's readall, being closed under read() is its end
    g.join(timeout=BOUND)
    assert g.value == b"so far"


def test_bad_arguments_raise_like_open(pipe_fds):
    r, _ = pipe_fds
    with pytest.raises(ValueError):
        FileObjectPosix(r, "rw", closefd=False)
    with pytest.raises(ValueError):
        FileObjectPosix(r, "rbt", closefd=False)
    with pytest.raises(ValueError):
        FileObjectPosix(r, "rb", encoding="utf-8", closefd=False)
    with pytest.raises(TypeError):
        FileObjectPosix(r, 1, closefd=False)
    with pytest.raises(TypeError):
        FileObjectPosix(r, "rb", buffering="big", closefd=False)


def test_writing_to_a_reader_is_unsupported(pipe_fds):
    r, _ = pipe_fds
    reader = FileObjectPosix(r, "rb", closefd=False)
    with pytest.raises(io.UnsupportedOperation):
        reader.write(b"x")
    reader.close()


# -- FileObjectThread and FileObjectBlock --------------------------------------------------------

def test_thread_file_object_on_a_temp_file(tmp_path):
    path = str(tmp_path / "thread.txt")
    with FileObjectThread(path, "w") as f:
        f.write("alpha\nbeta\n")
        f.writelines(["gamma\n"])
    with FileObjectThread(path, "r") as f:
        assert f.readline() == "alpha\n"
        assert list(f) == ["beta\n", "gamma\n"]
    with FileObjectThread(path, "rb") as f:
        f.seek(6)
        assert f.tell() == 6
        assert f.read() == b"beta\ngamma\n"
    assert f.closed
    with pytest.raises(OSError):
        f.read()


def test_thread_file_object_runs_operations_in_another_thread(tmp_path):
    idents = []

    class Recording(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            idents.append(threading.get_ident())
            b[:3] = b"abc"
            return 3

    f = FileObjectThread(Recording(), "rb", buffering=0)
    assert f.read(3) == b"abc"
    f.close()
    assert idents and threading.get_ident() not in idents


def test_thread_file_object_read_does_not_block_the_loop(pipe_fds):
    r, w = pipe_fds
    reader = FileObjectThread(r, "rb", buffering=0)
    ticks = []

    def tick():
        for _ in range(10):
            ticks.append(1)
            verdigris.sleep(0.01)
        os.write(w, b"late")

    verdigris.spawn(tick)
    start = time.monotonic()
    with verdigris.Timeout(BOUND):
        assert reader.read(4) == b"late"
    assert time.monotonic() - start < BOUND / 2
    assert len(ticks) == 10
    reader.close()


def test_block_file_object(tmp_path):
    path = str(tmp_path / "block.bin")
    with FileObjectBlock(path, "wb") as f:
        f.write(b"\x00\x01")
    with FileObjectBlock(path, "rb") as f:
        assert f.read() == b"\x00\x01"
    assert f.closed
