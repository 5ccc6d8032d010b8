"""The learning half: data sources, backbones, the papers' methods, training and encoding.

``data`` loads image collections and feature files and splits them by protocol; ``models`` builds
backbones and the hash network; ``methods`` holds one module per paper; ``config`` resolves the
training settings; ``runtime`` holds what training and encoding share (device, precision, CPU
threads, batched forward passes, progress bars); ``train`` is the training loop, ``encode`` turns
images into code files with a trained model, ``run`` manages run folders. It imports torch and may use ``dhash.search`` (code
files) and ``dhash.evaluate`` (metrics), never the reverse and never ``dhash.cli``. Import the
submodules directly (``from dhash.learn.train import train``): importing this package is cheap.
"""
