"""Root test configuration for tests/, notebooks/ and solutions/: quick budgets, no downloads, no windows,
quiet progress bars. The variables are set before any notebook kernel starts, so nbval's kernels inherit them.
"""
import os

os.environ["COURSE_QUICK"] = "1"        # course_lib.budget: quick mode for every training cell
os.environ["COURSE_OFFLINE"] = "1"      # course_lib.data: never attempt a download
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
