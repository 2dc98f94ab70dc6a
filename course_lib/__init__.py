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

__all__ = ["get_device", "seed_everything"]


def __getattr__(name: str):
    """``course_lib.get_device`` / ``course_lib.seed_everything``, imported on first use: importing the package
    (as ``python -m course_lib`` does) stays light, so Ctrl-C during start-up is handled by the command line."""
    if name in __all__:
        from . import device

        return getattr(device, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
