"""A WSGI server (PEP 3333) speaking HTTP/1.0 and HTTP/1.1: :class:`WSGIServer`.

``WSGIServer(('127.0.0.1', 8000), app).serve_forever()`` serves *app* with one greenlet per
connection. Each connection is handled by a :class:`WSGIHandler`, which reads requests in a
keep-alive loop, builds the environ, calls the application and writes its response.

Requests
    The request head (request line and headers) is read into one buffer and parsed in one pass.
    ``wsgi.input`` (:class:`Input`) streams the body from the connection: ``read(n)``,
    ``readline()``, ``readlines()``, iteration, for a ``Content-Length`` or a chunked body; it
    never reads past the body, so the next request on the connection is intact. An ``Expect:
    100-continue`` request gets its ``100 Continue`` when the application first reads the body.
    Limits: a request line of :data:`MAX_REQUEST_LINE` bytes or more is answered ``414``, more
    than :data:`MAX_HEADERS` header fields or a head over :data:`MAX_HEADER_BYTES` ``431``, a
    malformed head or chunked body ``400``; each closes its connection (after answering) and
    nothing else.

Responses
    ``start_response(status, headers, exc_info=None)`` checks the status and headers at once
    (native strings, latin-1, no CR/LF). The status line, the headers and the first body chunk
    (up to 64 KiB) go out in one ``send`` (a list body is joined first: one system call for a
    small response), and accepted sockets have ``TCP_NODELAY``, so a response never waits on
    Nagle's algorithm and the client's delayed ACK. Without a ``Content-Length``, a body given as a list gets one computed, any other
    body is sent chunked to HTTP/1.1 clients and delimited by closing the connection for
    HTTP/1.0 ones. The result's ``close()`` is always called. An application that raises gets a
    ``500`` (if nothing was sent yet; otherwise the connection is closed) and its traceback goes
    to the hub's ``handle_error``, with the environ masked (:class:`WSGISecureEnviron`).

Connections
    Keep-alive is HTTP/1.1's default and HTTP/1.0's with ``Connection: keep-alive``. A
    connection waits at most :attr:`WSGIServer.keepalive` seconds for the next request (and for
    each read of a request). ``stop()`` and ``close()`` close the connections waiting for a
    request at once; the others finish their current response (sent with ``Connection:
    close``).

Logging
    *log* (access log; default ``sys.stderr``) gets one line per request, *error_log* (default
    ``sys.stderr``, also ``wsgi.errors``) the client errors; each may be a file-like object with
    ``write``, a :class:`logging.Logger` (wrapped in a :class:`LoggingLogAdapter`) or None (off).

.. note:: Deliberate differences from gevent's pywsgi (each one also noted where it applies):
   idle keep-alive connections time out (:attr:`WSGIServer.keepalive`, 60 s by default; gevent
   waits forever) and are closed by ``stop()``; too many or too large headers get ``431`` (gevent:
   ``400``); a response to ``HEAD`` carries no body even if the application returns one; a header
   name followed by whitespace before its colon, an unsupported ``Transfer-Encoding`` or
   conflicting ``Content-Length`` headers, or a bare CR, are answered ``400``; ``Connection:
   close`` is sent whenever the server closes after the response; a body that does not match
   its ``Content-Length`` closes the connection; an application that returns without calling
   ``start_response`` gets a ``500``; the access log is not formatted at all when *log* is None.
"""
import errno
import sys
import time
from datetime import datetime
from urllib.parse import unquote

from greenlet import GreenletExit

from verdigris import socket as _vsocket
from verdigris._core import __version__ as _version
from verdigris._wsgi_request import (
    HeadersTooLarge as _HeadersTooLarge,
    HeadTooLarge,
    Headers,
    Input,
    InvalidClientInput as _InvalidClientInput,
    InvalidClientRequest as _InvalidClientRequest,
    SocketReader,
    header_pairs,
    parse_fields,
    split_head,
    tokens,
    valid_version,
)
from verdigris._wsgi_response import date_header, encode_headers, encode_status
from verdigris._wsgi_response import format_date_time  # noqa: F401 - gevent's pywsgi has it
from verdigris.hub import get_hub
from verdigris.server import StreamServer

__all__ = [
    'WSGIServer',
    'WSGIHandler',
    'LoggingLogAdapter',
    'Environ',
    'SecureEnviron',
    'WSGISecureEnviron',
]

#: A request line this long (bytes, CRLF included) or longer is answered 414.
MAX_REQUEST_LINE = 8192
#: More header fields than this are answered 431.
MAX_HEADERS = 100
#: A request head (request line and headers) longer than this is answered 431.
MAX_HEADER_BYTES = 65536

_ERRORS = {
    400: ('400 Bad Request', [('Content-Type', 'text/plain'), ('Connection', 'close'),
                              ('Content-Length', '0')], b''),
    500: ('500 Internal Server Error', [('Content-Type', 'text/plain'), ('Connection', 'close'),
                                        ('Content-Length', '21')], b'Internal Server Error'),
}
_BAD_REQUEST_RESPONSE = b'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-length: 0\r\n\r\n'
_REQUEST_TOO_LONG_RESPONSE = (b'HTTP/1.1 414 Request URI Too Long\r\nConnection: close\r\n'
                              b'Content-length: 0\r\n\r\n')
_HEADERS_TOO_LARGE_RESPONSE = (b'HTTP/1.1 431 Request Header Fields Too Large\r\n'
                               b'Connection: close\r\nContent-length: 0\r\n\r\n')
_NO_BODY_CODES = (204, 304)
_SMALL_BODY = 65536  # up to this size, the head and the body are joined into one send


class _readproperty:
    """A property that an instance attribute of the same name overrides (non-data)."""

    def __init__(self, func):
        self.func = func

    def __get__(self, inst, owner):
        if inst is None:
            return self
        return self.func(inst)


#: The ``wsgi.input`` of every request without a body (it has no state to change).
_NO_BODY = Input(None, None)


class WSGIHandler:
    """Handles the requests of one connection: ``WSGIHandler(socket, address, server).handle()``.

    The server's :attr:`~WSGIServer.handler_class`; subclass it to customise
    :meth:`get_environ`, :meth:`log_request`, :meth:`format_request` or error handling.

    .. note:: :attr:`response_headers` holds the application's ``(str, str)`` pairs plus those the
       server adds; gevent encodes them to bytes pairs. The head that is sent is built in
       :meth:`start_response`, so changing :attr:`response_headers` afterwards has no effect.
    """

    protocol_version = 'HTTP/1.1'

    # Per-request state; class attributes keep the constructor cheap.
    status = None               # bytes: b'200 OK'
    _orig_status = None         # str: '200 OK'
    _app_headers = None         # the application's response headers
    _added_headers = ()         # and the server's
    _header_block = b''         # the encoded header lines of the response
    code = None
    provided_date = None
    provided_content_length = None
    provided_connection = None
    _body_sent = 0              # body bytes written (checked against provided_content_length)
    _chunked_request = False
    close_connection = False
    time_start = 0
    time_finish = 0
    headers_sent = False
    response_use_chunked = False
    connection_upgraded = False
    environ = None
    application = None
    requestline = None
    response_length = 0
    result = None
    wsgi_input = None
    content_length = 0
    request_version = None
    command = None
    path = None
    _fields = None              # {environ key: value} of the request's header fields
    _remote = None              # (REMOTE_ADDR, REMOTE_PORT) of the connection, or ()
    _header_lines = ()
    _linger = False             # drain the client's data before closing

    ApplicationError = AssertionError

    #: errnos of write failures that mean "the client went away": not logged.
    ignored_socket_errors = (errno.EPIPE, errno.ECONNRESET)

    def __init__(self, sock, address, server, rfile=None):
        self.socket = sock
        self.client_address = address
        self.server = server
        self.rfile = rfile if rfile is not None else \
            SocketReader(sock, server.keepalive, getattr(server, '_tcp', False))

    @_readproperty
    def headers(self):
        """The request's header fields (:class:`Headers`); empty if they could not be parsed."""
        try:
            return Headers(header_pairs(self._header_lines))
        except _InvalidClientRequest:
            return Headers()

    # -- the connection --------------------------------------------------------------------------

    def handle(self):
        """Serves requests until the connection ends, then closes it."""
        try:
            while self.socket is not None:
                result = self.handle_one_request()
                if result is None:
                    break
                if result is True:
                    continue
                # An error response to a request that could not be parsed: send it and close.
                self.status, response = result
                self._orig_status = None
                self._linger = True
                try:
                    self.socket.sendall(response)
                except OSError:
                    pass
                if self.time_finish == 0:
                    self.time_finish = time.time()
                self.log_request()
                break
        finally:
            self._close()

    def _close(self):
        sock = self.socket
        if sock is not None:
            try:
                if self._linger or getattr(self.rfile, 'buf', None):
                    # The client may still be sending (or sent what we will not read): closing
                    # with unread data would reset the connection and lose our last response.
                    self.rfile.linger()
                sock.close()
            except OSError:
                pass
        self.__dict__.pop('socket', None)
        self.__dict__.pop('rfile', None)
        self.__dict__.pop('wsgi_input', None)

    def handle_one_request(self):
        """Reads and answers one request.

        :return: True to go on with the next request on the connection; None to close it;
            ``(status, response bytes)`` for an invalid request, to send before closing.
        """
        rfile = self.rfile
        if rfile.closed:
            return None
        server = self.server
        try:
            if server._draining and not rfile.buf:
                return None
            head = rfile.read_head(MAX_HEADER_BYTES, server._idle_handlers, self)
        except HeadTooLarge:
            self.time_start = time.time()
            self.environ = None
            self._header_lines = ()
            self.requestline = ''
            if rfile.first_line_length() >= MAX_REQUEST_LINE:
                return ('414', _REQUEST_TOO_LONG_RESPONSE)
            return ('431', _HEADERS_TOO_LARGE_RESPONSE)
        except OSError:
            # Reset, timed out, closed by stop(): nothing worth reporting.
            return None
        if not head:
            return None
        self.time_start = time.time()
        self.time_finish = 0
        self.response_length = 0
        self.environ = None
        self._header_lines = ()
        try:
            lines = split_head(head)
        except _InvalidClientRequest as ex:
            self.requestline = head.partition(b'\n')[0].rstrip(b'\r').decode('latin-1')
            return self._handle_client_error(ex)
        self.requestline = lines[0]
        if len(self.requestline) + 2 >= MAX_REQUEST_LINE:
            return ('414', _REQUEST_TOO_LONG_RESPONSE)
        self._header_lines = lines
        try:
            if not self.read_request(self.requestline):
                return ('400', _BAD_REQUEST_RESPONSE)
        except _HeadersTooLarge as ex:
            self.log_error('(from %s) %s', self.client_address, ex.formatted_message)
            return ('431', _HEADERS_TOO_LARGE_RESPONSE)
        except Exception as ex:  # noqa: BLE001 - any parse failure is the client's
            return self._handle_client_error(ex)
        self.environ = self.get_environ()
        self.application = server.application
        self.handle_one_response()
        if self.close_connection or rfile.closed:
            return None
        return True

    def read_request(self, raw_requestline):
        """Parses the request line and the header fields.

        Sets :attr:`command`, :attr:`path`, :attr:`request_version`, :attr:`content_length`,
        :attr:`close_connection` and the header fields. Raises :exc:`ValueError` (answered 400)
        for an invalid request; returns True.
        """
        self.requestline = raw_requestline.rstrip()
        words = self.requestline.split()
        if len(words) == 3:
            self.command, self.path, version = words
            if version != 'HTTP/1.1' and version != 'HTTP/1.0' and not valid_version(version):
                raise _InvalidClientRequest('Invalid http version: %r' % (raw_requestline,))
        elif len(words) == 2 and words[0] == 'GET':
            self.command, self.path = words
            version = 'HTTP/0.9'
        else:
            raise _InvalidClientRequest('Invalid HTTP method: %r' % (raw_requestline,))
        self.request_version = version

        fields = self._fields = parse_fields(self._header_lines, MAX_HEADERS)

        content_length = None
        self._chunked_request = False
        coding = fields.get('HTTP_TRANSFER_ENCODING')
        if coding is not None:
            coding = coding.lower()
            if coding == 'chunked':
                self._chunked_request = True
                fields.pop('CONTENT_LENGTH', None)
            elif coding != 'identity':
                raise _InvalidClientRequest('Unsupported Transfer-Encoding: %r' % (coding,))
        length = fields.get('CONTENT_LENGTH')
        if length is not None:
            if ',' in length:  # repeated, or a list: all the values must agree
                values = {value.strip() for value in length.split(',')}
                if len(values) != 1:
                    raise _InvalidClientRequest('Conflicting Content-Length: %r' % (length,))
                length = fields['CONTENT_LENGTH'] = values.pop()
            if not (length.isdigit() and length.isascii()):
                raise _InvalidClientRequest('Invalid Content-Length: %r' % (length,))
            content_length = int(length)
            if content_length and self.command == 'HEAD':
                raise _InvalidClientRequest('Unexpected Content-Length')
        self.content_length = content_length

        connection = fields.get('HTTP_CONNECTION')
        if version == 'HTTP/1.1':
            self.close_connection = connection is not None and 'close' in tokens(connection)
        elif version == 'HTTP/1.0':
            self.close_connection = connection is None or 'keep-alive' not in tokens(connection)
        else:
            self.close_connection = True
        return True

    def get_environ(self):
        """A new environ for the current request: the server's base environ plus the request."""
        env = self.server.get_environ()
        env['REQUEST_METHOD'] = self.command
        env['SCRIPT_NAME'] = ''
        path, _, query = self.path.partition('?')
        env['PATH_INFO'] = unquote(path, encoding='latin-1') if '%' in path else path
        env['QUERY_STRING'] = query
        env['SERVER_PROTOCOL'] = self.request_version
        remote = self._remote
        if remote is None:
            address = self.client_address
            remote = self._remote = (str(address[0]), str(address[1])) \
                if isinstance(address, tuple) else ()
        if remote:
            env['REMOTE_ADDR'], env['REMOTE_PORT'] = remote
        fields = self._fields
        env.update(fields)
        if self.content_length is None and not self._chunked_request:
            self.wsgi_input = _NO_BODY  # nothing to read, nothing to continue: shared
        else:
            expect = fields.get('HTTP_EXPECT')
            continue_owed = expect is not None and expect.lower() == '100-continue' and \
                self.request_version == 'HTTP/1.1'
            self.wsgi_input = Input(self.rfile, self.content_length,
                                    socket=self.socket if continue_owed else None,
                                    chunked_input=self._chunked_request)
        if 'HTTP_UPGRADE' in fields and self._connection_upgrade_requested():
            # The application takes over the connection (websockets): hand it the raw stream.
            env['wsgi.input'] = self.rfile
            env['wsgi.input_terminated'] = False
        else:
            env['wsgi.input'] = self.wsgi_input
            env['wsgi.input_terminated'] = True
        return env

    def _connection_upgrade_requested(self):
        # An upgrade always names the protocol in an Upgrade field (RFC 9110, 7.8).
        fields = self._fields
        return 'upgrade' in tokens(fields.get('HTTP_CONNECTION', '')) \
            or fields.get('HTTP_UPGRADE', '').lower() == 'websocket'

    # -- the response ----------------------------------------------------------------------------

    def handle_one_response(self):
        """Runs the application for the parsed request and sends its response; errors become
        a 500 (or 400 for a broken request body) or close the connection."""
        self.status = None
        self.headers_sent = False
        self.result = None
        self.response_use_chunked = False
        self.connection_upgraded = False
        self.response_length = 0
        try:
            try:
                self.run_application()
            finally:
                try:
                    if not self.wsgi_input._discard():
                        self.close_connection = True
                        self._linger = True
                except _InvalidClientInput:
                    raise
                except OSError:
                    self.close_connection = True
        except _InvalidClientInput as ex:
            self._handle_client_error(ex)
            self.close_connection = True
            self._linger = True
            self._send_error_response_if_possible(400)
        except OSError as ex:
            self.close_connection = True
            if ex.errno not in self.ignored_socket_errors:
                self.handle_error(*sys.exc_info())
        except BaseException:
            self.handle_error(*sys.exc_info())
        finally:
            self.time_finish = time.time()
            self.log_request()

    def run_application(self):
        """Calls the application and sends what it returns; always calls the result's close()."""
        assert self.result is None
        try:
            self.result = self.application(self.environ, self.start_response)
            self.process_result()
        finally:
            close = getattr(self.result, 'close', None)
            self.result = None
            if close is not None:
                close()

    def process_result(self):
        """Sends the application's result (an iterable of bytes)."""
        result = self.result
        if result.__class__ is list and not self.headers_sent and self.status:
            # The common case, a list of bytes: one write, so one send with the head.
            if len(result) == 1:
                self.write(result[0])
            else:
                self.write(b''.join(result))
        else:
            for data in result:
                if data:
                    self.write(data)
            if not self.headers_sent:
                if not self.status:
                    raise self.ApplicationError('The application did not call start_response()')
                self.write(b'')  # an empty body: the head must still go out
        if self.response_use_chunked:
            self._sendall(b'0\r\n\r\n')
        elif self.provided_content_length is not None and self.command != 'HEAD' and \
                self.code not in _NO_BODY_CODES and \
                str(self._body_sent) != self.provided_content_length.strip():
            # The body does not match its Content-Length: the client cannot find the next
            # response on this connection.
            self.close_connection = True

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's ``start_response``: checks and records the status and headers.

        :raises UnicodeError: for a status or header that is not a native latin-1 string.
        :raises ValueError: for a CR or LF in the status or a header (response splitting).
        :return: the ``write(data)`` callable.
        """
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        status_bytes, code = encode_status(status)
        headers = tuple(headers)
        head = encode_headers(headers)
        self.status = status_bytes
        self._orig_status = status
        self.code = code
        self.response_headers = headers
        self._header_block, connection, self.provided_date, self.provided_content_length = head
        self.provided_connection = connection
        if connection is not None and connection.lower() == 'close':
            self.close_connection = True
        if code in _NO_BODY_CODES and self.provided_content_length not in (None, '0'):
            raise self.ApplicationError(
                ('Invalid Content-Length for %s response: %r (must be absent or zero)'
                 % (code, self.provided_content_length)).encode('latin-1'))
        return self.write

    @property
    def response_headers(self):
        """The response's ``(name, value)`` pairs: the application's, then the server's."""
        if self._app_headers is None:
            return None
        return list(self._app_headers) + self._added_headers

    @response_headers.setter
    def response_headers(self, headers):
        self._app_headers = headers
        self._added_headers = []

    def finalize_headers(self):
        """Adds what the response needs to the application's headers: ``Date``, framing
        (``Content-Length`` or ``Transfer-Encoding: chunked``) and ``Connection: close``."""
        block = self._header_block
        if self.provided_date is None:
            date = date_header()
            self._added_headers.append(('Date', date[2]))
            block += date[1]
        code = self.code
        self.connection_upgraded = code == 101
        if code not in _NO_BODY_CODES and self.provided_content_length is None:
            result = self.result
            if hasattr(result, '__len__'):
                length = str(sum(len(chunk) for chunk in result))
                self._added_headers.append(('Content-Length', length))
                block += b'Content-Length: ' + length.encode('latin-1') + b'\r\n'
            elif self.connection_upgraded or self.command == 'HEAD':
                pass
            elif self.request_version == 'HTTP/1.1':
                self.response_use_chunked = True
                self._added_headers.append(('Transfer-Encoding', 'chunked'))
                block += b'Transfer-Encoding: chunked\r\n'
            else:
                self.close_connection = True  # the end of the body is the end of the connection
        if self.server._draining or self.wsgi_input._awaiting_continue():
            self.close_connection = True
        if self.provided_connection is None:
            if self.request_version == 'HTTP/1.0':
                connection = 'close' if self.close_connection else 'keep-alive'
            else:
                connection = 'close' if self.close_connection else None
            if connection is not None:
                self._added_headers.append(('Connection', connection))
                block += b'Connection: ' + connection.encode('latin-1') + b'\r\n'
        self._header_block = block

    def write(self, data):
        """The ``write(data)`` callable of PEP 3333: sends *data* (bytes) at once."""
        if self.code in _NO_BODY_CODES and data:
            raise self.ApplicationError('The %s response must have no body' % self.code)
        if self.headers_sent:
            if not data or self.command == 'HEAD':
                return
            self._body_sent += len(data)
            if self.response_use_chunked:
                self._sendall(b'%x\r\n' % len(data) + data + b'\r\n')
            else:
                self._sendall(data)
            return
        if not self.status:
            raise self.ApplicationError('The application did not call start_response()')
        self.headers_sent = True
        self.finalize_headers()
        self._body_sent = len(data) if self.command != 'HEAD' else 0
        head = b'HTTP/1.1 ' + self.status + b'\r\n' + self._header_block + b'\r\n'
        if not data or self.command == 'HEAD':
            self._sendall(head)
        elif self.response_use_chunked:
            self._sendall(head + b'%x\r\n' % len(data) + data + b'\r\n')
        elif len(data) <= _SMALL_BODY:
            self._sendall(head + data)
        else:
            self._sendall(head)
            self._sendall(data)

    def _sendall(self, data):
        try:
            self.rfile.sendall(data)
        except OSError as ex:
            self.status = 'socket error: %s' % (ex,)
            if self.code and self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)

    # -- errors ----------------------------------------------------------------------------------

    def _send_error_response_if_possible(self, error_code):
        if self.response_length or self.headers_sent:
            self.close_connection = True  # a response has begun: all we can do is cut it
            return
        status, headers, body = _ERRORS[error_code]
        try:
            self.start_response(status, list(headers))
            self.write(body)
        except OSError:
            self.close_connection = True

    def _log_error(self, t, v, tb):
        if not issubclass(t, GreenletExit):
            context = self.environ
            if not isinstance(context, self.server.secure_environ_class):
                context = self.server.secure_environ_class(context)
            get_hub().handle_error(context, t, v, tb)

    def handle_error(self, t, v, tb):
        """An unexpected error (the application's, not the client's): reports it, answers 500."""
        self._log_error(t, v, tb)
        t = v = tb = None
        self._send_error_response_if_possible(500)

    def _handle_client_error(self, ex):
        # Invalid client input: logged as one line to the error log, answered 400.
        if isinstance(ex, _InvalidClientRequest):
            self.log_error('(from %s) %s', self.client_address, ex.formatted_message)
        else:
            self.log_error('Invalid request (from %s): %s', self.client_address,
                           str(ex) or ex.__class__.__name__)
        return ('400', _BAD_REQUEST_RESPONSE)

    def log_error(self, msg, *args):
        """Writes one line to the server's error log."""
        if args:
            try:
                msg = msg % args
            except Exception:  # noqa: BLE001 - a bad format must not lose the message
                msg = '%r %r' % (msg, args)
        try:
            self.server.error_log.write('%s: %s\n' % (self.socket, msg))
        except Exception:  # noqa: BLE001 - a broken log must not break the connection
            pass

    # -- the access log --------------------------------------------------------------------------

    def log_request(self):
        """Writes the access log line of the request (nothing when the log is off)."""
        log = self.server.log
        if log.__class__ is not _NoopLog:
            log.write(self.format_request() + '\n')

    def format_request(self):
        """``client - - [date] "request line" status length seconds``."""
        now = datetime.now().replace(microsecond=0)
        length = self.response_length or '-'
        delta = '%.6f' % (self.time_finish - self.time_start) if self.time_finish else '-'
        address = self.client_address
        client = address[0] if isinstance(address, tuple) else address
        status = self._orig_status or self.status or '000'
        if isinstance(status, bytes):
            status = status.decode('latin-1')
        return '%s - - [%s] "%s" %s %s %s' % (
            client or '-', now, self.requestline or '', status.split()[0], length, delta)


class _NoopLog:
    """The log of a server given ``log=None``: accepts and drops everything."""

    def write(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def writelines(self, *args, **kwargs):
        pass


class LoggingLogAdapter:
    """Makes a :class:`logging.Logger` usable as a server's *log* or *error_log*.

    ``write(message)`` logs the message (without its trailing newline) at *level*; other
    attributes are the logger's.

    .. caution:: Handlers of :mod:`logging` take thread locks and may do blocking I/O; unless the
       process is monkey-patched early, a slow handler blocks every greenlet.
    """

    __slots__ = ('_logger', '_level')

    def __init__(self, logger, level=20):
        self._logger = logger
        self._level = level

    def write(self, msg):
        if msg and msg.endswith('\n'):
            msg = msg[:-1]
        self._logger.log(self._level, msg)

    def flush(self):
        """Nothing to flush: present because logs are file-like."""

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._logger, name)

    def __setattr__(self, name, value):
        if name in LoggingLogAdapter.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._logger, name, value)

    def __delattr__(self, name):
        delattr(self._logger, name)


class Environ(dict):
    """A dict for WSGI environs (provisional API, as in gevent)."""

    __slots__ = ()

    def copy(self):
        return self.__class__(self)

    def iteritems(self):
        return self.items()

    def __reduce_ex__(self, proto):
        return (dict, (), None, None, iter(self.items()))


class SecureEnviron(Environ):
    """An environ whose ``repr`` masks its values (cookies, authorization...).

    ``secure_repr`` (default True) turns masking on; ``whitelist_keys`` names the keys shown as
    they are; ``print_masked_keys`` (default True) shows the other keys with ``<MASKED>``, or
    only counts them. Each may be set on an instance or, as ``default_*``, on a subclass.
    """

    default_secure_repr = True
    default_whitelist_keys = ()
    default_print_masked_keys = True

    __slots__ = ('secure_repr', 'whitelist_keys', 'print_masked_keys')

    def __getattr__(self, name):
        if name in SecureEnviron.__slots__:
            return getattr(type(self), 'default_' + name)
        raise AttributeError(name)

    def __repr__(self):
        if not self.secure_repr:
            return Environ.__repr__(self)
        whitelist = self.whitelist_keys
        if not whitelist:
            return '<pywsgi.SecureEnviron dict (keys: %d) at %s>' % (len(self), id(self))
        print_masked = self.print_masked_keys
        shown = {key: (self[key] if key in whitelist else '<MASKED>')
                 for key in self if key in whitelist or print_masked}
        text = repr(shown)
        if not print_masked and len(shown) != len(self):
            text = text[:-1] + ', (hidden keys: %d)}' % (len(self) - len(shown),)
        return text

    __str__ = __repr__


class WSGISecureEnviron(SecureEnviron):
    """A :class:`SecureEnviron` showing only ``REMOTE_ADDR``, ``REMOTE_PORT`` and ``HTTP_HOST``:
    what the traceback of a failed application is reported with."""

    default_whitelist_keys = ('REMOTE_ADDR', 'REMOTE_PORT', 'HTTP_HOST')
    default_print_masked_keys = False


_DEFAULT = object()


class WSGIServer(StreamServer):
    """WSGIServer(listener, application=None, backlog=None, spawn='default', log='default',
    error_log='default', handler_class=None, environ=None, *, keepalive=60, **ssl_args)

    A :class:`~verdigris.server.StreamServer` serving the WSGI *application* over HTTP/1.1 (HTTPS
    with *ssl_args*, see :mod:`verdigris.server`).

    :param log: the access log: a file-like object with ``write``, a :class:`logging.Logger`
        (logged at INFO), None (off) or ``'default'`` (``sys.stderr``).
    :param error_log: the error log, also ``wsgi.errors`` (a Logger is logged at ERROR).
    :param handler_class: called as ``handler_class(socket, address, server)`` for each
        connection, then its ``handle()`` (default :class:`WSGIHandler`).
    :param environ: entries added to (or replacing) every request's base environ.
    :param keepalive: seconds a connection may stay idle waiting for a request, and the most
        each read of a request may wait; None waits forever (gevent's behaviour).

    .. note:: *keepalive* is verdigris's: gevent keeps idle connections forever.
    """

    #: The per-connection handler class.
    handler_class = WSGIHandler
    #: The access log (never None: a no-op object when off).
    log = None
    #: The error log (never None).
    error_log = None
    #: The class of request environs: :class:`dict`, as PEP 3333 asks.
    environ_class = dict
    #: What the environ is converted to when an application's failure is reported.
    secure_environ_class = WSGISecureEnviron
    #: Seconds an idle connection is kept (see the class's documentation).
    keepalive = 60.0
    nodelay = True

    base_env = {
        'GATEWAY_INTERFACE': 'CGI/1.1',
        'SERVER_SOFTWARE': 'verdigris/%s Python/%d.%d' % ((_version,) + sys.version_info[:2]),
        'SCRIPT_NAME': '',
        'wsgi.version': (1, 0),
        'wsgi.multithread': False,
        'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }

    def __init__(self, listener, application=None, backlog=None, spawn='default',
                 log='default', error_log='default', handler_class=None, environ=None,
                 *, keepalive=_DEFAULT, **ssl_args):
        if 'handle' in ssl_args:
            import warnings

            warnings.warn("Passing 'handle' kwarg to WSGIServer is deprecated. "
                          "Did you mean application?", DeprecationWarning, stacklevel=2)
        StreamServer.__init__(self, listener, backlog=backlog, spawn=spawn, **ssl_args)
        if application is not None:
            self.application = application
        if handler_class is not None:
            self.handler_class = handler_class
        if keepalive is not _DEFAULT:
            self.keepalive = keepalive
        if self.keepalive is not None and not self.keepalive > 0:
            raise ValueError('keepalive must be a positive number of seconds or None, not %r'
                             % (self.keepalive,))
        self._draining = False
        self._idle_handlers = set()
        self.log = _make_log(log, 20)
        self.error_log = _make_log(error_log, 40)
        self.set_environ(environ)
        self.set_max_accept()

    def set_environ(self, environ=None):
        """Builds the base environ, updated with *environ* (or the previous one)."""
        if environ is not None:
            self.environ = environ
        update = getattr(self, 'environ', None)
        self.environ = self.environ_class(self.base_env)
        self.environ['wsgi.url_scheme'] = 'https' if self.ssl_enabled else 'http'
        if update is not None:
            self.environ.update(update)
        if self.environ.get('wsgi.errors') is None:
            self.environ['wsgi.errors'] = self.error_log

    def set_max_accept(self):
        """One accept per wake-up when several processes share the socket."""
        if self.environ.get('wsgi.multiprocess'):
            self.max_accept = 1

    def get_environ(self):
        """A fresh copy of the base environ, for one request."""
        return self.environ_class(self.environ)

    def init_socket(self):
        StreamServer.init_socket(self)
        self.update_environ()

    def update_environ(self):
        """Fills ``SERVER_NAME`` and ``SERVER_PORT`` from the bound address."""
        address = self.address
        if isinstance(address, tuple):
            if 'SERVER_NAME' not in self.environ:
                try:
                    name = _vsocket.getfqdn(address[0])
                except OSError:
                    name = str(address[0])
                self.environ['SERVER_NAME'] = name
            self.environ.setdefault('SERVER_PORT', str(address[1]))
        else:
            self.environ.setdefault('SERVER_NAME', '')
            self.environ.setdefault('SERVER_PORT', '')

    def handle(self, sock, address):
        """Serves one connection with a new :attr:`handler_class` instance."""
        handler = self.handler_class(sock, address, self)
        handler.handle()

    def close(self):
        """Stops accepting, and closes the connections idle between requests; the others close
        after their current response."""
        self._draining = True
        try:
            StreamServer.close(self)
        finally:
            idle = getattr(self, '_idle_handlers', ())
            for handler in list(idle):
                sock = getattr(handler, 'socket', None)
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass


def _make_log(log, level):
    if log == 'default':
        return sys.stderr
    if log is None:
        return _NoopLog()
    if not hasattr(log, 'write') and hasattr(log, 'log'):
        return LoggingLogAdapter(log, level)
    return log
