"""CPU threads for torch: as many as the CPUs this process may really use, waiting without spinning.

Why it matters. Torch's CPU kernels run on an OpenMP thread pool with one thread per core it sees, and by default
OpenMP's idle threads *spin* while they wait for the others. That is fine on an idle machine. When another
process is busy (a browser, a second kernel) or the container has a CPU quota smaller than the host (Binder,
Docker and Kubernetes limits are CFS quotas that ``os.cpu_count()`` does not show), the scheduler puts one of the
threads aside and the others spin, waiting for it: a training step can become ten times slower. The course's rule:

1. **Overrides win.** ``COURSE_THREADS`` (a positive integer), then an ``OMP_NUM_THREADS`` that you set.
2. **Otherwise the CPUs the process may use**: the cgroup CPU quota (v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` /
   ``cpu.cfs_period_us``; the smallest along the process's cgroup path), rounded down and at least 1, capped by
   the affinity mask and the number of physical cores, and shared among the processes that ``torchrun`` starts on
   this machine (``LOCAL_WORLD_SIZE``).
3. **Compile workers to match**: ``TORCHINDUCTOR_COMPILE_THREADS`` (``torch.compile``'s parallel compile
   workers) is set to the same count, unless you set it. Its default is one worker process per CPU, each holding
   its own copy of torch; with one thread, compiling runs in the kernel itself (a 2 GB Binder instance has no room
   for the pool).
4. **Waiting that barely spins**: ``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=3000`` (GNU OpenMP, which
   torch's Linux wheels use): an idle thread spins a few microseconds, enough to bridge the gaps between the
   operations of a step, then sleeps, so it never holds a core that a preempted thread needs. Pure passive waiting
   (no spin) was 1.4-2.5x slower than torch's default on an idle 2-CPU machine; the default spin was 7-35x slower
   beside one busy process (``benchmarks/RESULTS-threads.md``). Unless you set ``OMP_WAIT_POLICY`` or
   ``GOMP_SPINCOUNT`` yourself.

``configure()`` applies the rule, and ``import course_lib`` calls it. OpenMP reads its variables once, when torch
loads it, so the rule is written into the environment *before* torch is imported; that is why the notebooks'
first cell imports ``course_lib``. If torch was imported first, the thread count is still set (with
``torch.set_num_threads``), but the wait policy comes too late: ``configure`` says so once, with the fix.

    >>> from course_lib import threads
    >>> print(threads.applied().describe())   # on a 2-core machine with no quota (one line)
    2 threads (from the physical cores; affinity 2 CPUs, 2 physical cores, no cgroup quota),
    OMP_WAIT_POLICY=PASSIVE (course default, with GOMP_SPINCOUNT=3000)
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["ThreadPlan", "ThreadSetupWarning", "cgroup_cpu_limit", "physical_cores", "affinity_cpus", "plan",
           "configure", "applied", "shell_exports"]

# What configure() wrote into the environment, so that a child process (which inherits the environment) can tell
# the course's own values from a user's override and plan again for itself (it may sit in another cgroup).
MARKER = "COURSE_THREADS_APPLIED"
COMPILE_VARIABLE = "TORCHINDUCTOR_COMPILE_THREADS"   # torch.compile's compile workers (read when inductor loads)
SPIN_COUNT = "3000"   # GOMP_SPINCOUNT with the passive policy: spin about this many iterations, then sleep
USER_VARIABLE = "COURSE_THREADS"


class ThreadSetupWarning(RuntimeWarning):
    """Torch was imported before ``course_lib``, so the OpenMP wait policy could not be set."""


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count and wait policy for torch, and where each came from.

    ``threads`` >= 1. ``source``: why that count (an override, the cgroup quota, the affinity mask or the physical
    cores). ``wait_policy``: ``"PASSIVE"``, or the user's ``OMP_WAIT_POLICY``. ``quota``: the cgroup's CPUs
    (fractional; ``None`` for no quota), ``affinity`` and ``cores``: the CPUs in the affinity mask and the physical
    cores, ``processes``: the local torchrun processes sharing them.
    """

    threads: int
    source: str
    wait_policy: str
    wait_source: str
    quota: float | None
    affinity: int
    cores: int
    processes: int = 1

    def short(self, torch_threads: int | None = None) -> str:
        """A few words for a run's first line: ``torch_threads`` (the count torch uses, default the plan's), where
        the count came from, the wait policy."""
        n = self.threads if torch_threads is None else torch_threads
        why = self.source if n == self.threads else f"the rule says {self.threads} from {self.source}"
        return f"{n} CPU thread{'s' if n != 1 else ''} ({why}; OMP_WAIT_POLICY {self.wait_policy})"

    def describe(self) -> str:
        """One line: the count, its source and the limits seen, then the wait policy and its source."""
        quota = "no cgroup quota" if self.quota is None else f"cgroup quota {self.quota:g} CPUs"
        shared = f"; shared by {self.processes} local processes" if self.processes > 1 else ""
        return (f"{self.threads} thread{'s' if self.threads != 1 else ''} (from {self.source}; affinity "
                f"{self.affinity} CPUs, {self.cores} physical cores, {quota}{shared}), "
                f"OMP_WAIT_POLICY={self.wait_policy} ({self.wait_source})")


# ----------------------------------------------------------------------------- reading the machine
def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max``: ``"QUOTA PERIOD"`` in microseconds, ``"max PERIOD"`` for no limit."""
    fields = text.split()
    if not fields or len(fields) > 2:
        raise ValueError(f"malformed cpu.max {text!r}")
    if fields[0] == "max":
        return None
    quota = int(fields[0])
    period = int(fields[1]) if len(fields) == 2 else 100_000
    if quota <= 0 or period <= 0:
        raise ValueError(f"malformed cpu.max {text!r}")
    return quota / period


def _parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` (``-1``: no limit) over ``cpu.cfs_period_us``."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    if quota < 0:
        return None
    if quota == 0 or period <= 0:
        raise ValueError(f"malformed CFS quota {quota_text!r} / period {period_text!r}")
    return quota / period


def _cgroup_dirs(root: Path) -> list[tuple[int, Path, Path]]:
    """(version, the process's own cgroup folder, the hierarchy's mount point) for the cpu controller, from
    ``/proc/self/cgroup`` and ``/proc/self/mountinfo`` (both read under ``root``)."""
    cgroup, mountinfo = _read(root / "proc/self/cgroup"), _read(root / "proc/self/mountinfo")
    if cgroup is None or mountinfo is None:
        return []
    v1_path = v2_path = None
    for line in cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif "cpu" in parts[1].split(","):
            v1_path = parts[2]
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 1:
            continue
        mount_root, mount_point, fstype = fields[3], fields[4], tail[0]
        options = tail[2].split(",") if len(tail) > 2 else []
        if fstype == "cgroup2" and v2_path is not None:
            version, path = 2, v2_path
        elif fstype == "cgroup" and "cpu" in options and v1_path is not None:
            version, path = 1, v1_path
        else:
            continue
        # The process's path is relative to the hierarchy's root; the mount shows the part below mount_root.
        rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else "."
        mount = root / mount_point.lstrip("/")
        own = Path(os.path.normpath(mount / rel)) if not rel.startswith("..") else mount
        out.append((version, own, mount))
    return out


def cgroup_cpu_limit(root: str | Path = "/") -> float | None:
    """The CPUs this process's cgroups allow (a fraction, e.g. 1.5), the smallest quota from its own cgroup up to
    the hierarchy's root, under cgroup v2 or v1; ``None`` when there is no quota or nothing can be read.

    ``root`` prefixes every path read (``/proc/self/...``, the cgroup mounts): tests point it at fake files.
    Unreadable or malformed files count as "no quota" for that level, silently.
    """
    root = Path(root)
    limits = []
    for version, own, mount in _cgroup_dirs(root):
        folder = own
        while True:
            try:
                if version == 2:
                    text = _read(folder / "cpu.max")
                    limit = _parse_cpu_max(text) if text is not None else None
                else:
                    q, p = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                    limit = _parse_cfs(q, p) if q is not None and p is not None else None
            except ValueError:
                limit = None
            if limit is not None:
                limits.append(limit)
            if folder == mount or mount not in folder.parents:
                break
            folder = folder.parent
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """The CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has no mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores(root: str | Path = "/") -> int:
    """Physical cores, from the distinct (physical id, core id) pairs of ``/proc/cpuinfo`` (read under
    ``root``); the logical CPU count where cpuinfo does not say (other systems, some ARM machines)."""
    text = _read(Path(root) / "proc/cpuinfo")
    pairs, physical = set(), "0"
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            pairs.add((physical, value.strip()))
    return len(pairs) if pairs else max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- the rule
def _positive_int(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def _ours(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The variables configure() wrote (recorded in MARKER as ``NAME=VALUE`` words), if still unchanged."""
    written = dict(w.split("=", 1) for w in environ.get(MARKER, "").split() if "=" in w)
    return {k: v for k, v in written.items() if environ.get(k) == v}


def plan(environ: MutableMapping[str, str] | None = None, root: str | Path = "/",
         affinity: int | None = None) -> ThreadPlan:
    """The thread count and wait policy the course's rule gives here (see the module docstring); changes nothing.

    ``environ`` defaults to ``os.environ``; ``root`` and ``affinity`` are for tests (fake files, a fake mask).
    Raises ValueError when ``COURSE_THREADS`` is set but not a positive integer.
    """
    environ = os.environ if environ is None else environ
    ours = _ours(environ)
    quota = cgroup_cpu_limit(root)
    affinity = affinity_cpus() if affinity is None else affinity
    cores = physical_cores(root)
    processes = _positive_int(environ.get("LOCAL_WORLD_SIZE", "1")) or 1

    wanted = environ.get(USER_VARIABLE)
    user_omp = environ.get("OMP_NUM_THREADS") if "OMP_NUM_THREADS" not in ours else None
    user_omp_count = _positive_int(user_omp.split(",")[0]) if user_omp else None
    if wanted is not None and wanted.strip() != "":
        threads = _positive_int(wanted)
        if threads is None:
            raise ValueError(f"{USER_VARIABLE}={wanted!r} is not a positive whole number of CPU threads: set it to "
                             f"1 or more (e.g. {USER_VARIABLE}=2), or unset it to size the threads to this machine")
        source = f"{USER_VARIABLE}={threads}"
    elif user_omp_count is not None:
        threads, source = user_omp_count, f"OMP_NUM_THREADS={user_omp} set by you"
    else:
        limits = {"the physical cores": cores, "the affinity mask": affinity}
        if quota is not None:
            limits["the cgroup CPU quota"] = max(1, math.floor(quota + 1e-9))
        name = min(limits, key=lambda k: limits[k])
        threads, source = max(1, limits[name] // processes), name

    user_wait = environ.get("OMP_WAIT_POLICY") if "OMP_WAIT_POLICY" not in ours else None
    user_spin = environ.get("GOMP_SPINCOUNT") if "GOMP_SPINCOUNT" not in ours else None
    if user_wait or user_spin:
        wait = user_wait or "unset"
        wait_source = "set by you" + (f", GOMP_SPINCOUNT={user_spin}" if user_spin else "")
    else:
        wait, wait_source = "PASSIVE", f"course default, with GOMP_SPINCOUNT={SPIN_COUNT}"
    return ThreadPlan(threads, source, wait, wait_source, quota, affinity, cores, processes)


_APPLIED: ThreadPlan | None = None
_WARNED = False


def configure(environ: MutableMapping[str, str] | None = None, root: str | Path = "/") -> ThreadPlan:
    """Apply the rule (``plan``) and return it; ``import course_lib`` calls this once.

    Before torch is imported: writes ``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` and
    ``TORCHINDUCTOR_COMPILE_THREADS`` into ``environ`` (default
    ``os.environ``), except those the user set, and records what it wrote in ``COURSE_THREADS_APPLIED``. After:
    calls ``torch.set_num_threads`` (unless ``OMP_NUM_THREADS`` is the user's) and, when more than one thread would
    spin-wait, warns once (``ThreadSetupWarning``) how to get the passive policy.
    """
    global _APPLIED, _WARNED
    environ = os.environ if environ is None else environ
    rule = plan(environ, root)
    ours = _ours(environ)
    user_omp = "OMP_NUM_THREADS" in environ and "OMP_NUM_THREADS" not in ours
    torch = sys.modules.get("torch")
    if torch is None:
        written = {}
        if not user_omp or rule.source.startswith(USER_VARIABLE):
            written["OMP_NUM_THREADS"] = str(rule.threads)
        if rule.wait_source.startswith("course default"):
            written["OMP_WAIT_POLICY"] = rule.wait_policy
            written["GOMP_SPINCOUNT"] = SPIN_COUNT
        if COMPILE_VARIABLE not in environ or COMPILE_VARIABLE in ours:
            written[COMPILE_VARIABLE] = str(rule.threads)
        environ.update(written)
        environ[MARKER] = " ".join(f"{k}={v}" for k, v in written.items())
    else:
        if hasattr(torch, "set_num_threads") and (not user_omp or rule.source.startswith(USER_VARIABLE)):
            torch.set_num_threads(rule.threads)
        if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
            rule = replace(rule, wait_policy="unset", wait_source="torch was imported before course_lib")
        if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ and rule.threads > 1 \
                and not _WARNED:
            _WARNED = True
            warnings.warn(
                "torch was imported before course_lib, so its OpenMP threads spin while they wait, and a busy "
                "machine can make training many times slower. Fix: import course_lib before torch (restart the "
                "kernel, run the notebook's first cell first), or start Python with OMP_WAIT_POLICY=PASSIVE set.",
                ThreadSetupWarning, stacklevel=2)
    _APPLIED = rule
    return rule


def applied() -> ThreadPlan:
    """The plan ``configure`` applied in this process (planned now if it has not run)."""
    return _APPLIED if _APPLIED is not None else plan()


def shell_exports(environ: MutableMapping[str, str] | None = None) -> str:
    """``export ...`` lines for a shell that starts Python programs (Binder's ``start`` script): the variables the
    rule would write, marked as the course's own so that ``course_lib`` still plans again in each process.

        python -c "from course_lib import threads; print(threads.shell_exports())"
    """
    environ = dict(os.environ if environ is None else environ)
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", COMPILE_VARIABLE):   # ours, not the user's
        if name in _ours(environ):
            del environ[name]
    environ.pop(MARKER, None)
    probe: dict[str, str] = dict(environ)
    rule = plan(probe)
    written = {}
    if "OMP_NUM_THREADS" not in probe or rule.source.startswith(USER_VARIABLE):
        written["OMP_NUM_THREADS"] = str(rule.threads)
    if rule.wait_source.startswith("course default"):
        written["OMP_WAIT_POLICY"] = rule.wait_policy
        written["GOMP_SPINCOUNT"] = SPIN_COUNT
    if COMPILE_VARIABLE not in probe:
        written[COMPILE_VARIABLE] = str(rule.threads)
    written[MARKER] = " ".join(f"{k}={v}" for k, v in written.items())
    return "\n".join(f"export {k}='{v}'" for k, v in written.items())

