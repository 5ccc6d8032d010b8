"""``python -m dhash``: the command line (what torchrun starts: ``torchrun --nproc_per_node=N -m dhash train ...``)."""
from dhash.cli.main import main

if __name__ == "__main__":
    main(prog_name="dhash")
