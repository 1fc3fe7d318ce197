"""Reading HTTP requests for :mod:`verdigris.pywsgi`: the connection's buffer, the head's fields,
``wsgi.input``.

:class:`SocketReader` owns the connection's receive buffer. The handler reads each request head
from it in one piece (:meth:`SocketReader.read_head`), splits it into lines
(:func:`split_head`) and turns the header fields into environ entries in one pass
(:func:`parse_fields`: header names seen before skip validation, as their environ keys are
cached). :class:`Input`, the ``wsgi.input`` of a request, reads the body from the same buffer:
exactly ``Content-Length`` bytes, or the chunks of a chunked body up to and including its last
chunk and trailers, and never a byte of the next request.

Timeouts
    The socket's timeout is the server's ``keepalive``, set once per connection: a read waits
    at most that long (an idle or stalled client is dropped). Writes go through
    :meth:`SocketReader.sendall`, a loop of ``send()`` calls, each waiting at most that long for
    room: a client that reads nothing for that long is dropped, but a slow one downloading a
    large body is not cut off (``socket.sendall`` would bound the whole transfer).

Delayed ACKs
    A client that writes a request in two parts (the head, then the body) with Nagle's algorithm
    on holds the second part until the first is acknowledged, and Linux delays that ACK (up to
    40 ms) while the server has nothing to send. So whenever the reader must wait for more of a
    request it already has a part of, it first sets ``TCP_QUICKACK``, which sends the pending
    ACK at once. (Waiting for the *next* request needs nothing: the response carried the ACK.)
"""
import socket as _stdlib_socket
import string
import time
from socket import IPPROTO_TCP

__all__ = ['Input', 'SocketReader', 'Headers', 'split_head', 'parse_fields', 'header_pairs']

# Linux only; elsewhere there is nothing to do.
TCP_QUICKACK = getattr(_stdlib_socket, 'TCP_QUICKACK', None)
_CONTINUE_RESPONSE = b'HTTP/1.1 100 Continue\r\n\r\n'
_HEX = string.hexdigits.encode('ascii')
_TOKEN = (string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode('ascii')
_RECV_SIZE = 65536
_RECV_MAX = 262144  # recv() allocates what it is asked for: bound it for big reads
#: The longest chunk-size line or trailer line accepted in a chunked body.
MAX_CHUNK_LINE = 8192
#: At most this much of a body the application did not read is read and dropped to keep the
#: connection; beyond it the connection is closed instead.
MAX_DISCARD = 1 << 20
#: Seconds a connection closed after an error keeps reading (and dropping) what the client
#: still sends, so that the client reads the error response instead of a reset.
LINGER_SECONDS = 2.0


class InvalidClientInput(IOError):
    """The client sent an invalid body (chunked framing): the request is answered 400."""


class HeadTooLarge(ValueError):
    """The request head exceeds the limit given to :meth:`SocketReader.read_head`."""


class SocketReader:
    """The buffered reading (and the sending) of one HTTP connection.

    Also the ``wsgi.input`` of a request asking for a connection upgrade (websockets), which
    takes over the raw stream: :meth:`read`, :meth:`readline`.
    """

    __slots__ = ('sock', 'buf', 'closed', '_recv', '_send', '_quickack')

    def __init__(self, sock, timeout=None, tcp=False):
        self.sock = sock
        self.buf = b''
        self.closed = False
        if timeout is not None:
            sock.settimeout(timeout)
        self._recv = sock.recv
        self._send = sock.send
        self._quickack = tcp and TCP_QUICKACK is not None

    def _recv_more(self, size=_RECV_SIZE):
        # More of a request we have a part of: acknowledge that part now (see the module's doc).
        if self._quickack:
            try:
                self.sock.setsockopt(IPPROTO_TCP, TCP_QUICKACK, 1)
            except OSError:
                self._quickack = False
        return self._recv(size)

    def sendall(self, data):
        """Sends all of *data*; each wait for room in the socket's buffer is bounded by the
        socket's timeout, not the whole call."""
        sent = self._send(data)
        if sent < len(data):
            with memoryview(data) as view:
                while sent < len(view):
                    sent += self._send(view[sent:])

    def read_head(self, limit, idle, handler):
        """The next request head (without its blank line), or ``b''`` at end of stream.

        Empty lines before the request line are skipped; lines may end with CRLF or LF. While
        nothing of the request has arrived, *handler* is in the set *idle* (so that a stopping
        server can close the connection).

        :raises HeadTooLarge: if more than *limit* bytes arrive without the head's end.
        """
        buf = self.buf
        start = 0
        while True:
            if buf[:1] in (b'\r', b'\n'):
                buf = buf.lstrip(b'\r\n')
                start = 0
            if buf:
                end = buf.find(b'\r\n\r\n', start)
                if 0 <= end <= limit:
                    self.buf = buf[end + 4:]
                    return buf[:end]
                if end < 0:
                    end = buf.find(b'\n\n', start)
                    if 0 <= end <= limit:
                        self.buf = buf[end + 2:]
                        return buf[:end]
                if end > limit or len(buf) > limit:
                    self.buf = buf
                    raise HeadTooLarge('The request head exceeds %d bytes' % (limit,))
                start = max(0, len(buf) - 3)
                data = self._recv_more()
            else:
                idle.add(handler)
                try:
                    data = self._recv(_RECV_SIZE)
                finally:
                    idle.discard(handler)
            if not data:
                self.buf = b''
                self.closed = True
                return b''
            buf = buf + data if buf else data

    def first_line_length(self):
        """Bytes of the buffered request line (all of the buffer if it has no newline)."""
        end = self.buf.find(b'\n')
        return len(self.buf) if end < 0 else end + 1

    def read(self, size=-1):
        """Up to *size* bytes (all until end of stream if *size* is negative or None); fewer only
        at end of stream."""
        buf = self.buf
        if size is not None and 0 <= size <= len(buf):
            self.buf = buf[size:]
            return buf[:size]
        chunks = [buf]
        have = len(buf)
        while size is None or size < 0 or have < size:
            data = self._recv_more(_RECV_SIZE if size is None or size < 0 else
                              min(max(_RECV_SIZE, size - have), _RECV_MAX))
            if not data:
                break
            chunks.append(data)
            have += len(data)
        data = b''.join(chunks)
        if size is None or size < 0 or have <= size:
            self.buf = b''
            return data
        self.buf = data[size:]
        return data[:size]

    def readline(self, size=-1):
        """Bytes up to and including the next LF, at most *size* of them; fewer without an LF
        only at end of stream."""
        buf = self.buf
        start = 0
        while True:
            end = buf.find(b'\n', start)
            if end >= 0 and (size is None or size < 0 or end < size):
                self.buf = buf[end + 1:]
                return buf[:end + 1]
            if size is not None and 0 <= size <= len(buf):
                self.buf = buf[size:]
                return buf[:size]
            start = len(buf)
            data = self._recv_more()
            if not data:
                self.buf = b''
                return buf
            buf += data

    def linger(self):
        """Before closing after an error: sends our FIN, then reads and drops what the client
        still sends, for at most :data:`LINGER_SECONDS`, so it gets our response, not a reset."""
        sock = self.sock
        try:
            sock.shutdown(_stdlib_socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        try:
            while drained < MAX_DISCARD:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                data = sock.recv(_RECV_SIZE)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass


class Input:
    """``wsgi.input``: the body of one request, streamed from the connection.

    ``read(n)`` returns *n* bytes (fewer only at the end of the body), ``read()`` the rest,
    ``readline([size])`` one line, ``readlines()`` and iteration the remaining lines. A body
    that ends before its ``Content-Length`` raises :exc:`OSError`; an invalid chunked body
    raises an :exc:`OSError` subclass, answered 400. A request without a body reads as empty.
    With ``Expect: 100-continue`` (*socket* given), the first read sends ``100 Continue``.
    """

    __slots__ = ('rfile', 'content_length', 'socket', 'position', 'chunked_input',
                 'send_100_continue_enabled', '_chunk_left', '_done', '_error')

    def __init__(self, rfile, content_length, socket=None, chunked_input=False):
        self.rfile = rfile
        self.content_length = content_length
        self.socket = socket          # set while a 100 Continue is owed to the client
        self.position = 0
        self.chunked_input = chunked_input
        self.send_100_continue_enabled = True
        self._chunk_left = 0          # bytes left in the current chunk
        self._done = False            # the last chunk and the trailers were read
        self._error = False           # the framing is broken: the connection cannot go on

    # -- the protocol of the handler -------------------------------------------------------------

    def _awaiting_continue(self):
        """Whether the client still waits for ``100 Continue`` before sending a body."""
        return self.socket is not None and (self.chunked_input or bool(self.content_length))

    def _discard(self):
        """Reads and drops what is left of the body. Returns whether the connection can serve
        another request (False when the body was never asked for, is too large or is broken)."""
        if self._error:
            return False
        if self._awaiting_continue():
            return False  # the client may never send the body: do not wait for it
        self.send_100_continue_enabled = False
        if self.chunked_input:
            dropped = 0
            while not self._done:
                dropped += len(self._chunked_read(_RECV_SIZE))
                if dropped > MAX_DISCARD:
                    return False
            return True
        left = (self.content_length or 0) - self.position
        if left > MAX_DISCARD:
            return False
        while left > 0:
            left -= len(self._do_read(min(left, _RECV_SIZE)))
        return True

    def _send_100_continue(self):
        if self.socket is not None and self.send_100_continue_enabled:
            self.socket = None
            self.rfile.sendall(_CONTINUE_RESPONSE)

    # -- Content-Length bodies -------------------------------------------------------------------

    def _do_read(self, length=None, use_readline=False):
        content_length = self.content_length
        if content_length is None:
            return b''
        if self.socket is not None:
            self._send_100_continue()
        left = content_length - self.position
        if length is None or length > left:
            length = left
        if not length:
            return b''
        data = self.rfile.readline(length) if use_readline else self.rfile.read(length)
        self.position += len(data)
        if len(data) < length and not (use_readline and data.endswith(b'\n')):
            self._error = True
            raise IOError('unexpected end of file while reading request at position %s'
                          % (self.position,))
        return data

    # -- chunked bodies --------------------------------------------------------------------------

    def _fail(self, message):
        self._error = True
        self._done = True
        raise InvalidClientInput(message)

    def _read_line(self, what):
        line = self.rfile.readline(MAX_CHUNK_LINE)
        if not line.endswith(b'\n'):
            if len(line) >= MAX_CHUNK_LINE:
                self._fail('Too large %s' % (what,))
            self._fail('EOF before %s end reached' % (what,))
        if not line.endswith(b'\r\n'):
            self._fail("%s line didn't end in CRLF: %r" % (what, line[-20:]))
        return line[:-2]

    def _read_chunk_size(self):
        line = self._read_line('chunk size')
        size = line.split(b';', 1)[0].rstrip(b' \t')
        if not size or size.translate(None, _HEX):
            self._fail('Non-hex data in chunk size: %r' % (line[:20],))
        if len(size) > 16:
            self._fail('Chunk-size too large')
        size = int(size, 16)
        if size == 0:
            while True:  # the trailers, up to the empty line; checked, then dropped
                line = self._read_line('chunk trailer')
                if not line:
                    break
                name, colon, _ = line.partition(b':')
                if not colon or not name or name.translate(None, _TOKEN):
                    self._fail('Invalid chunk trailer: %r' % (line[:40],))
        return size

    def _chunked_read(self, length=None, use_readline=False):
        if self.socket is not None:
            self._send_100_continue()
        if length == 0 or self._done:
            return b''
        rfile = self.rfile
        parts = []
        while True:
            left = self._chunk_left
            if not left:
                left = self._read_chunk_size()
                if not left:
                    self._done = True
                    break
            want = left if length is None or length > left else length
            data = rfile.readline(want) if use_readline else rfile.read(want)
            if not data or (len(data) < want and not data.endswith(b'\n')):
                self._fail('unexpected end of file while parsing chunked data')
            parts.append(data)
            left -= len(data)
            self._chunk_left = left
            if not left and rfile.read(2) != b'\r\n':
                self._fail("Chunk data didn't end in CRLF")
            if length is not None:
                length -= len(data)
                if not length:
                    break
            if use_readline and data.endswith(b'\n'):
                break
        return b''.join(parts)

    # -- the file API ----------------------------------------------------------------------------

    def read(self, length=None):
        """Up to *length* bytes of the body (all the rest if None or negative)."""
        if length is not None and length < 0:
            length = None
        if self.chunked_input:
            return self._chunked_read(length)
        return self._do_read(length)

    def readline(self, size=None):
        """The next line of the body (with its LF), at most *size* bytes."""
        if size is not None and size < 0:
            size = None
        if self.chunked_input:
            return self._chunked_read(size, True)
        return self._do_read(size, use_readline=True)

    def readlines(self, hint=None):
        """The remaining lines of the body (*hint* is ignored)."""
        return list(self)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__  # gevent's name


# -- the request head -------------------------------------------------------------------------

class InvalidClientRequest(ValueError):
    """A request head that cannot be parsed: answered 400. Its one argument is the message."""

    def __init__(self, message):
        ValueError.__init__(self, message)
        self.formatted_message = message


class HeadersTooLarge(InvalidClientRequest):
    """Too many header fields: answered 431."""


class Headers:
    """The request's header fields, as parsed: ``handler.headers``.

    A read-only, case-insensitive view of the ``(name, value)`` pairs in their order, with the
    parts of :class:`email.message.Message`'s API that WSGI handlers use: ``get``, ``getheader``,
    ``get_all``, ``items``, ``keys``, ``values``, ``in``, ``[]``, ``typeheader`` and ``headers``
    (the raw lines).
    """

    __slots__ = ('_pairs',)

    def __init__(self, pairs=()):
        self._pairs = list(pairs)

    def get(self, name, default=None):
        name = name.lower()
        for key, value in self._pairs:
            if key.lower() == name:
                return value
        return default

    getheader = get

    def get_all(self, name, failobj=None):
        name = name.lower()
        found = [value for key, value in self._pairs if key.lower() == name]
        return found or failobj

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._pairs)

    def items(self):
        return list(self._pairs)

    def keys(self):
        return [key for key, _ in self._pairs]

    def values(self):
        return [value for _, value in self._pairs]

    @property
    def typeheader(self):
        return self.get('content-type')

    @property
    def headers(self):
        return ['%s: %s\r\n' % pair for pair in self._pairs]

    def __repr__(self):
        return '<Headers %r>' % (self._pairs,)


def split_head(head):
    """The lines of a request head (bytes without its blank line), decoded as latin-1.

    :raises InvalidClientRequest: for a CR that does not end a line (a bare CR must not reach
        the application: RFC 9112, 2.2).
    """
    text = head.decode('latin-1')
    lines = text.split('\r\n')
    if text.count('\r') == len(lines) - 1 and text.count('\n') == len(lines) - 1:
        return lines  # the usual case: CRLF line ends only
    lines = [line[:-1] if line.endswith('\r') else line for line in text.split('\n')]
    if any('\r' in line for line in lines):
        raise InvalidClientRequest('Bare CR in the request head: %r' % (text[:200],))
    return lines


# Valid header name -> its environ key ('' for a name to drop): computed once per name.
_ENVIRON_KEYS = {}
_SPECIAL_KEYS = {'CONTENT_TYPE', 'CONTENT_LENGTH'}


def _environ_key(name):
    # The environ key of the header field *name*, which must be valid (a non-empty token).
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        if '_' in name:
            # CGI cannot tell "A_B" from "A-B": drop such fields rather than let them spoof one.
            key = ''
        else:
            key = name.upper().replace('-', '_')
            if key not in _SPECIAL_KEYS:
                key = 'HTTP_' + key
        if len(_ENVIRON_KEYS) < 4096:
            _ENVIRON_KEYS[name] = key
    return key


def parse_fields(lines, limit):
    """The environ entries (``HTTP_*``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``) of the header
    fields in *lines* (a head's lines, the request line first). Repeated fields are joined with
    commas (cookies with ``'; '``); names containing ``_`` are dropped.

    :raises HeadersTooLarge: for more than *limit* fields.
    :raises InvalidClientRequest: for a line that is not a field.
    """
    if len(lines) - 1 > limit:
        raise HeadersTooLarge('More than %d header fields' % (limit,))
    # The fast path: "Name: value" lines with names seen before (so known to be valid) and no
    # repeated field. Anything else takes the complete path, which also raises for invalid
    # lines and learns the new names.
    fields = {}
    count = 0
    keys = _ENVIRON_KEYS
    lines_iter = iter(lines)
    next(lines_iter)
    for line in lines_iter:
        name, colon, value = line.partition(':')
        key = keys.get(name)
        if key is None or not colon:
            break
        if key:
            fields[key] = value.strip()
            count += 1
    else:
        if len(fields) == count:
            return fields
    fields = {}
    for name, value in header_pairs(lines):
        key = _environ_key(name)
        if not key:
            continue
        if key in fields:
            value = fields[key] + ('; ' if key == 'HTTP_COOKIE' else ',') + value
        fields[key] = value
    return fields


def header_pairs(lines):
    """The ``(name, value)`` fields of a head's lines (the request line first), folded lines
    joined with a space.

    :raises InvalidClientRequest: for a line that is not a field (no colon, no name, blanks in
        the name, a continuation with nothing to continue).
    """
    pairs = []
    for index in range(1, len(lines)):
        line = lines[index]
        if line[:1] in (' ', '\t'):
            # obs-fold: the continuation of the previous field.
            if not pairs:
                raise InvalidClientRequest('Invalid header continuation: %r' % (line,))
            name, value = pairs[-1]
            pairs[-1] = (name, (value + ' ' + line.strip()).strip())
            continue
        name, colon, value = line.partition(':')
        if not colon or not name or ' ' in name or '\t' in name:
            raise InvalidClientRequest('Invalid header line: %r' % (line,))
        pairs.append((name, value.strip()))
    return pairs


def valid_version(version):
    """Whether *version* is ``HTTP/x.y`` with 0.9 <= x.y < 2.0 (what gevent accepts)."""
    if not version.startswith('HTTP/'):
        return False
    try:
        numbers = tuple(int(x) for x in version[5:].split('.'))
    except ValueError:
        return False
    return len(numbers) == 2 and numbers[1] >= 0 and (0, 9) <= numbers < (2, 0)


def tokens(value):
    """The lower-cased, comma-separated tokens of a field value (``Connection``...)."""
    value = value.lower()
    if ',' not in value:
        return (value.strip(),)
    return [token.strip() for token in value.split(',')]
