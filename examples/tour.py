"""A tour of verdigris through the tutorial's examples.

Runs each example in examples/tutorial/ with this interpreter, shows what it teaches and what it
printed, and checks the output against the tutorial's. Exit status 0 when every example matches.

    python examples/tour.py            # all of them
    python examples/tour.py 01 05      # some of them
"""
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent / "tutorial"

LESSONS = {
    "01_sleep_switch": "spawn() starts green threads; sleep(0) yields to the others",
    "02_dns": "monkey.patch_socket() makes the stdlib's DNS lookups cooperative",
    "03_status": "a green thread's state: started, ready(), successful(), value, exception",
    "04_timeout": "Timeout bounds a block of code, or a whole green thread",
    "05_event": "Event and AsyncResult wake every waiting green thread at once",
    "06_queue": "Queue hands work from a producer to consumers",
    "07_semaphore": "BoundedSemaphore(2) lets at most two green threads in",
    "08_local": "local() attributes are private to each green thread",
}


def run(example):
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    expected = example.with_suffix(".expected").read_text()
    ok = proc.returncode == 0 and proc.stdout.strip() == expected.strip()
    return ok, proc, elapsed


def main(argv):
    examples = sorted(HERE.glob("0*.py"))
    if argv:
        examples = [e for e in examples if any(e.name.startswith(a) for a in argv)]
    failed = 0
    for example in examples:
        name = example.stem
        print("=" * 78)
        print("%s: %s" % (name, LESSONS.get(name, "")))
        print("-" * 78)
        ok, proc, elapsed = run(example)
        sys.stdout.write(proc.stdout)
        if not ok:
            failed += 1
            print("!! output differs from the tutorial's (exit status %d)" % proc.returncode)
            sys.stdout.write(proc.stderr[-2000:])
        print("-- %s in %.2f s" % ("ok" if ok else "FAILED", elapsed))
    print("=" * 78)
    print("tour: %d passed, %d failed" % (len(examples) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
