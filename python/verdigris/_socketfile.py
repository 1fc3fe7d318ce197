"""Files over a cooperative socket: ``makefile()`` and ``sendfile()``.

A mixin of :class:`verdigris.socket.socket`, kept apart because it is about files, not about
waiting: it only calls the socket's cooperative methods (``recv_into``/``send`` through the
stdlib's :class:`socket.SocketIO`, ``send``) and, for ``os.sendfile``, its ``_wait``.
"""
import io as _io
import os as _os
import socket as __socket__
from time import monotonic as _monotonic

_GiveupOnSendfile = __socket__._GiveupOnSendfile
_SOCK_STREAM = __socket__.SOCK_STREAM
_WRITE = 2


class _SocketFileMixin:
    """``makefile``, ``sendfile`` and the ``_io_refs`` bookkeeping of the stdlib's socket."""

    __slots__ = ()

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        """A file object reading from and/or writing to the socket (as the stdlib's). The socket's
        fd stays open until the socket and every such file are closed."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError("invalid mode %r (only r, w, b allowed)" % (mode,))
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        raw = __socket__.SocketIO(self, rawmode)
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = _io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffer = _io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = _io.BufferedReader(raw, buffering)
        else:
            buffer = _io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        text = _io.TextIOWrapper(buffer, encoding, errors, newline)
        text.mode = mode
        return text

    def _decref_socketios(self):
        # A file from makefile() was closed.
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def sendfile(self, file, offset=0, count=None):
        """Sends *file* (opened in binary mode) until EOF, or *count* bytes, from *offset*;
        returns the number of bytes sent. Uses ``os.sendfile`` for regular files, ``send``
        otherwise; the file position is left after the last byte sent. Each wait is bounded by the
        socket's timeout; non-blocking sockets raise ValueError, as the stdlib's."""
        try:
            return self._sendfile_use_sendfile(file, offset, count)
        except _GiveupOnSendfile:
            return self._sendfile_use_send(file, offset, count)

    def _sendfile_use_sendfile(self, file, offset=0, count=None):
        try:
            fileno = file.fileno()
        except (AttributeError, _io.UnsupportedOperation) as err:
            raise _GiveupOnSendfile(err)
        try:
            fsize = _os.fstat(fileno).st_size
        except OSError as err:
            raise _GiveupOnSendfile(err)
        if not fsize:
            return 0
        self._check_sendfile_params(file, offset, count)
        timeout = self.timeout
        if timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        blocksize = min(count or fsize, 2 ** 30)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = _os.sendfile(self.fileno(), fileno, offset, blocksize)
                except BlockingIOError:
                    self._wait(_WRITE, None if timeout is None else _monotonic() + timeout)
                    continue
                except OSError as err:
                    if total_sent == 0:
                        raise _GiveupOnSendfile(err)  # e.g. not a regular file: use send()
                    raise err from None
                if sent == 0:
                    break  # EOF
                offset += sent
                total_sent += sent
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset)

    def _sendfile_use_send(self, file, offset=0, count=None):
        self._check_sendfile_params(file, offset, count)
        if self.timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        if offset:
            file.seek(offset)
        blocksize = min(count, 8192) if count else 8192
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                data = memoryview(file.read(blocksize))
                if not data:
                    break
                while data:
                    sent = self.send(data)
                    total_sent += sent
                    data = data[sent:]
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)

    def _check_sendfile_params(self, file, offset, count):
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if not self.type & _SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError("count must be a positive integer (got {!r})".format(count))
            if count <= 0:
                raise ValueError("count must be a positive integer (got {!r})".format(count))
