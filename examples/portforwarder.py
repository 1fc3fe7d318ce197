"""A TCP port forwarder: every connection is relayed to a target address.

    python examples/portforwarder.py TARGET_HOST:TARGET_PORT [PORT]

For each client, ``forward()`` connects to the target and runs two pumping greenlets, one per
direction. When one side stops sending, the pump passes the end of stream on (``shutdown``)
and the other direction goes on until it ends too.
"""
import sys
from socket import SHUT_WR

import verdigris
from verdigris.server import StreamServer
from verdigris.socket import create_connection


def pump(source, destination):
    """Copies *source* to *destination* until *source* ends, then ends *destination*'s stream."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            destination.sendall(data)
    except OSError:
        pass  # reset by one side: the other pump sees it too
    finally:
        try:
            destination.shutdown(SHUT_WR)
        except OSError:
            pass


class PortForwarder(StreamServer):
    """Relays each accepted connection to *target* (a ``(host, port)`` tuple)."""

    def __init__(self, listener, target, **kwargs):
        StreamServer.__init__(self, listener, **kwargs)
        self.target = target

    def handle(self, client, address):
        try:
            upstream = create_connection(self.target, timeout=10)
        except OSError as error:
            print("%s:%s -> %s:%s failed: %s" % (address[:2] + self.target + (error,)), flush=True)
            return
        upstream.settimeout(None)
        print("%s:%s -> %s:%s" % (address[:2] + self.target), flush=True)
        with upstream:
            verdigris.joinall([verdigris.spawn(pump, client, upstream),
                               verdigris.spawn(pump, upstream, client)])
        # Returning closes the client's socket.


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: python %s TARGET_HOST:TARGET_PORT [PORT]" % (argv[0],))
    host, _, port = argv[1].rpartition(":")
    listen_port = int(argv[2]) if len(argv) > 2 else 0
    server = PortForwarder(("127.0.0.1", listen_port), (host or "127.0.0.1", int(port)))
    server.start()
    print("forwarding %s:%s to %s:%s" % ((server.server_host, server.server_port) + server.target),
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
