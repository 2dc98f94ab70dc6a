"""Answers for solutions/05_gpu_training.ipynb."""

FAKE_CLOCK = ("def fake_clock():",)   # the cell defining the fake clock and the function the check times

EXERCISES = {
    "Exercise 1": {
        "cells": FAKE_CLOCK,
        "wrong": [
            {"why": "the clock starts before the warm-up, which is timed too",
             "answer": "speed.synchronize(device)\nt0 = time.perf_counter()\nfor _ in range(warmup + repeats):\n"
                       "    fn()\nspeed.synchronize(device)\nreturn (time.perf_counter() - t0) / repeats",
             "hint": ("before the warm-up",)},
            {"why": "the warm-up timed and the total divided by all calls",
             "answer": "speed.synchronize(device)\nt0 = time.perf_counter()\nfor _ in range(warmup + repeats):\n"
                       "    fn()\nspeed.synchronize(device)\nreturn (time.perf_counter() - t0) / (warmup + repeats)",
             "hint": ("before the warm-up",)},
            {"why": "the total of the timed calls, not the mean",
             "answer": "for _ in range(warmup):\n    fn()\nspeed.synchronize(device)\nt0 = time.perf_counter()\n"
                       "for _ in range(repeats):\n    fn()\nspeed.synchronize(device)\nreturn time.perf_counter() - t0",
             "hint": ("total", "mean")},
            {"why": "divided by warm-up + repeats although only the repeats were timed",
             "answer": "for _ in range(warmup):\n    fn()\nspeed.synchronize(device)\nt0 = time.perf_counter()\n"
                       "for _ in range(repeats):\n    fn()\nspeed.synchronize(device)\n"
                       "return (time.perf_counter() - t0) / (warmup + repeats)",
             "hint": ("not warmup + repeats",)},
            {"why": "only the last call timed",
             "answer": "for _ in range(warmup + repeats - 1):\n    fn()\nspeed.synchronize(device)\n"
                       "t0 = time.perf_counter()\nfn()\nspeed.synchronize(device)\nreturn time.perf_counter() - t0",
             "hint": ("last call",)},
            {"why": "the median of per-call times instead of the mean",
             "answer": "import statistics\nfor _ in range(warmup):\n    fn()\nlaps = []\nfor _ in range(repeats):\n"
                       "    speed.synchronize(device)\n    t0 = time.perf_counter()\n    fn()\n"
                       "    speed.synchronize(device)\n    laps.append(time.perf_counter() - t0)\n"
                       "return float(statistics.median(laps))",
             "hint": ("mean of all repeats",)},
            {"why": "no synchronisation: on a GPU the clock would time the queueing",
             "answer": "for _ in range(warmup):\n    fn()\nt0 = time.perf_counter()\nfor _ in range(repeats):\n"
                       "    fn()\nreturn (time.perf_counter() - t0) / repeats",
             "hint": ("speed.synchronize(device)",)},
            {"why": "milliseconds instead of seconds",
             "answer": "for _ in range(warmup):\n    fn()\nspeed.synchronize(device)\nt0 = time.perf_counter()\n"
                       "for _ in range(repeats):\n    fn()\nspeed.synchronize(device)\n"
                       "return 1e3 * (time.perf_counter() - t0) / repeats",
             "hint": ("expected 0.005",)},
        ],
        "right": [
            "for _ in range(warmup):\n    fn()\nlaps = []\nfor _ in range(repeats):\n"
            "    speed.synchronize(device)\n    start = time.perf_counter()\n    fn()\n"
            "    speed.synchronize(device)\n    laps.append(time.perf_counter() - start)\n"
            "return float(sum(laps) / len(laps))",
            "[fn() for _ in range(warmup)]\nspeed.synchronize(device)\nbegin = time.perf_counter()\n"
            "[fn() for _ in range(repeats)]\nspeed.synchronize(device)\nend = time.perf_counter()\n"
            "return float((end - begin) / repeats)",
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "the per-GPU batch taken as the effective batch",
             "answer": "return per_gpu_batch, base_lr * per_gpu_batch / base_batch",
             "hint": ("effective batch", "expected")},
            {"why": "lr multiplied by the number of GPUs, ignoring the batch it was tuned for",
             "answer": "return per_gpu_batch * n_gpus, base_lr * n_gpus",
             "hint": ("lr", "expected")},
            {"why": "the square-root rule where the exercise asks for the linear one",
             "answer": "effective = per_gpu_batch * n_gpus\nreturn effective, base_lr * (effective / base_batch) ** 0.5",
             "hint": ("lr", "expected")},
            {"why": "integer division of the batch ratio",
             "answer": "effective = per_gpu_batch * n_gpus\nreturn effective, base_lr * (effective // base_batch)",
             "hint": ("lr", "expected")},
            {"why": "the two results swapped",
             "answer": "effective = per_gpu_batch * n_gpus\nreturn base_lr * effective / base_batch, effective",
             "hint": ("effective batch",)},
        ],
        "right": [
            "k = n_gpus * per_gpu_batch / base_batch\nreturn n_gpus * per_gpu_batch, k * base_lr",
        ],
    },
}
