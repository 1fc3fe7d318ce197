"""verdigris.pywsgi against gevent.pywsgi under wrk, side by side: ``python -m benches.wsgi``.

Both servers serve the same hello-world application, each in its own subprocess (``python -m
benches.wsgi --serve LIB``) on an ephemeral 127.0.0.1 port, with access logging off. After a
warm-up run each, wrk (``apt-get install wrk``) loads them in turns, A B A B ..., so that drift
of a shared machine is spread over both; the result is the median requests/s of each and their
ratio (verdigris / gevent: higher is better for verdigris).

Both listening sockets get ``TCP_NODELAY`` (accepted sockets inherit it): gevent.pywsgi sends
the head and the body of a response in two writes, and without it each keep-alive request waits
~40 ms on Nagle's algorithm and wrk's delayed ACK, which would measure that stall rather than
the server. ``--no-nodelay`` leaves it off, to show the stall (verdigris.pywsgi sets
``TCP_NODELAY`` on its accepted sockets itself and sends small responses in one write).

``--latency`` measures something else: the time of one keep-alive request, with each server as
it comes (``WSGIServer(address, app)``: no ``TCP_NODELAY`` given to it), for a client that
writes a request in one piece and for one that writes the head and the body separately (as
``http.client`` does for a body given as a file or an iterable). That is where the ~40 ms
stalls of Nagle's algorithm and delayed ACKs show (:func:`latency`).

Other modules use :func:`run`; ``python -m benches`` has its own, more general wsgi workload.
"""
import argparse
import json
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import time

LIBS = ('verdigris', 'gevent')
STARTUP_TIMEOUT = 30
BODY = b'Hello, World!\n'


def app(environ, start_response):
    """The hello world that wrk loads."""
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(BODY)))])
    return [BODY]


def echo(environ, start_response):
    """What :func:`latency` times: the request's body back (the greeting for no body)."""
    body = environ['wsgi.input'].read() or BODY
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


# -- the server side (in the subprocess) -------------------------------------------------------

def serve(lib, nodelay=True, plain=False):
    """Serves :func:`app` with LIB's pywsgi; prints ``{"port": N}`` once listening. *plain*:
    serves :func:`echo` instead, on a socket the server binds itself (the library's defaults)."""
    import importlib

    socket_module = importlib.import_module(lib + '.socket')
    pywsgi = importlib.import_module(lib + '.pywsgi')
    if plain:
        server = pywsgi.WSGIServer(('127.0.0.1', 0), echo, log=None)
        server.start()
        sys.stdout.write(json.dumps({'port': server.server_port}) + '\n')
        sys.stdout.flush()
        server.serve_forever()
        return
    listener = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
    listener.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_REUSEADDR, 1)
    if nodelay:
        listener.setsockopt(socket_module.IPPROTO_TCP, socket_module.TCP_NODELAY, 1)
    listener.bind(('127.0.0.1', 0))
    listener.listen(1024)
    server = pywsgi.WSGIServer(listener, app, log=None)
    server.start()
    sys.stdout.write(json.dumps({'port': listener.getsockname()[1]}) + '\n')
    sys.stdout.flush()
    server.serve_forever()


# -- the driver --------------------------------------------------------------------------------

def _start(lib, nodelay, plain=False):
    command = [sys.executable, '-m', 'benches.wsgi', '--serve', lib]
    if not nodelay:
        command.append('--no-nodelay')
    if plain:
        command.append('--plain')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([server.stdout], [], [], STARTUP_TIMEOUT)
    line = server.stdout.readline() if ready else ''
    if not line:
        _stop(server)
        raise RuntimeError('%s server did not start within %ss' % (lib, STARTUP_TIMEOUT))
    return server, json.loads(line)['port']


def _stop(server):
    # By the handle of the process this module started, never by name.
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    server.stdout.close()


def _wrk(port, duration, connections):
    command = ['wrk', '-t1', '-c%d' % connections, '-d%ds' % duration, '--timeout', '10s',
               'http://127.0.0.1:%d/' % port]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    match = re.search(r'Requests/sec:\s+([\d.]+)', done.stdout)
    if done.returncode or not match:
        raise RuntimeError('wrk failed (%s): %s' % (done.returncode, (done.stderr or done.stdout)[-300:]))
    errors = re.search(r'Non-2xx or 3xx responses:\s+(\d+)', done.stdout)
    if errors:
        raise RuntimeError('wrk got %s bad responses' % (errors.group(1),))
    return float(match.group(1))


def run(duration=5, connections=50, rounds=3, nodelay=True, warmup=1):
    """Measures both servers; returns ``{lib: {"rps": median, "samples": [...]}, "ratio": v/g}``.

    :param duration: seconds of each timed wrk run.
    :param connections: wrk's concurrent keep-alive connections (one wrk thread).
    :param rounds: timed runs per server, alternating between them.
    :param nodelay: give both listening sockets TCP_NODELAY (see the module's documentation).
    :param warmup: seconds of an untimed wrk run per server first.
    """
    if shutil.which('wrk') is None:
        raise RuntimeError('wrk is not installed (apt-get install wrk)')
    servers = {}
    try:
        for lib in LIBS:
            servers[lib] = _start(lib, nodelay)
        if warmup:
            for lib in LIBS:
                _wrk(servers[lib][1], warmup, connections)
        samples = {lib: [] for lib in LIBS}
        for _ in range(rounds):
            for lib in LIBS:
                samples[lib].append(_wrk(servers[lib][1], duration, connections))
                if servers[lib][0].poll() is not None:
                    raise RuntimeError('the %s server died' % (lib,))
    finally:
        for server, _ in servers.values():
            _stop(server)
    result = {lib: {'rps': statistics.median(samples[lib]), 'samples': samples[lib]} for lib in LIBS}
    result['ratio'] = result['verdigris']['rps'] / result['gevent']['rps']
    result['config'] = {'duration': duration, 'connections': connections, 'rounds': rounds,
                        'nodelay': nodelay}
    return result


_REQUESTS = {
    'one write': [b'GET / HTTP/1.1\r\nHost: bench\r\n\r\n'],
    'head, then body': [b'POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 5\r\n\r\n', b'hello'],
}


def _timed_requests(port, writes, count):
    # One keep-alive connection with the client's defaults (Nagle on); seconds per request.
    times = []
    with socket.create_connection(('127.0.0.1', port), timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            for data in writes:
                client.sendall(data)
            response = b''
            while b'\r\n\r\n' not in response or not response.endswith((BODY, b'hello')):
                chunk = client.recv(65536)
                if not chunk:
                    raise RuntimeError('the server closed the connection')
                response += chunk
            times.append(time.perf_counter() - started)
    return times


def latency(count=20):
    """Median milliseconds per keep-alive request, per server and client pattern (see the
    module's documentation): ``{lib: {pattern: ms}}``."""
    result = {}
    for lib in LIBS:
        server, port = _start(lib, nodelay=False, plain=True)
        try:
            result[lib] = {pattern: statistics.median(_timed_requests(port, writes, count)) * 1000
                           for pattern, writes in _REQUESTS.items()}
        finally:
            _stop(server)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benches.wsgi', description=__doc__.split('\n')[0])
    parser.add_argument('--duration', type=int, default=5, help='seconds per timed wrk run')
    parser.add_argument('--connections', type=int, default=50, help="wrk's connections")
    parser.add_argument('--rounds', type=int, default=3, help='timed runs per server')
    parser.add_argument('--no-nodelay', action='store_true', help='no TCP_NODELAY on the listeners')
    parser.add_argument('--json', action='store_true', help='print the result as JSON')
    parser.add_argument('--latency', action='store_true',
                        help='time single keep-alive requests instead (no wrk)')
    parser.add_argument('--serve', choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument('--plain', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, nodelay=not args.no_nodelay, plain=args.plain)
        return 0
    if args.latency:
        result = latency()
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        print('one keep-alive request, median of 20, servers with their default sockets:')
        for lib in LIBS:
            print('  %-10s ' % lib + '   '.join('%s: %7.2f ms' % item for item in result[lib].items()))
        return 0
    result = run(args.duration, args.connections, args.rounds, nodelay=not args.no_nodelay)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print('wsgi hello world, wrk -t1 -c%d, %d x %ds per server%s' % (
        args.connections, args.rounds, args.duration, '' if not args.no_nodelay else ', no TCP_NODELAY'))
    for lib in LIBS:
        samples = ', '.join('%.0f' % x for x in result[lib]['samples'])
        print('  %-10s %9.0f req/s  (runs: %s)' % (lib, result[lib]['rps'], samples))
    print('  verdigris / gevent: %.2fx' % (result['ratio'],))
    return 0


if __name__ == '__main__':
    sys.exit(main())
