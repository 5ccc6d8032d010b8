"""The compiled core called directly with bad arguments raises a Python exception, never a signal.

All cases run in one child process (a segfault there fails the test and names the last case
started); each must raise the expected exception type (ValueError with a one-line message for bad
values, pybind11's TypeError for arguments of the wrong Python type), and the core must still answer afterwards.
"""
import json
import subprocess
import sys
import textwrap

CASES = textwrap.dedent('''
    import json, sys
    import numpy as np
    from dhash.search import _core as C

    def lin(bits=64, n=20):
        ix = C.LinearCore(bits)
        ix.add(np.zeros((n, (bits + 7) // 8), np.uint8))
        return ix

    def mih(bits=64, n=5000, m=0):
        ix = C.MihCore(bits, m)
        ix.add(np.random.default_rng(0).integers(0, 256, (n, (bits + 7) // 8), dtype=np.uint8))
        return ix

    q8 = np.zeros((3, 8), np.uint8)
    cases = {
        "linear bits -1": (ValueError, lambda: C.LinearCore(-1)),
        "linear bits 0": (ValueError, lambda: C.LinearCore(0)),
        "linear bits 1025": (ValueError, lambda: C.LinearCore(1025)),
        "linear bits 2**40": (TypeError, lambda: C.LinearCore(2**40)),
        "add 1 byte for 1024 bits": (ValueError, lambda: C.LinearCore(1024).add(np.zeros((4, 1), np.uint8))),
        "add 256 bytes for 1024 bits": (ValueError, lambda: C.LinearCore(1024).add(np.zeros((4, 256), np.uint8))),
        "add 1024 bytes for 64 bits": (ValueError, lambda: C.LinearCore(64).add(np.zeros((4, 1024), np.uint8))),
        "add 1-D": (ValueError, lambda: C.LinearCore(64).add(np.zeros(8, np.uint8))),
        "add 3-D": (ValueError, lambda: C.LinearCore(64).add(np.zeros((2, 2, 8), np.uint8))),
        "add float64": (ValueError, lambda: C.LinearCore(64).add(np.zeros((2, 8)))),
        "add int8": (ValueError, lambda: C.LinearCore(64).add(np.zeros((2, 8), np.int8))),
        "add non-contiguous": (ValueError, lambda: C.LinearCore(64).add(np.zeros((4, 16), np.uint8)[:, ::2])),
        "add Fortran order": (ValueError, lambda: C.LinearCore(64).add(np.asfortranarray(np.zeros((4, 8), np.uint8)))),
        "add list": (TypeError, lambda: C.LinearCore(64).add([[1] * 8])),
        "add None": (TypeError, lambda: C.LinearCore(64).add(None)),
        "search k 0": (ValueError, lambda: lin().search(q8, 0)),
        "search k -1": (ValueError, lambda: lin().search(q8, -1)),
        "search k 2**40": (ValueError, lambda: lin().search(q8, 2**40)),
        "search queries 7 bytes": (ValueError, lambda: lin().search(np.zeros((3, 7), np.uint8), 1)),
        "search queries 9 bytes": (ValueError, lambda: lin().search(np.zeros((3, 9), np.uint8), 1)),
        "search queries 1-D": (ValueError, lambda: lin().search(np.zeros(8, np.uint8), 1)),
        "search queries uint16": (ValueError, lambda: lin().search(np.zeros((3, 4), np.uint16), 1)),
        "search threads -1": (ValueError, lambda: lin().search(q8, 1, -1)),
        "search threads 10**6": (ValueError, lambda: lin().search(q8, 1, 10**6)),
        "search kernel unknown": (ValueError, lambda: lin().search(q8, 1, 0, "avx9")),
        "search kernel other CPU": (ValueError, lambda: lin().search(q8, 1, 0, "neon" if "neon" not in C.available_kernels() else "avx512")),
        "range radius -1": (ValueError, lambda: lin().range_search(q8, -1)),
        "range queries wide": (ValueError, lambda: lin().range_search(np.zeros((3, 64), np.uint8), 2)),
        "distances queries narrow": (ValueError, lambda: lin().distances(np.zeros((3, 2), np.uint8))),
        "distances threads -5": (ValueError, lambda: lin().distances(q8, -5)),
        "mih substrings > bits": (ValueError, lambda: C.MihCore(16, 17)),
        "mih substrings 65 of 64": (ValueError, lambda: C.MihCore(64, 65)),
        "mih substrings -1": (ValueError, lambda: C.MihCore(64, -1)),
        "mih substrings 1 of 64": (ValueError, lambda: C.MihCore(64, 1)),
        "mih bits 0": (ValueError, lambda: C.MihCore(0, 0)),
        "mih bits 4096": (ValueError, lambda: C.MihCore(4096, 0)),
        "mih add wrong width": (ValueError, lambda: C.MihCore(128, 0).add(np.zeros((5000, 8), np.uint8))),
        "mih search k 0": (ValueError, lambda: mih().search(q8, 0)),
        "mih search wrong width": (ValueError, lambda: mih().search(np.zeros((3, 16), np.uint8), 5)),
        "mih range radius -3": (ValueError, lambda: mih().range_search(q8, -3)),
        "mih range wrong width": (ValueError, lambda: mih(m=4).range_search(np.zeros((3, 1), np.uint8), 3)),
        "auto_substrings bits 0": (ValueError, lambda: C.auto_substrings(0, 100)),
        "selected_kernel bits 5000": (ValueError, lambda: C.selected_kernel("", 5000)),
    }
    results = {}
    for name, (expected, call) in cases.items():
        print(name, file=sys.stderr, flush=True)
        try:
            call()
            results[name] = "no exception"
        except expected as exc:
            one_line = expected is TypeError or "\\n" not in str(exc)  # pybind11's TypeErrors list overloads
            results[name] = "ok" if str(exc).strip() and one_line else f"bad message {exc!r}"
        except Exception as exc:  # noqa: BLE001 - reported as the wrong type
            results[name] = f"{type(exc).__name__}: {exc}"
    # still answers correctly after all that
    ix = C.MihCore(64, 0)
    db = np.random.default_rng(1).integers(0, 256, (6000, 8), dtype=np.uint8)
    ix.add(db)
    d, i, _ = ix.search(db[:5], 1)
    results["after"] = "ok" if (d[:, 0] == 0).all() and (i[:, 0] == np.arange(5)).all() else f"wrong {d} {i}"
    # padding bits past `bits` never count: a 12-bit code with the high nibble set
    lc = C.LinearCore(12)
    lc.add(np.array([[0, 0xF0]], np.uint8))
    dist = lc.distances(np.zeros((1, 2), np.uint8))
    results["padding"] = "ok" if dist.tolist() == [[0]] else f"padding counted: {dist}"
    print(json.dumps(results))
''')


def test_bad_core_arguments_raise_and_never_crash():
    proc = subprocess.run([sys.executable, "-c", CASES], capture_output=True, text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1:] if proc.stderr else []
    assert proc.returncode == 0, f"child died (rc {proc.returncode}) during case {last}: {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = {name: r for name, r in results.items() if r != "ok"}
    assert not bad, bad
    assert len(results) == 45
