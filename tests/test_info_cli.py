"""`dhash info` names the CPU, the kernels and the choice per code length; DHASH_KERNEL forces it."""
import json
import os
import subprocess
import sys

from dhash.search.index import available_kernels

CODE = "import sys; from dhash.cli.main import main; sys.argv[0] = 'dhash'; main()"


def info(*args, env=None):
    return subprocess.run([sys.executable, "-c", CODE, "info", *args], capture_output=True, text=True, env=env)


def test_info_json_lists_kernels_and_choices(monkeypatch):
    monkeypatch.delenv("DHASH_KERNEL", raising=False)
    proc = info("--format", "json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["kernels_available"] == available_kernels()
    assert set(facts["kernel_by_bits"]) == {"32", "64", "128", "256", "512", "1024"}
    assert set(facts["kernel_by_bits"].values()) <= set(available_kernels()) - {"portable-baseline"}
    assert facts["cpu"]


def test_info_honours_and_checks_dhash_kernel():
    proc = info(env={**os.environ, "DHASH_KERNEL": "portable"})
    assert proc.returncode == 0 and "32 bits portable, 64 bits portable" in proc.stdout
    proc = info(env={**os.environ, "DHASH_KERNEL": "sse9"})
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "DHASH_KERNEL" in proc.stderr
