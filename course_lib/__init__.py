"""course_lib: the tested helper library of the course *Generative Adversarial Networks, from theory to GPU
training*.

Modules, from low to high (nothing low imports something high):

* ``device``, ``budget``: where to run, how to seed, how long training cells run.
* ``data``: 2-D mixtures, digits, MNIST / Fashion-MNIST, held as tensors.
* ``models``: MLP and DCGAN generators and discriminators. ``losses``: every GAN loss on logits.
* ``checkpoint``: safe, atomic checkpoint files. ``recipes``: the default configuration per dataset.
* ``train``: the one training loop. ``metrics``, ``plots``, ``widgets``: evaluation and pictures.
* ``cli``: ``python -m course_lib train | sample | evaluate``.
"""
__version__ = "0.1.0"

from .device import get_device, seed_everything  # noqa: E402,F401
