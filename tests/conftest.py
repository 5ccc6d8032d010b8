"""Shared fixtures: ``device`` runs a test on the CPU here and again on CUDA where a GPU is present."""
import pytest
import torch

CUDA = torch.cuda.is_available()
NO_CUDA = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, NO_CUDA])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """``cpu``, then ``cuda`` (marked ``cuda``, skipped without a GPU)."""
    return request.param
