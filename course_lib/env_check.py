"""The welcome notebook's environment report: versions, device, budget mode and which datasets can be used.

    >>> from course_lib import env_check
    >>> env_check.report()          # prints the report; returns it as a dict
"""
from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

from . import budget, data, threads
from .device import describe_device, get_device

__all__ = ["PACKAGES", "package_versions", "dataset_status", "environment", "format_report", "report"]

# import name -> the name pip knows it by
PACKAGES = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "matplotlib": "matplotlib",
            "ipywidgets": "ipywidgets", "tqdm": "tqdm", "sklearn": "scikit-learn", "scipy": "scipy"}
REQUIRED = ("torch", "numpy", "matplotlib")


def package_versions(packages: dict[str, str] | None = None) -> dict[str, str | None]:
    """pip name -> installed version (``None`` when the package cannot be imported)."""
    out: dict[str, str | None] = {}
    for module, pip_name in (packages or PACKAGES).items():
        try:
            mod = importlib.import_module(module)
        except Exception:  # ImportError, or a broken install that fails while importing
            out[pip_name] = None
            continue
        out[pip_name] = str(getattr(mod, "__version__", "unknown"))
    return out


def dataset_status(root: str | Path | None = None) -> dict[str, str]:
    """Dataset name -> ``"available"``, ``"downloadable"`` or ``"unavailable (why)"``, without any download.

    The generated mixtures are always available; ``digits`` needs scikit-learn; MNIST and Fashion-MNIST are
    available when their files are already in ``course_lib.data.data_dir(root)``, downloadable on first use when
    ``COURSE_OFFLINE`` is not set, unavailable otherwise (then the notebooks fall back to ``digits``).
    """
    status: dict[str, str] = {}
    for name in data.POINT_DATASETS:
        status[name] = "available"
    try:
        import sklearn.datasets  # noqa: F401
        status["digits"] = "available"
    except ImportError:
        status["digits"] = "unavailable (install scikit-learn)"
    folder = data.data_dir(root)
    for name in ("mnist", "fashion-mnist"):
        if data.idx_files(name, "train", root) is not None:  # where data.load looks: the Debian package too
            status[name] = "available"
        elif data.offline():
            package = f"install {data.FASHION_APT_PACKAGE} (apt) or " if name == "fashion-mnist" else ""
            status[name] = (f"unavailable (not in {folder}, and COURSE_OFFLINE=1 forbids downloads: {package}go "
                            f"online once; data.load(..., fallback=True) uses 'digits' instead)")
        else:
            status[name] = f"downloadable (into {folder} on first use, if this machine is online)"
    return status


def environment(root: str | Path | None = None) -> dict:
    """Everything the report shows, as a dict: python, platform, packages, device, CPU threads (torch's count and
    the course rule's reason, ``course_lib.threads``), budget, offline, datasets."""
    import torch

    device = get_device()
    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "packages": package_versions(), "device": str(device), "device_info": describe_device(device),
            "threads": torch.get_num_threads(), "threads_info": threads.applied().describe(),
            "budget": budget.mode(), "offline": data.offline(), "data_dir": str(data.data_dir(root)),
            "datasets": dataset_status(root)}


def format_report(env: dict) -> str:
    """The report of ``environment()`` as aligned text lines, with a verdict at the end."""
    lines = [f"Python        {env['python']} on {env['platform']}"]
    missing = []
    for name, version in env["packages"].items():
        lines.append(f"{name:<13} {version if version else 'NOT INSTALLED'}")
        if version is None:
            missing.append(name)
    lines += [f"{'device':<13} {env['device_info']}",
              f"{'CPU threads':<13} torch uses {env['threads']}; course rule: {env['threads_info']}",
              f"{'budget mode':<13} {env['budget']}  (quick: seconds per cell, cpu: minutes, gpu: larger runs)",
              f"{'downloads':<13} {'disabled (COURSE_OFFLINE=1)' if env['offline'] else 'allowed'}; "
              f"data folder {env['data_dir']}",
              "datasets:"]
    lines += [f"  {name:<14} {state}" for name, state in env["datasets"].items()]
    needed = [m for m in missing if m in {PACKAGES[r] for r in REQUIRED}]
    if needed:
        lines.append(f"PROBLEM: required package(s) {', '.join(needed)} missing: run  python -m pip install -e .")
    elif missing:
        lines.append(f"Ready, but {', '.join(missing)} missing (some notebooks need it): python -m pip install -e .")
    else:
        lines.append("Ready: everything the course needs is installed.")
    return "\n".join(lines)


def report(root: str | Path | None = None, file=None) -> dict:
    """Print the environment report (to ``file``, default stdout) and return it as a dict (see ``environment``)."""
    env = environment(root)
    print(format_report(env), file=file or sys.stdout)
    return env
