"""tools/run_student_budget.py: claims are read from printed output, and the report flags what misses a target.
(The tool itself executes notebooks for an hour; here only its parts are tested, on made-up outputs.)"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_student_budget as rsb  # noqa: E402


def test_claim_reads_every_match_and_checks_range_or_text():
    c = rsb.Claim("07_x", "modes", r"^spectral norm\s+([\d.]+)/8", (8, 8))
    assert c.check("spectral norm    8/8  HQ 20%\n") == (["8"], True)
    assert c.check("spectral norm    8/8\nspectral norm    6/8\n") == (["8", "6"], False)
    assert c.check("nothing printed") == ([], None)
    t = rsb.Claim("09_x", "inside", r"chance 50% is (\w+) the interval", "inside")
    assert t.check("... chance 50% is OUTSIDE the interval")[1] is False


def test_registry_names_real_notebooks_and_valid_patterns():
    stems = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    assert set(rsb.TIME_LIMITS) == stems, "TIME_LIMITS must list every solution notebook"
    for c in rsb.CLAIMS:
        assert c.notebook in stems, c
        assert rsb.re.compile(c.pattern).groups >= 1, f"{c.what}: the pattern needs a group for the value"


def test_cell_text_takes_streams_results_and_errors_not_figures():
    cell = {"outputs": [{"output_type": "stream", "text": ["a\n", "b\n"]},
                        {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure>"}},
                        {"output_type": "execute_result", "data": {"text/plain": "42"}},
                        {"output_type": "error", "ename": "ValueError", "evalue": "bad"}]}
    assert rsb._cell_text(cell) == "a\nb\n42ValueError: bad\n"


def test_report_flags_time_memory_claims_and_failures():
    ok = rsb.Result("00_welcome", seconds=9, peak_bytes=int(0.8e9),
                    claims=[{"what": "w", "expected": "cpu", "printed": ["cpu"], "holds": True}])
    slow = rsb.Result("09_applications_and_responsibility", seconds=3600, peak_bytes=int(2e9),
                      claims=[{"what": "v", "expected": (90, 100), "printed": [], "holds": False}])
    broken = rsb.Result("01_gan_theory", seconds=3, error="cell 4: NameError: x")
    assert ok.ok and not slow.ok and not broken.ok
    text = rsb.report([ok, slow, broken], "header")
    assert text.startswith("header")
    row = next(line for line in text.splitlines() if line.startswith("| 09_"))
    assert row.count("**no**") == 2 and "**0/1**" in row, row  # time, memory; claims
    assert "(not printed)" in text and "**failed**" in text and "NameError" in text


def test_tree_rss_of_this_process_is_positive():
    assert rsb._tree_rss_proc(os.getpid()) > 10e6
    with rsb.PeakMemory(os.getpid(), interval=0.01) as m:
        pass
    assert m.peak > 10e6
