"""course_lib: the tested helper library of the course *Generative Adversarial Networks, from theory to GPU
training*.

Modules by concept, from low to high (nothing low imports something high; ``tests/test_imports.py`` holds the
layers and INSTRUCTORS.md describes each module in one line):

* start-up and checks: ``threads`` (torch's CPU threads, applied on ``import course_lib``), ``checks``,
  ``utils``, ``machine``, ``colab``; ``device``, ``budget`` (where to run, seeding, how long cells train).
* data: ``data`` (datasets held as tensors), ``data_files`` (idx files, offline mode), ``streams`` (data order).
* networks and losses: ``models`` (MLP, DCGAN), ``losses`` (every GAN loss on logits), ``unet`` and
  ``diffusion`` (a DDPM's network, noise schedule and samplers), ``recipes`` (the defaults per dataset).
* files: ``checkpoint``, ``checkpoint_integrity``, ``families``, ``rundir``, ``run_files``, ``pretrained``.
* measuring samples: ``mixture_metrics``, ``image_metrics``, ``evaluation``, ``report``, ``metrics``,
  ``classifier``, ``fid``.
* training: ``config`` (``TrainConfig``), ``run_inputs``, ``guard`` (the NaN guard), ``ema``, ``optim``,
  ``speed_options``, ``distributed``, ``stopping``, ``progress``; ``train`` (``GANTrainer``: ``d_step``, then
  ``g_step``) and ``diffusion_train`` (``DDPMTrainer``).
* using trained models: ``sampling``, ``generation``, ``reuse``, ``control``; pictures: ``plots``, ``widgets``.
* teaching and measuring speed: ``theory``, ``article``, ``detector``, ``experiments``, ``equal_time``,
  ``timing``, ``host_syncs``, ``flops``, ``ladder``, ``memory``, ``scaling`` (``speed`` gathers them).
* ``env_check`` (notebook 00's report) and ``cli``: ``python -m course_lib train | sample | evaluate | pretrained``.
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
