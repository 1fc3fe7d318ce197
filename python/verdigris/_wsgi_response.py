"""Writing HTTP responses for :mod:`verdigris.pywsgi`: the status, the header block, the date.

``start_response`` hands the status and the headers to :func:`encode_status` and
:func:`encode_headers`, which check them (native latin-1 strings, no CR or LF: no response
splitting) and encode them. Both are pure functions of their strings, and an application mostly
repeats the same few statuses and header lists, so their results are kept in small caches
(cleared when full). The ``Date`` header line is formatted once per second
(:func:`date_header`).
"""
import time

__all__ = ['format_date_time', 'date_header', 'encode_status', 'encode_headers']

_WEEKDAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')
_MONTHS = (None, 'Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun',
           'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')

#: Entries of each cache; a full cache is cleared (the working set refills it at once).
CACHE_SIZE = 512
_statuses = {}       # status -> (latin-1 bytes, code)
_heads = {}          # tuple of pairs -> (latin-1 lines, Connection, Date, Content-Length)
_date = [0, b'', '']  # second, 'Date: ...' line, value


def format_date_time(timestamp):
    """An HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``), as latin-1 bytes."""
    year, month, day, hh, mm, ss, wd, _, _ = time.gmtime(timestamp)
    return ('%s, %02d %3s %4d %02d:%02d:%02d GMT' % (
        _WEEKDAYS[wd], day, _MONTHS[month], year, hh, mm, ss)).encode('latin-1')


def date_header():
    """``[second, b'Date: ...\\r\\n', 'value']`` for now (do not modify it)."""
    now = int(time.time())
    if _date[0] != now:
        value = format_date_time(now)
        _date[:] = [now, b'Date: ' + value + b'\r\n', value.decode('latin-1')]
    return _date


def encode_status(status):
    """``(status as bytes, its code)``.

    :raises UnicodeError: for a status that is not a native string.
    :raises ValueError: for a CR or LF in it, or a status that does not start with a number.
    """
    try:
        return _statuses[status]
    except (KeyError, TypeError):
        pass
    if not isinstance(status, str):
        raise UnicodeError('The status string must be a native string')
    if '\r' in status or '\n' in status:
        raise ValueError('carriage return or newline in status', status)
    encoded = (status.encode('latin-1'), int(status.split(' ', 1)[0]))
    if len(_statuses) >= CACHE_SIZE:
        _statuses.clear()
    _statuses[status] = encoded
    return encoded


def encode_headers(headers):
    """``(header lines as latin-1 bytes, Connection, Date, Content-Length)`` of the tuple of
    ``(name, value)`` pairs *headers*; the last three are the values of those fields, or None.

    :raises UnicodeError: for a name or value that is not a native latin-1 string.
    :raises ValueError: for a CR or LF in a name or value, or a pair that is not a pair.
    """
    try:
        head = _heads.get(headers)
    except TypeError:  # unhashable pairs (lists): fine, just not cached
        return _encode(headers)
    if head is None:
        head = _encode(headers)
        if len(_heads) >= CACHE_SIZE:
            _heads.clear()
        _heads[headers] = head
    return head


def _encode(headers):
    try:
        lines = [name + ': ' + value + '\r\n' for name, value in headers]
        block = ''.join(lines)
        if block.count('\n') != len(lines) or block.count('\r') != len(lines):
            raise ValueError('carriage return or newline in a header')
        encoded = block.encode('latin-1')
    except (TypeError, ValueError, UnicodeError):
        _check_headers(headers)  # raises the precise error
        raise
    probe = '\r\n' + block.lower()
    return (encoded, _field_value(probe, block, '\r\nconnection:'),
            _field_value(probe, block, '\r\ndate:'),
            _field_value(probe, block, '\r\ncontent-length:'))


def _field_value(probe, block, marker):
    # The value of the first field named by *marker* in *block* (*probe* is CRLF + block.lower()).
    index = probe.find(marker)
    if index < 0:
        return None
    start = index + len(marker) - 2
    return block[start:block.index('\r\n', start)].strip()


def _check_headers(headers):
    # The slow path: find the bad header and say which, with gevent's errors.
    for header in headers:
        name, value = header
        if not isinstance(name, str):
            raise UnicodeError('The header must be a native string', name, value)
        if not isinstance(value, str):
            raise UnicodeError('The value must be a native string', name, value)
        if '\r' in name or '\n' in name:
            raise ValueError('carriage return or newline in header name', name)
        if '\r' in value or '\n' in value:
            raise ValueError('carriage return or newline in header value', value)
        try:
            name.encode('latin-1')
            value.encode('latin-1')
        except UnicodeEncodeError:
            raise UnicodeError('Non-latin1 header', repr(name), repr(value)) from None
