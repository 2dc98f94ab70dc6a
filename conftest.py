"""Root test configuration for tests/, notebooks/ and solutions/: quick budgets, no downloads, no windows,
quiet progress bars. The variables are set before any notebook kernel starts, so nbval's kernels inherit them.
"""
import os

os.environ["COURSE_QUICK"] = "1"        # course_lib.budget: quick mode for every training cell
os.environ["COURSE_OFFLINE"] = "1"      # course_lib.data: never attempt a download
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
# One BLAS/OpenMP thread per notebook kernel: on a 2-core runner, kernels that spawn a thread per core fight the
# test process and run several times slower; with one thread the small course models are as fast and repeatable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
