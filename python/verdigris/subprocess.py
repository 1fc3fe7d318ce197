"""Cooperative :mod:`subprocess`: child processes that never block the loop.

:class:`Popen` subclasses the stdlib's own ``Popen`` (the original class, captured at import,
before :func:`verdigris.monkey.patch_subprocess` replaces ``subprocess.Popen`` with ours) and
keeps its argument handling, ``fork``/``exec`` and error reporting. It replaces what blocks:

* **Reaping.** Right after the child starts, a watcher waits for its *pidfd*
  (``os.pidfd_open``, Linux 5.3+) to become readable, which happens when the child exits; the
  watcher then collects the status with a non-blocking ``waitpid`` and sets :attr:`Popen.result`.
  So every child is reaped as soon as it exits, even if nobody calls :meth:`~Popen.wait`, and
  ``wait(timeout)`` is an ordinary cooperative wait on that result. A pidfd needs no ``SIGCHLD``
  handler, so the program keeps that signal. Where there is no pidfd (older kernels, seccomp
  sandboxes) the watcher polls with ``WNOHANG`` every 50 ms instead. See :mod:`verdigris.os`.
* **Pipes.** ``stdin``, ``stdout`` and ``stderr`` are :class:`~verdigris.fileobject.FileObjectPosix`
  objects (non-blocking fds, waited on by the loop) with the modes, encoding and buffering the
  stdlib would have used.
* **communicate.** One greenlet writes the input and one reads each output pipe, so large inputs
  and outputs cannot deadlock. They outlive a ``timeout``: after :exc:`TimeoutExpired`, calling
  :meth:`~Popen.communicate` again (typically after :meth:`~Popen.kill`) returns everything the
  child wrote, nothing lost.

:func:`run`, :func:`call`, :func:`check_call`, :func:`check_output`, :func:`getoutput` and
:func:`getstatusoutput` are built on this :class:`Popen`; the stdlib's exceptions, constants and
:class:`CompletedProcess` are re-exported unchanged.

.. note::
   The stdlib's ``Popen.__init__`` reads the exec handshake pipe (which reports a failed
   ``exec``) with a blocking ``os.read``. The loop is paused from ``fork`` until the child calls
   ``exec``: usually well under a millisecond (CPython uses ``vfork``), but as long as a
   ``preexec_fn`` runs. gevent reads that pipe cooperatively.

.. note::
   :func:`getoutput` and :func:`getstatusoutput` are cooperative here; gevent re-exports the
   stdlib's, which are cooperative only once ``subprocess`` is monkey patched.
   :exc:`TimeoutExpired` from :meth:`Popen.communicate` carries the output read so far (as the
   stdlib's does); gevent's carries none. gevent also replaces ``_fork_exec`` and
   ``_USE_POSIX_SPAWN``, which verdigris has no reason to touch.
"""
import io
import subprocess as _subprocess
import time
import types

from verdigris.event import AsyncResult
from verdigris.fileobject import FileObjectPosix
from verdigris.greenlet import Greenlet, joinall, killall
from verdigris.hub import get_hub, sleep
from verdigris.os import _ChildWatcher, _copy_globals

__implements__ = ["Popen", "call", "check_call", "check_output", "run", "getoutput",
                  "getstatusoutput"]
__extensions__ = []

# The stdlib's class, kept before monkey patching replaces subprocess.Popen with ours.
_StdlibPopen = _subprocess.Popen

PIPE = _subprocess.PIPE
STDOUT = _subprocess.STDOUT
DEVNULL = _subprocess.DEVNULL
CalledProcessError = _subprocess.CalledProcessError
TimeoutExpired = _subprocess.TimeoutExpired
CompletedProcess = _subprocess.CompletedProcess
SubprocessError = _subprocess.SubprocessError

#: Bytes asked for per read while communicating (a pipe holds 64 KiB).
_CHUNK = 65536


class _LinkProxy:
    """Calls ``callback(popen)`` when the result is set; equal to *callback* for ``unlink``."""

    __slots__ = ("callback", "popen")

    def __init__(self, callback, popen):
        self.callback = callback
        self.popen = popen

    def __call__(self, _result):
        self.callback(self.popen)

    def __eq__(self, other):
        return self.callback == getattr(other, "callback", other)

    def __hash__(self):
        return hash(self.callback)


class Popen(_StdlibPopen):
    """The stdlib's :class:`subprocess.Popen`, cooperative (same arguments and attributes).

    Extras from gevent: :attr:`result`, an :class:`~verdigris.event.AsyncResult` set to the
    return code when the child has exited (and been reaped), and :meth:`rawlink`, so that a
    ``Popen`` can be given to :func:`verdigris.wait`.

    The child is watched by the loop of the thread that created the ``Popen``, and its pipes
    are waited on there. :meth:`poll` and :meth:`wait` also work from other threads (``wait``
    then polls, sleeping 1 ms to 50 ms between polls); the pipes and :meth:`communicate` do not.
    """

    def __init__(self, args, bufsize=-1, *more, **kwargs):
        # Set before the stdlib's __init__, which may fail half-way: __del__ and poll read them.
        self.result = AsyncResult()
        self._child_watcher = None
        self._communicating = None
        self._loop = get_hub().loop
        _StdlibPopen.__init__(self, args, bufsize, *more, **kwargs)
        # The child exists: from now on it is reaped as soon as it exits. The watcher keeps the
        # loop alive meanwhile, as gevent's child watchers do.
        self._child_watcher = _ChildWatcher(self.pid, self._on_child_exit, self._loop)
        buffering = bufsize if bufsize is not None and bufsize > 1 else -1
        self.stdin = _cooperative_pipe(self.stdin, True, buffering)
        self.stdout = _cooperative_pipe(self.stdout, False, buffering)
        self.stderr = _cooperative_pipe(self.stderr, False, buffering)

    # -- reaping ---------------------------------------------------------------------------

    def _on_child_exit(self):
        # In the hub, when the pidfd turned readable (or each poll without one). The stdlib's
        # non-blocking poll does the waitpid, under its lock; True ends the watch.
        return self._internal_poll() is not None

    def _internal_poll(self, _deadstate=None, **kwargs):
        returncode = _StdlibPopen._internal_poll(self, _deadstate=_deadstate, **kwargs)
        if returncode is not None and not self.result.ready():
            self._child_exited()
        return returncode

    def _child_exited(self):
        if self._loop.owned_by_current_thread():
            self._finish()
        else:
            # poll() from another thread: the watcher and the result belong to the loop's.
            self._loop.run_callback_threadsafe(self._finish)

    def _finish(self):
        watcher, self._child_watcher = self._child_watcher, None
        if watcher is not None and not self._loop.destroyed:
            watcher.close()
        if not self.result.ready():
            self.result.set(self.returncode)

    def _wait(self, timeout):
        """Waits for the watcher to reap the child; the stdlib's ``wait`` calls this."""
        if self.returncode is not None:
            return self.returncode
        if timeout is not None and timeout <= 0:
            if self._internal_poll() is None:
                raise TimeoutExpired(self.args, timeout)
            return self.returncode
        if not self._loop.owned_by_current_thread():
            return self._poll_until(timeout)
        self.result.wait(timeout)
        if self.returncode is None:
            raise TimeoutExpired(self.args, timeout)
        return self.returncode

    def _poll_until(self, timeout):
        # Another thread than the Popen's: its result cannot be waited on from here, so poll,
        # sleeping cooperatively (in this thread's hub) between 1 ms and 50 ms.
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self._internal_poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutExpired(self.args, timeout)
            remaining = 0.05 if deadline is None else max(deadline - time.monotonic(), 0)
            sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)
        return self.returncode

    def rawlink(self, callback):
        """Calls ``callback(self)`` in the hub once the child has exited and been reaped."""
        self.result.rawlink(_LinkProxy(callback, self))

    def unlink(self, callback):
        """Removes a callback given to :meth:`rawlink`."""
        self.result.unlink(callback)

    # -- communicating -----------------------------------------------------------------------

    def communicate(self, input=None, timeout=None):
        """Sends *input*, reads stdout and stderr to end of file, waits for the child to exit.

        Returns ``(stdout_data, stderr_data)`` (None for a stream that is not a pipe), as bytes,
        or str in text mode. Raises :exc:`TimeoutExpired` after *timeout* seconds, carrying the
        output read so far; the reading goes on, and a later call returns all of it.
        """
        if self._communication_started and input:
            raise ValueError("Cannot send input after starting communication")
        self._communication_started = True
        endtime = None if timeout is None else time.monotonic() + timeout
        comm = self._communicating
        if comm is None:
            comm = self._communicating = _Communication(self, input)
        if comm.greenlets:
            done = joinall(comm.greenlets, timeout=timeout)
            for greenlet in done:
                greenlet.get()  # a writer or reader that failed raises here
            if len(done) != len(comm.greenlets):
                raise TimeoutExpired(self.args, timeout, output=comm.partial(comm.stdout_chunks),
                                     stderr=comm.partial(comm.stderr_chunks))
        if endtime is None:
            self.wait()
        else:
            try:
                self._wait(max(endtime - time.monotonic(), 0.0))
            except TimeoutExpired:
                raise TimeoutExpired(self.args, timeout) from None
        return comm.results()

    def __exit__(self, exc_type, value, traceback):
        # Greenlets of an interrupted communicate() are parked in the pipes: stop them first (each
        # closes its own pipe as it unwinds), then close what is left and reap the child.
        comm = self._communicating
        if comm is not None:
            running = [g for g in comm.greenlets if not g.dead]
            if running:
                killall(running)
        try:
            for pipe in (self.stdout, self.stderr):
                if pipe:
                    pipe.close()
        finally:
            try:
                if self.stdin:
                    self.stdin.close()
            finally:
                if exc_type is KeyboardInterrupt:
                    # As the stdlib: the child got the same SIGINT; give it a moment, no more.
                    if self._sigint_wait_secs > 0:
                        try:
                            self._wait(timeout=self._sigint_wait_secs)
                        except TimeoutExpired:
                            pass
                    self._sigint_wait_secs = 0
                else:
                    self.wait()


def _cooperative_pipe(stream, writing, buffering):
    """A FileObjectPosix on the fd of the stdlib's pipe object *stream*, in the same mode."""
    if stream is None:
        return None
    text = isinstance(stream, io.TextIOBase)
    inner = stream.buffer if text else stream
    if isinstance(inner, io.RawIOBase):
        buffering = 0  # bufsize=0: the stdlib made it unbuffered
    mode = ("w" if writing else "r") + ("" if text else "b")
    extra = {"encoding": stream.encoding, "errors": stream.errors} if text else {}
    # The stdlib's object owns the fd: ours takes it over and closes it when closed itself.
    fobj = FileObjectPosix(stream, mode, buffering, **extra)
    if text and writing:
        fobj.io.reconfigure(write_through=True, line_buffering=stream.line_buffering)
    return fobj


class _Communication:
    """The greenlets of one Popen's communicate(): at most one set, reused after a timeout."""

    def __init__(self, popen, input):
        greenlets = []
        if popen.stdin:
            greenlets.append(Greenlet.spawn(_write_and_close, popen.stdin, input))
        self.stdout_chunks = self._reader(popen.stdout, greenlets)
        self.stderr_chunks = self._reader(popen.stderr, greenlets)
        # (encoding, errors) of text-mode pipes, None for binary ones.
        self._stdout_text = _text_codec(popen.stdout)
        self._stderr_text = _text_codec(popen.stderr)
        self.greenlets = tuple(greenlets)

    @staticmethod
    def _reader(fobj, greenlets):
        if not fobj:
            return None
        chunks = []
        greenlets.append(Greenlet.spawn(_read_and_close, fobj, chunks))
        return chunks

    @staticmethod
    def partial(chunks):
        return b"".join(chunks) if chunks else None

    @staticmethod
    def _value(chunks, codec):
        if chunks is None:
            return None
        data = b"".join(chunks)
        if codec is None:
            return data
        # Universal newlines, as the stdlib's text-mode communicate() decodes.
        return data.decode(*codec).replace("\r\n", "\n").replace("\r", "\n")

    def results(self):
        return (self._value(self.stdout_chunks, self._stdout_text),
                self._value(self.stderr_chunks, self._stderr_text))


def _text_codec(fobj):
    if fobj and isinstance(fobj.io, io.TextIOBase):
        return fobj.encoding, fobj.errors
    return None


def _write_and_close(fobj, data):
    try:
        if data:
            if isinstance(fobj.io, io.TextIOBase):
                data = data.encode(fobj.encoding, fobj.errors)
                stream = fobj.buffer
            else:
                stream = fobj
            view = memoryview(data).cast("B")
            while view:
                # A buffered stream writes it all; a raw one (bufsize=0) may write a part.
                written = stream.write(view)
                view = view[written:]
            stream.flush()
    except BrokenPipeError:
        pass  # the child exited or closed its stdin without reading everything: as the stdlib
    finally:
        try:
            fobj.close()
        except BrokenPipeError:
            pass


def _read_and_close(fobj, chunks):
    try:
        stream = fobj.buffer if isinstance(fobj.io, io.TextIOBase) else fobj
        read = getattr(stream, "read1", None) or stream.read
        while True:
            data = read(_CHUNK)
            if not data:
                return
            chunks.append(data)
    finally:
        fobj.close()


# -- the stdlib's convenience functions, on our Popen -------------------------------------------

def call(*popenargs, timeout=None, **kwargs):
    """Runs a command, waits for it (at most *timeout* seconds), returns its return code."""
    with Popen(*popenargs, **kwargs) as process:
        try:
            return process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            raise  # __exit__ reaps it


def check_call(*popenargs, **kwargs):
    """Like :func:`call`, but raises :exc:`CalledProcessError` for a non-zero return code."""
    returncode = call(*popenargs, **kwargs)
    if returncode:
        cmd = kwargs.get("args")
        if cmd is None:
            cmd = popenargs[0]
        raise CalledProcessError(returncode, cmd)
    return 0


def check_output(*popenargs, timeout=None, **kwargs):
    """Runs a command and returns its output; :exc:`CalledProcessError` on a non-zero code."""
    for name in ("stdout", "check"):
        if name in kwargs:
            raise ValueError("%s argument not allowed, it will be overridden." % name)
    if "input" in kwargs and kwargs["input"] is None:
        # The stdlib keeps input=None meaning "empty input", for backwards compatibility.
        textual = any(kwargs.get(k) for k in ("universal_newlines", "text", "encoding", "errors"))
        kwargs["input"] = "" if textual else b""
    return run(*popenargs, stdout=PIPE, timeout=timeout, check=True, **kwargs).stdout


def run(*popenargs, input=None, capture_output=False, timeout=None, check=False, **kwargs):
    """Runs a command, waits for it, returns a :class:`CompletedProcess` (:func:`subprocess.run`).

    On timeout the child is killed and reaped, and :exc:`TimeoutExpired` is raised with the
    output read until then; with ``check=True`` a non-zero code raises :exc:`CalledProcessError`.
    """
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        kwargs["stdout"] = kwargs["stderr"] = PIPE
    with Popen(*popenargs, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except TimeoutExpired:
            # The exception carries the output read so far. Like the stdlib, do not read on
            # after the kill: a grandchild may hold the pipes open for a long time.
            process.kill()
            process.wait()
            raise
        except BaseException:
            process.kill()
            raise  # __exit__ reaps it
        returncode = process.poll()
        if check and returncode:
            raise CalledProcessError(returncode, process.args, output=stdout, stderr=stderr)
    return CompletedProcess(process.args, returncode, stdout, stderr)


def getstatusoutput(cmd, *, encoding=None, errors=None):
    """Runs *cmd* in a shell; returns ``(exitcode, output)``, stderr included, last newline cut."""
    try:
        data = check_output(cmd, shell=True, text=True, stderr=STDOUT, encoding=encoding,
                            errors=errors)
        exitcode = 0
    except CalledProcessError as ex:
        data = ex.output
        exitcode = ex.returncode
    if data[-1:] == "\n":
        data = data[:-1]
    return exitcode, data


def getoutput(cmd, *, encoding=None, errors=None):
    """Runs *cmd* in a shell and returns its output (see :func:`getstatusoutput`)."""
    return getstatusoutput(cmd, encoding=encoding, errors=errors)[1]


# The stdlib's names, unchanged: the exceptions, constants and CompletedProcess above, and
# every other public name of the module (list2cmdline, ...).
__imports__ = ["CalledProcessError", "CompletedProcess", "DEVNULL", "PIPE", "STDOUT",
               "SubprocessError", "TimeoutExpired"]
__imports__ += [
    name for name in _copy_globals(_subprocess, globals(), set(globals()), private=False)
    if not isinstance(globals()[name], types.ModuleType)]
__all__ = __implements__ + ["CalledProcessError", "CompletedProcess", "DEVNULL", "PIPE", "STDOUT",
                            "SubprocessError", "TimeoutExpired"]
