"""File objects whose blocking operations let other greenlets run.

Three wrappers with one interface (the :mod:`io` file interface, plus ``io``, ``fileio``,
``closed`` and context management):

* :class:`FileObjectPosix` (also :data:`FileObject`): puts the fd in non-blocking mode and, when a
  read or write would block, parks the greenlet until the loop reports the fd ready. Use it for
  pipes, ttys, sockets and FIFOs. A regular file is always "ready", so large reads and writes on
  one still hold up the loop while the kernel copies the data: use :class:`FileObjectThread`.
* :class:`FileObjectThread`: every operation runs in the hub's thread pool, one at a time (a
  :class:`~verdigris.lock.Semaphore`), so the loop keeps running. Works for any file.
* :class:`FileObjectBlock`: plain blocking calls (for API compatibility).

All three take :func:`open`'s arguments: a path, an fd or a file object; *mode*; *buffering* (or
gevent's old name *bufsize*); *encoding*, *errors*, *newline*; *closefd* (or *close*). Text and
binary modes, buffering, ``readline`` and iteration come from :mod:`io`'s own buffered and text
layers stacked on a raw object; only the raw object is ours.

Closing is immediate and idempotent. Afterwards every operation raises
:class:`FileObjectClosed` (``EBADF``) and ``closed`` is True. Closing a :class:`FileObjectPosix`
that another greenlet is reading or writing makes that greenlet raise
``OSError(EBADF, 'File descriptor was closed in another greenlet')``, except that a ``read()``
to the end of the file returns what it read so far (as gevent's does).

.. note::
   In gevent, closing a :class:`FileObjectPosix` that another greenlet is reading raises
   ``RuntimeError: reentrant call`` in the closer (the buffered reader's lock is held by the
   parked reader) and leaves the reader parked; verdigris closes the raw stream underneath, so
   the close succeeds and the reader gets ``EBADF``. A ``'+'`` mode on an fd that cannot seek
   (a socket) gets an :class:`io.BufferedRWPair` rather than gevent's failing
   :class:`io.BufferedRandom`.
"""
import io
import os
import sys
from errno import EBADF

from verdigris._core import READ, WRITE
from verdigris.hub import get_hub
# The originals, even if os is monkey patched already.
from verdigris.os import _close, _read, _write, make_nonblocking

__all__ = ["FileObjectPosix", "FileObjectThread", "FileObjectBlock", "FileObject"]

#: Bytes asked for per read by ``readall`` (``read()`` with no size): a pipe holds 64 KiB.
_READALL_CHUNK = 65536


class FileObjectClosed(IOError):
    """Raised by every operation on a closed file object."""

    def __init__(self):
        IOError.__init__(self, EBADF, "Bad file descriptor (FileObject was closed)")


class _ClosedIO:
    """Stands in for the io object once closed: any use raises :class:`FileObjectClosed`."""

    __slots__ = ("name",)

    def __init__(self, io_obj):
        try:
            self.name = io_obj.name
        except AttributeError:
            pass

    def __getattr__(self, name):
        raise FileObjectClosed()

    def __bool__(self):
        return False


class _OpenDescriptor:
    """The arguments of :func:`open`, checked as :func:`io.open` checks them; opens and wraps."""

    def __init__(self, fobj, mode="r", bufsize=None, close=None, encoding=None, errors=None,
                 newline=None, buffering=None, closefd=None):
        closefd = _one_of("closefd", closefd, "close", close, True)
        buffering = _one_of("buffering", buffering, "bufsize", bufsize, -1)
        if not hasattr(fobj, "fileno"):
            if not isinstance(fobj, int):
                fobj = os.fspath(fobj)
            if isinstance(fobj, (str, bytes)):
                closefd = True  # we open it, we close it
        if not isinstance(mode, str):
            raise TypeError("invalid mode: %r" % (mode,))
        if not isinstance(buffering, int):
            raise TypeError("invalid buffering: %r" % (buffering,))
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError("invalid encoding: %r" % (encoding,))
        if errors is not None and not isinstance(errors, str):
            raise TypeError("invalid errors: %r" % (errors,))
        chars = set(mode)
        if chars - set("axrwb+tU") or len(mode) > len(chars):
            raise ValueError("invalid mode: %r" % (mode,))
        writing = chars & set("xwa")
        reading = "r" in chars or "U" in chars
        if "U" in chars and (writing or "+" in chars):
            raise ValueError("mode U cannot be combined with 'x', 'w', 'a', or '+'")
        if "t" in chars and "b" in chars:
            raise ValueError("can't have text and binary mode at once")
        if len(writing) + reading > 1:
            raise ValueError("must have exactly one of create/read/write/append mode")
        if not writing and not reading:
            raise ValueError(
                "Must have exactly one of create/read/write/append mode and at most one plus")
        self.binary = "b" in chars
        if self.binary:
            for name, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
                if value is not None:
                    raise ValueError("binary mode doesn't take an %s argument" % name)
            if buffering == 1:
                import warnings

                warnings.warn("line buffering (buffering=1) isn't supported in binary mode, "
                              "the default buffer size will be used", RuntimeWarning, 4)
        self.fobj = fobj
        self.updating = "+" in chars
        self.can_read = reading or self.updating
        self.can_write = bool(writing) or self.updating
        #: The mode for FileIO: exactly one of xrwa, maybe +.
        self.raw_mode = ("r" if reading else "".join(writing)) + ("+" if self.updating else "")
        self.mode = self.raw_mode + ("t" if "t" in chars else "") + ("b" if self.binary else "")
        self.buffering = buffering
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self.closefd = closefd

    def is_fd(self):
        return isinstance(self.fobj, int)

    def open_raw(self):
        """The object to wrap: a new FileIO for a path or fd, else the given file object."""
        if hasattr(self.fobj, "fileno"):
            return self.fobj
        return io.FileIO(self.fobj, self.raw_mode, self.closefd)

    def opened(self):
        raw = self.open_raw()
        try:
            return self.wrap(raw)
        except BaseException:
            if raw is not self.fobj:
                raw.close()
            raise

    def wrap(self, raw):
        """Stacks :mod:`io`'s buffered and text layers on *raw*, as :func:`open` would."""
        if self.binary and isinstance(raw, io.TextIOBase):
            raise ValueError("Unable to perform binary IO on top of text IO stream")
        buffering = self.buffering
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering = -1
            line_buffering = not self.binary
        if buffering < 0:
            buffering = _block_size(raw)
        result = raw
        if buffering and not _is_buffered(raw):
            if self.updating:
                # A pipe or socket cannot seek, which BufferedRandom demands.
                result = (io.BufferedRandom(raw, buffering) if raw.seekable()
                          else io.BufferedRWPair(raw, raw, buffering))
            elif self.can_write:
                result = io.BufferedWriter(raw, buffering)
            else:
                result = io.BufferedReader(raw, buffering)
        if not self.binary and not isinstance(raw, io.TextIOBase):
            result = io.TextIOWrapper(result, self.encoding, self.errors, self.newline,
                                      line_buffering)
        if result is not raw:
            try:
                result.mode = self.mode
            except (AttributeError, TypeError):
                pass
        return result


def _one_of(name, value, old_name, old_value, default):
    if value is not None and old_value is not None:
        raise TypeError("Cannot specify both %s=%s and %s=%s" % (name, value, old_name, old_value))
    if value is None and old_value is None:
        return default
    return value if value is not None else old_value


def _is_buffered(stream):
    return isinstance(stream, (io.BufferedIOBase, io.TextIOBase))


def _block_size(stream):
    try:
        size = os.fstat(stream.fileno()).st_blksize
    except (OSError, AttributeError, ValueError):
        return io.DEFAULT_BUFFER_SIZE
    return size if size > 1 else io.DEFAULT_BUFFER_SIZE


class GreenFileDescriptorIO(io.RawIOBase):
    """A raw, unbuffered stream on a non-blocking fd whose reads and writes park the greenlet.

    The fd is waited on in the loop of the hub that created the object. When :meth:`close`
    closes the fd (``closefd=True``, or a *keep_alive* file object that owns it), the fd stays
    registered with the loop between waits (one ``epoll_ctl`` for the object's life) and close
    tells the loop first; an fd we do not own is registered for each wait only, since its owner
    may close it without telling the loop.
    """

    def __init__(self, fileno, readable, writable, closefd=True, keep_alive=None, mode=None):
        io.RawIOBase.__init__(self)
        self._fileno = fileno
        self._readable = readable
        self._writable = writable
        self._closefd = closefd
        # The file object we took the fd from: closed with us, and kept from closing it earlier.
        self._keep_alive = keep_alive
        # Will the fd be closed by our close()? Then the loop may keep it registered until then.
        self._owned = closefd or keep_alive is not None
        self._seekable = None
        self.name = fileno
        self.mode = mode
        make_nonblocking(fileno)
        self._loop = get_hub().loop

    def __repr__(self):
        return "<%s at 0x%x fileno=%s mode=%r>" % (
            type(self).__name__, id(self), self._fileno, self.mode)

    def readable(self):
        return self._readable

    def writable(self):
        return self._writable

    def seekable(self):
        if self._seekable is None:
            try:
                os.lseek(self._checked_fileno(), 0, os.SEEK_CUR)
            except OSError:
                self._seekable = False
            else:
                self._seekable = True
        return self._seekable

    def isatty(self):
        return os.isatty(self._checked_fileno())

    def fileno(self):
        return self._checked_fileno()

    def _checked_fileno(self):
        if self._fileno < 0:
            raise ValueError("I/O operation on closed file")
        return self._fileno

    def _wait(self, events):
        fd = self._fileno
        self._loop.wait_fd(fd, events, None, True, self._owned)
        if self._fileno != fd:
            # Closed while we waited on an fd we do not own (no close_fd to wake us with EBADF).
            raise OSError(EBADF, "File descriptor was closed in another greenlet")

    def _read(self, n):
        if not self._readable:
            raise io.UnsupportedOperation("read")
        while True:
            try:
                return _read(self._checked_fileno(), n)
            except BlockingIOError:
                pass
            self._wait(READ)

    def readinto(self, b):
        view = memoryview(b).cast("B")
        data = self._read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def readall(self):
        chunks = []
        while True:
            try:
                data = self._read(_READALL_CHUNK)
            except OSError as ex:
                if ex.errno != EBADF or self._fileno >= 0:
                    raise
                # Closed by another greenlet while we read to the end: as gevent, that is the
                # end (``with Popen(...)`` closes the pipes that a reader may be draining).
                data = b""
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def write(self, b):
        if not self._writable:
            raise io.UnsupportedOperation("write")
        while True:
            try:
                return _write(self._checked_fileno(), b)
            except BlockingIOError:
                pass
            self._wait(WRITE)

    def seek(self, offset, whence=os.SEEK_SET):
        return os.lseek(self._checked_fileno(), offset, whence)

    def tell(self):
        return self.seek(0, os.SEEK_CUR)

    def close(self):
        if self.closed:
            return
        fd, self._fileno = self._fileno, -1
        keep_alive, self._keep_alive = self._keep_alive, None
        try:
            io.RawIOBase.close(self)
            if self._owned and not self._loop.destroyed and self._loop.owned_by_current_thread():
                # The fd is about to go: wake its waiters with EBADF, drop our registration.
                # (From another thread, e.g. the GC's, nobody of ours can be waiting on it.)
                self._loop.close_fd(fd)
        finally:
            # Whatever happened above, the fd must not leak.
            try:
                if self._closefd:
                    _close(fd)
            finally:
                if keep_alive is not None:
                    keep_alive.close()


class FileObjectBase:
    """What the three file objects share: delegation to the io object, closing, iteration."""

    #: Methods copied from the io object into the instance on creation (fast path, no
    #: ``__getattr__``) and dropped again by close().
    _delegate_methods = (
        "flush", "fileno", "writable", "readable", "seek", "seekable", "tell",
        "read", "readline", "readlines", "read1", "readinto",
        "write", "writeall", "writelines", "truncate",
    )

    _io = None

    def __init__(self, io_obj, closefd):
        self._io = io_obj
        self._close = closefd
        self._do_delegate_methods()

    @property
    def io(self):
        """The wrapped io object (buffered and/or text layer)."""
        return self._io

    @io.setter
    def io(self, value):
        self._io = value
        self._do_delegate_methods()

    def _do_delegate_methods(self):
        cls = type(self)
        for name in self._delegate_methods:
            method = getattr(self._io, name, None)
            if hasattr(cls, name):
                continue
            if method is not None:
                setattr(self, name, self._wrap_method(method))
            else:
                self.__dict__.pop(name, None)

    def _wrap_method(self, method):
        return method

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return isinstance(self._io, _ClosedIO)

    def close(self):
        """Closes the file (and the underlying fd or file if *closefd*); idempotent."""
        if self.closed:
            return
        fobj = self._io
        self._io = _ClosedIO(fobj)
        try:
            self._do_close(fobj, self._close)
        finally:
            for name in self._delegate_methods:
                self.__dict__.pop(name, None)

    def _do_close(self, fobj, closefd):
        raise NotImplementedError()

    def __getattr__(self, name):
        if name == "_io":
            raise AttributeError(name)
        return getattr(self._io, name)

    def __repr__(self):
        return "<%s at 0x%x %s_fobj=%r%s>" % (
            type(self).__name__, id(self), "closed " if self.closed else "", self._io,
            self._extra_repr())

    def _extra_repr(self):
        return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __bool__(self):
        return True


class FileObjectPosix(FileObjectBase):
    """A file object on a non-blocking fd with a blocking, cooperative interface.

    ``FileObjectPosix(fobj, mode='r', buffering=-1, closefd=True, encoding=None, errors=None,
    newline=None)``. *fobj* is an fd, a path, or a file object whose fd is used (that object is
    closed along with this one when *closefd* is true). The fd is switched to non-blocking mode
    and stays so. :attr:`fileio` is the raw, unbuffered stream underneath.
    """

    default_bufsize = io.DEFAULT_BUFFER_SIZE

    def __init__(self, *args, **kwargs):
        descriptor = _OpenDescriptor(*args, **kwargs)
        fobj = descriptor.fobj
        if descriptor.is_fd():
            raw = GreenFileDescriptorIO(fobj, descriptor.can_read, descriptor.can_write,
                                        descriptor.closefd, None, descriptor.mode)
        else:
            opened = descriptor.open_raw()
            try:
                raw = GreenFileDescriptorIO(
                    opened.fileno(), descriptor.can_read, descriptor.can_write, False,
                    opened if descriptor.closefd else None, descriptor.mode)
            except BaseException:
                if opened is not fobj:
                    opened.close()
                raise
            try:
                raw.name = opened.name
            except AttributeError:
                pass
        try:
            io_obj = descriptor.wrap(raw)
        except BaseException:
            raw.close()
            raise
        #: The raw :class:`GreenFileDescriptorIO` under the buffers.
        self.fileio = raw
        FileObjectBase.__init__(self, io_obj, descriptor.closefd)

    def _do_close(self, fobj, closefd):
        try:
            fobj.close()
        except RuntimeError as ex:
            # "reentrant call": another greenlet is parked inside the buffered object, holding
            # its lock. Closing the raw stream wakes it with EBADF; the buffer is left to the GC.
            if "reentrant" not in str(ex):
                raise
        finally:
            raw, self.fileio = self.fileio, None
            raw.close()


class FileObjectThread(FileObjectBase):
    """A file object whose every operation runs in a thread pool (default: the hub's).

    ``FileObjectThread(fobj, mode='r', buffering=-1, closefd=True, encoding=None, errors=None,
    newline=None, lock=True, threadpool=None)``. With ``lock=True`` operations run one at a
    time; pass your own :class:`~verdigris.lock.Semaphore` to share that with other code, or a
    false value for no lock.
    """

    def __init__(self, *args, **kwargs):
        lock = kwargs.pop("lock", True)
        threadpool = kwargs.pop("threadpool", None)
        descriptor = _OpenDescriptor(*args, **kwargs)
        self.threadpool = threadpool or get_hub().threadpool
        if lock is True:
            from verdigris.lock import Semaphore

            lock = Semaphore()
        elif not lock:
            from verdigris.lock import DummySemaphore

            lock = DummySemaphore()
        if not hasattr(lock, "__enter__"):
            raise TypeError("Expected a Semaphore or boolean, got %r" % type(lock))
        self.lock = lock
        FileObjectBase.__init__(self, descriptor.opened(), descriptor.closefd)

    def _wrap_method(self, method):
        lock = self.lock
        apply = self.threadpool.apply

        def thread_method(*args, **kwargs):
            if self.closed:
                raise FileObjectClosed()
            with lock:
                return apply(method, args, kwargs)

        thread_method.__name__ = getattr(method, "__name__", "thread_method")
        thread_method.__doc__ = getattr(method, "__doc__", None)
        return thread_method

    def _do_close(self, fobj, closefd):
        with self.lock:
            try:
                self.threadpool.apply(fobj.flush)
            finally:
                if closefd:
                    self.threadpool.apply(fobj.close)

    def _extra_repr(self):
        return " threadpool=%r" % (self.threadpool,)


class FileObjectBlock(FileObjectBase):
    """A file object with plain blocking calls: no cooperation (gevent's ``FileObjectBlock``)."""

    def __init__(self, fobj, *args, **kwargs):
        descriptor = _OpenDescriptor(fobj, *args, **kwargs)
        FileObjectBase.__init__(self, descriptor.opened(), descriptor.closefd)

    def _do_close(self, fobj, closefd):
        fobj.close()


#: The default cooperative file object: :class:`FileObjectPosix`.
FileObject = FileObjectPosix

if sys.platform.startswith("win"):  # pragma: no cover - verdigris is POSIX only
    FileObject = FileObjectThread
