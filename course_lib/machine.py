"""The machine a figure was measured on: the CPU's model name with its family / model numbers (a model name such as
"AMD EPYC" alone does not tell a Zen 3 from a Zen 5, and they compute different floating-point paths), and its
vector / matrix instruction sets. Benchmarks and tools write these beside every figure they record.

    >>> from course_lib import machine
    >>> machine.cpu_model()
    'Intel(R) Xeon(R) Processor (family 6 model 167)'
"""
from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_fields", "cpu_model", "cpu_isa"]


def cpu_fields(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """The first CPU's fields of ``/proc/cpuinfo`` (``model name``, ``cpu family``, ``model``, ``flags``, ...);
    empty where the file cannot be read (other systems)."""
    try:
        text = Path(cpuinfo).read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """``"<model name> (family F model M)"`` from ``cpuinfo``; ``platform.processor()`` (often just the
    architecture) where there is no such file."""
    fields = cpu_fields(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields or "model" in fields:
        name += f" (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"
    return name


def cpu_isa(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The AVX / AMX / FMA instruction-set flags of the CPU, sorted (they decide which floating-point kernels run)."""
    flags = cpu_fields(cpuinfo).get("flags", "").split()
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
