"""The service half: ``dhash serve``, an HTTP search service (FastAPI on uvicorn) with a web page.

``backend`` answers k-NN and radius searches (dhash's own index in memory; a new engine is one
class with the same methods) and swaps a reloaded index in atomically; ``uploads`` decodes
uploaded images within size and pixel limits; ``items`` finds the database images behind the
index's ids; ``app`` is the ASGI app (the JSON API and the page in ``static/``). It may import
``dhash.search`` (indexes), ``dhash.learn`` (encoding uploads with a model, data sets for the
database images) and ``dhash.evaluate``, never ``dhash.cli``. Needs the ``dhash[serve]`` extra.
"""
