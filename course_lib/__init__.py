"""course_lib: the tested helper library of the course *Generative Adversarial Networks, from theory to GPU
training*.

Modules, from low to high (nothing low imports something high):

* ``threads``: torch's CPU threads sized to the CPUs this process may use (applied on ``import course_lib``).
* ``device``, ``budget``: where to run, how to seed, how long training cells run.
* ``data``: 2-D mixtures, digits, MNIST / Fashion-MNIST, held as tensors.
* ``models``: MLP and DCGAN generators and discriminators. ``losses``: every GAN loss on logits.
* ``checkpoint``: safe, atomic checkpoint files. ``recipes``: the default configuration per dataset.
* ``train``: the one training loop. ``metrics``, ``plots``, ``widgets``: evaluation and pictures.
* ``cli``: ``python -m course_lib train | sample | evaluate``.
"""
from . import threads as _threads

__version__ = "0.1.0"

# Before torch starts its OpenMP thread pool: the thread count and a wait policy that does not spin (see
# course_lib.threads). Importing course_lib first (as the notebooks' first cell and the command line do) is what
# makes the wait policy take effect.
_threads.configure()

__all__ = ["get_device", "seed_everything"]


def __getattr__(name: str):
    """``course_lib.get_device`` / ``course_lib.seed_everything``, imported on first use: importing the package
    (as ``python -m course_lib`` does) stays light, so Ctrl-C during start-up is handled by the command line."""
    if name in __all__:
        from . import device

        return getattr(device, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
