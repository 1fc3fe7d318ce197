"""An echo server: ``StreamServer`` runs ``echo()`` in a new greenlet for every connection.

    python examples/echo_server.py [PORT]      # PORT 0 (the default) picks a free one
    nc 127.0.0.1 PORT                          # type lines; they come back; "quit" hangs up

Each connection blocks in ``recv()`` only in its own greenlet, so any number of clients are
served at once by one thread.
"""
import sys

from verdigris.server import StreamServer


def echo(sock, address):
    """Sends back every line the client sends, until it says ``quit`` or hangs up."""
    print("connection from %s:%s" % address[:2], flush=True)
    sock.sendall(b"Welcome to the echo server! Type quit to exit.\r\n")
    with sock.makefile("rb") as lines:
        for line in lines:
            if line.strip().lower() == b"quit":
                break
            sock.sendall(line)
    print("%s:%s disconnected" % address[:2], flush=True)
    # Returning closes the connection (the server does it).


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else 0
    server = StreamServer(("127.0.0.1", port), echo)
    server.start()  # binds now, so the port is known before serving
    print("echo server on %s:%s" % (server.server_host, server.server_port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
