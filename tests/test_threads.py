"""The CPU-thread rule (course_lib.threads): quotas read from fake cgroup files, overrides, bad input, and the rule
applied before torch starts (in a child process, and inside a real one-CPU cgroup where the machine allows it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest

from course_lib import threads

ROOT = Path(__file__).resolve().parents[1]
CPUINFO_4_CORES_8_THREADS = "".join(
    f"processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {i % 4}\n\n" for i in range(8))


def fake_machine(tmp_path: Path, *, v2: str | None = None, v1: tuple[str, str] | None = None,
                 parent_v1: tuple[str, str] | None = None, cpuinfo: str = CPUINFO_4_CORES_8_THREADS) -> Path:
    """A fake root: /proc/self/{cgroup,mountinfo,cpuinfo} and the cgroup files of a process in group /course."""
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    lines, mounts = [], []
    if v2 is not None:
        group = tmp_path / "sys/fs/cgroup/course"
        group.mkdir(parents=True)
        (group / "cpu.max").write_text(v2)
        lines.append("0::/course")
        mounts.append("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw")
    if v1 is not None:
        group = tmp_path / "sys/fs/cgroup/cpu,cpuacct/course"
        group.mkdir(parents=True)
        (group / "cpu.cfs_quota_us").write_text(v1[0])
        (group / "cpu.cfs_period_us").write_text(v1[1])
        if parent_v1 is not None:
            (group.parent / "cpu.cfs_quota_us").write_text(parent_v1[0])
            (group.parent / "cpu.cfs_period_us").write_text(parent_v1[1])
        lines.append("4:cpu,cpuacct:/course")
        mounts.append("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct")
    (proc / "cgroup").write_text("\n".join(lines) + "\n")
    (proc / "mountinfo").write_text("\n".join(mounts) + "\n")
    return tmp_path


# ----------------------------------------------------------------------------- quotas from cgroup files
@pytest.mark.parametrize("text, cpus", [("200000 100000", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5),
                                        ("max 100000", None)])
def test_cgroup_v2_quota(tmp_path, text, cpus):
    assert threads.cgroup_cpu_limit(fake_machine(tmp_path, v2=text)) == cpus


@pytest.mark.parametrize("quota, period, cpus", [("100000", "100000", 1.0), ("250000", "100000", 2.5),
                                                 ("-1", "100000", None)])
def test_cgroup_v1_quota(tmp_path, quota, period, cpus):
    assert threads.cgroup_cpu_limit(fake_machine(tmp_path, v1=(quota, period))) == cpus


def test_a_parent_groups_smaller_quota_applies(tmp_path):
    root = fake_machine(tmp_path, v1=("-1", "100000"), parent_v1=("100000", "100000"))
    assert threads.cgroup_cpu_limit(root) == 1.0


@pytest.mark.parametrize("text", ["", "lots 100000", "100000 0", "1 2 3", "\x00\x01"])
def test_malformed_cpu_max_counts_as_no_quota_without_warning(tmp_path, text):
    root = fake_machine(tmp_path, v2=text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.cgroup_cpu_limit(root) is None
        assert threads.plan({}, root=root, affinity=8).threads == 4   # the physical cores decide


def test_unreadable_cgroup_files_fall_back_to_cores(tmp_path):
    root = fake_machine(tmp_path, v1=("100000", "100000"))
    (root / "proc/self/mountinfo").unlink()
    assert threads.cgroup_cpu_limit(root) is None
    assert threads.plan({}, root=root, affinity=8).source == "the physical cores"
    assert threads.cgroup_cpu_limit(tmp_path / "no-such-root") is None


def test_physical_cores_count_core_ids_not_hyperthreads(tmp_path):
    assert threads.physical_cores(fake_machine(tmp_path)) == 4


# ----------------------------------------------------------------------------- the rule
def test_fractional_quota_rounds_down(tmp_path):
    rule = threads.plan({}, root=fake_machine(tmp_path, v2="250000 100000"), affinity=8)
    assert (rule.threads, rule.source, rule.quota) == (2, "the cgroup CPU quota", 2.5)


def test_quota_under_one_cpu_gives_one_thread(tmp_path):
    assert threads.plan({}, root=fake_machine(tmp_path, v1=("20000", "100000")), affinity=8).threads == 1


def test_unlimited_quota_uses_the_cores(tmp_path):
    rule = threads.plan({}, root=fake_machine(tmp_path, v2="max 100000"), affinity=8)
    assert (rule.threads, rule.source, rule.quota) == (4, "the physical cores", None)


def test_an_affinity_mask_smaller_than_the_cores_caps_the_threads(tmp_path):
    rule = threads.plan({}, root=fake_machine(tmp_path, v2="max 100000"), affinity=3)
    assert (rule.threads, rule.source) == (3, "the affinity mask")


def test_torchrun_processes_share_the_cpus(tmp_path):
    root = fake_machine(tmp_path, v2="max 100000")
    assert threads.plan({"LOCAL_WORLD_SIZE": "2"}, root=root, affinity=8).threads == 2
    assert threads.plan({"LOCAL_WORLD_SIZE": "8"}, root=root, affinity=8).threads == 1


def test_passive_wait_with_a_short_spin_unless_the_user_set_a_policy(tmp_path):
    root = fake_machine(tmp_path)
    assert threads.plan({}, root=root).wait_policy == "PASSIVE"
    spin = threads.plan({"GOMP_SPINCOUNT": "0"}, root=root)
    assert spin.wait_source == "set by you, GOMP_SPINCOUNT=0"
    mine = threads.plan({"OMP_WAIT_POLICY": "ACTIVE"}, root=root)
    assert (mine.wait_policy, mine.wait_source) == ("ACTIVE", "set by you")


@pytest.mark.parametrize("env, expected", [({"COURSE_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "6"}, 6),
                                           ({"COURSE_THREADS": "5", "OMP_NUM_THREADS": "6"}, 5)])
def test_an_override_wins_over_the_quota(tmp_path, env, expected):
    rule = threads.plan(dict(env), root=fake_machine(tmp_path, v2="100000 100000"), affinity=8)
    assert rule.threads == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_course_threads_is_refused_naming_the_variable(tmp_path, value):
    with pytest.raises(ValueError, match="COURSE_THREADS="):
        threads.plan({"COURSE_THREADS": value}, root=fake_machine(tmp_path))


def test_values_the_rule_wrote_are_planned_again_in_a_child(tmp_path):
    # A child inherits the parent's environment, but it may run in a smaller cgroup: the course's own values
    # (recorded in COURSE_THREADS_APPLIED) are not a user's override.
    env = {"OMP_NUM_THREADS": "4", "OMP_WAIT_POLICY": "PASSIVE",
           threads.MARKER: "OMP_NUM_THREADS=4 OMP_WAIT_POLICY=PASSIVE"}   # as configure() writes them
    child = threads.plan(env, root=fake_machine(tmp_path / "child", v2="100000 100000"), affinity=8)
    assert (child.threads, child.source) == (1, "the cgroup CPU quota")
    assert child.wait_source.startswith("course default")


def test_describe_names_the_source_and_the_limits(tmp_path):
    text = threads.plan({}, root=fake_machine(tmp_path, v2="150000 100000"), affinity=8).describe()
    assert text.startswith("1 thread (from the cgroup CPU quota") and "quota 1.5 CPUs" in text
    assert "OMP_WAIT_POLICY=PASSIVE (course default, with GOMP_SPINCOUNT=3000)" in text


# ----------------------------------------------------------------------------- applied in a real process
PROBE = textwrap.dedent("""
    import json, os, sys, warnings
    warnings.simplefilter("always")
    if sys.argv[1] == "torch-first":
        import torch
    import course_lib, torch
    import torch._inductor.config as inductor_config
    from course_lib import threads
    rule = threads.applied()
    print("RESULT=" + json.dumps(dict(threads=torch.get_num_threads(), planned=rule.threads, source=rule.source,
                                      wait=os.environ.get("OMP_WAIT_POLICY"), reported=rule.wait_policy,
                                      spin=os.environ.get("GOMP_SPINCOUNT"),
                                      compile_workers=inductor_config.compile_threads)))
""")


def run_probe(order: str, cgroup: Path | None = None, **env_changes: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "COURSE_THREADS", threads.MARKER,
                        threads.COMPILE_VARIABLE)}
    env.update(env_changes)
    cmd = [sys.executable, "-c", PROBE, order]
    if cgroup is not None:  # join the group first, then start Python (so torch starts inside the quota)
        cmd = ["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"', "sh", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):]), proc.stderr


def test_importing_course_lib_first_sets_threads_and_passive_wait():
    result, stderr = run_probe("course-first")
    assert result["threads"] == result["planned"] >= 1
    assert result["wait"] == "PASSIVE" and result["spin"] == threads.SPIN_COUNT and "ThreadSetupWarning" not in stderr


def test_torch_compile_gets_as_many_compile_workers_as_threads_unless_the_user_says():
    result, _ = run_probe("course-first", COURSE_THREADS="1")
    assert result["compile_workers"] == 1, "one thread: compiling runs in the process, with no pool of workers"
    result, _ = run_probe("course-first", COURSE_THREADS="2")
    assert result["compile_workers"] == 2
    result, _ = run_probe("course-first", COURSE_THREADS="1", TORCHINDUCTOR_COMPILE_THREADS="3")
    assert result["compile_workers"] == 3


def test_importing_torch_first_sets_threads_and_says_once_how_to_fix_the_wait_policy():
    result, stderr = run_probe("torch-first", COURSE_THREADS="2")
    assert result["threads"] == 2 and result["wait"] is None and result["reported"] == "unset"
    assert stderr.count("ThreadSetupWarning") == 1 and "import course_lib before torch" in stderr


def test_a_users_variables_win_in_a_real_process():
    result, _ = run_probe("course-first", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert (result["threads"], result["wait"]) == (1, "ACTIVE")


def test_bad_course_threads_stops_the_import_with_the_variable_named():
    env = {**os.environ, "COURSE_THREADS": "-1"}
    proc = subprocess.run([sys.executable, "-c", "import course_lib"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "COURSE_THREADS='-1' is not a positive whole number" in proc.stderr


@pytest.fixture
def one_cpu_cgroup():
    """A cgroup v1 child group with a one-CPU quota (quota = period); skipped where it cannot be made."""
    base = Path("/sys/fs/cgroup/cpu")
    if not (base / "cpu.cfs_quota_us").exists() or not os.access(base, os.W_OK):
        pytest.skip("no writable cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu (needs root on a cgroup v1 machine)")
    group = base / f"course-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "cpu.cfs_quota_us").write_text((group / "cpu.cfs_period_us").read_text())
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup with a CPU quota here: {exc}")
    yield group
    for _ in range(50):
        try:
            group.rmdir()
            break
        except OSError:  # the child may still be leaving the group
            import time

            time.sleep(0.1)


def test_inside_a_one_cpu_quota_torch_gets_one_thread(one_cpu_cgroup):
    result, _ = run_probe("course-first", cgroup=one_cpu_cgroup)
    assert (result["threads"], result["source"], result["wait"]) == (1, "the cgroup CPU quota", "PASSIVE")


# ----------------------------------------------------------------------------- Binder's start script, the benchmark
def test_binder_start_script_exports_the_rule_and_keeps_a_users_values():
    start = ROOT / "start"
    assert start.stat().st_mode & 0o111, "start must be executable (chmod +x start)"
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", threads.MARKER)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run([str(start), "env"], capture_output=True, text=True, env=env, timeout=60).stdout
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert got["OMP_WAIT_POLICY"] == "PASSIVE" and int(got["OMP_NUM_THREADS"]) >= 1
    assert got["GOMP_SPINCOUNT"] == threads.SPIN_COUNT
    assert threads.MARKER in got   # marked as the course's, so that course_lib still plans again in each process
    env.update(OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([str(start), "env"], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "OMP_WAIT_POLICY=ACTIVE" in out.splitlines()


def test_the_benchmark_measures_the_rule_in_a_child_process(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/threads.py"), "--recipes", "ring8", "--scenarios",
                           "solo", "--repeats", "1", "--steps", "2", "--settings", "course rule", "1 thread",
                           "--json", str(out), "--page", str(tmp_path / "page.md")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [r["setting"] for r in rows] == ["course rule", "1 thread"]
    assert rows[1]["threads"] == 1 and rows[0]["wait_policy"] == "PASSIVE"
    assert all(r["ms_per_step"] > 0 and r["cpu"] for r in rows)
    assert "## ring8, solo" in (tmp_path / "page.md").read_text()


def test_the_command_lines_run_summary_shows_the_threads_and_their_source(tmp_path):
    env = {**os.environ, "COURSE_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--steps", "1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    first = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("[course_lib]"))
    assert "device cpu, 1 CPU thread (COURSE_THREADS=1; OMP_WAIT_POLICY PASSIVE)" in first
