"""One home per idiom: the code that ``course_lib.utils`` (and ``checks``, ``cli``, ``data``, ``streams``) provides
once is not written again in ``course_lib``, ``tools`` or ``benchmarks``. Each row is a pattern that only its home
may contain; a hit elsewhere names the file, the line and the helper to call instead."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("course_lib", "tools", "benchmarks")

# idiom: (pattern, the files allowed to contain it, the helper to use instead, a leftover the pattern must catch)
IDIOMS = {
    "positive-integer check": (
        r"isinstance\((\w+), bool\) or not isinstance\(\1, int\)", {"course_lib/checks.py"},
        "checks.check_int / checks.is_int / checks.check_seed",
        'if isinstance(n, bool) or not isinstance(n, int) or n <= 0:'),
    "argparse type that checks a value": (
        # the library's checks, wrapped once for the command line: the flags refuse what the library refuses
        r"ArgumentTypeError\(", {"course_lib/cli.py"}, "cli.argtype(name, check, convert)",
        'raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")'),
    "true/false environment variable": (
        r"environ[^\n]*\b(?:in|==) \(?[\"'](?:1|true|yes|on)[\"']", {"course_lib/utils.py"}, "utils.env_flag",
        'quick = os.environ.get("COURSE_QUICK", "").lower() in ("1", "true")'),
    "eval mode, then restore": (
        r"=\s*[\w.]+\.training\b",
        # the plain DCGAN of pytorch/examples samples in *train* mode (its batch statistics), not in eval mode
        {"course_lib/utils.py", "benchmarks/plain_dcgan.py"}, "utils.eval_mode", "was = self.training"),
    "atomic file write": (
        r"os\.replace\(|tempfile\.mkstemp\(", {"course_lib/utils.py"}, "utils.atomic_write",
        "os.replace(tmp, path)"),
    "one-thread block": (
        r"get_num_threads\(\)\s*\n[^\n]*set_num_threads\(1\)", {"course_lib/utils.py"}, "utils.one_thread",
        "before = torch.get_num_threads()\n    torch.set_num_threads(1)"),
    "save and restore of torch's random state": (
        # streams.restore_rng puts a checkpoint's state back (a resume), which is no block
        r"torch\.set_rng_state\(", {"course_lib/utils.py", "course_lib/streams.py"}, "utils.preserved_torch_rng",
        "torch.set_rng_state(state)"),
    "MNIST class map": (
        r"datasets\.(?:Fashion)?MNIST\b", {"course_lib/data_files.py"}, "data.idx_files / data.load",
        'cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]'),
    "Gaussian density": (
        r"sqrt\(2 \* (?:math|np|torch)\.pi\)|exp\(-0?\.5 \* \(\(", {"course_lib/data.py"}, "data.gaussian_pdf",
        "torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))"),
    "seed formula of a random stream": (
        r"seed \* (?:1000|100_003|7919)\b|seed \+ 12345\b", {"course_lib/streams.py"}, "streams.stream_seed",
        "torch.Generator().manual_seed(cfg.seed + 12345)"),
}

def _sources() -> dict[str, str]:
    files = sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in files}


@pytest.mark.parametrize("idiom", list(IDIOMS))
def test_each_idiom_is_written_only_in_its_home(idiom):
    pattern, homes, helper, example = IDIOMS[idiom]
    assert re.search(pattern, example), f"the pattern of {idiom!r} misses its own example: fix IDIOMS"
    hits = []
    for rel, text in _sources().items():
        if rel in homes:
            continue
        for m in re.finditer(pattern, text):
            hits.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}")
    assert not hits, f"{idiom} written again (use {helper}):\n" + "\n".join(hits)
