"""The ``dhash`` command-line front end (installed as ``dhash.cli``). The library never imports it."""
