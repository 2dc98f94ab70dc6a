"""The module map of ``course_lib``: imports go one way (no cycle, nothing low imports something high), the
module table of INSTRUCTORS.md lists exactly the modules there are, and the file a student is sent to read
(``train.py``) opens with the GAN step and stays short."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"

# The layers of the library, lowest first. A module may import modules of its own layer or below, never above
# (INSTRUCTORS.md: checks + utils -> data -> models + losses -> config -> guard + sampling -> train -> metrics / plots /
# widgets, cli on top). A new module needs a row here.
LAYERS = [
    ("checks", "utils", "losses", "recipes", "fid", "colab", "rundir", "run_files",  # standard library, torch only
     "ema", "optim", "stopping", "loop", "threads", "mixture_metrics", "unet", "diffusion", "machine"),
    ("device", "budget", "data", "checkpoint", "article", "detector", "distributed", "streams", "image_metrics",
     "host_syncs", "data_files", "checkpoint_integrity", "families"),
    ("models", "classifier", "metrics", "evaluation", "report"),  # measures samples against data: knows no trainer
    ("config", "theory"),
    # read a config (the messages, the options, what a run is given)
    ("guard", "speed_options", "progress", "sampling", "run_inputs"),
    ("train", "diffusion_train"),
    ("plots", "widgets", "control", "experiments", "equal_time", "speed", "reuse", "timing", "flops", "ladder",
     "memory", "scaling", "generation", "pretrained"),  # pretrained loads either family through generation
    ("env_check", "cli"),
    ("__init__", "__main__"),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _imports(path: Path) -> set[str]:
    """The ``course_lib`` modules that ``path`` imports anywhere (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x / from .x import y
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.level == 0 and node.module and node.module.split(".")[0] == "course_lib":
                parts = node.module.split(".")
                found.update(parts[1:2] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("course_lib."))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module name -> the ``course_lib`` modules it imports (itself left out)."""
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {name: {m for m in _imports(p) if m in modules and m != name} for name, p in modules.items()}


def test_every_module_has_a_layer():
    missing = sorted(set(import_graph()) - set(LAYER))
    assert not missing, f"add {missing} to LAYERS in tests/test_imports.py (and to INSTRUCTORS.md's module table)"
    gone = sorted(set(LAYER) - set(import_graph()))
    assert not gone, f"LAYERS names modules that no longer exist: {gone}"


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} (layer {LAYER[m]}) imports {d} (layer {LAYER[d]})"
              for m, deps in sorted(import_graph().items()) for d in sorted(deps) if LAYER[d] > LAYER[m]]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    graph, state, cycles = import_graph(), {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(" -> ".join(path[path.index(d):] + [m, d]) if d in path else f"{m} -> {d}")
            elif d not in state:
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_the_module_table_of_instructors_md_lists_exactly_the_modules():
    text = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
    section = text.split("## The library: `course_lib`", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            listed.update(re.findall(r"`(\w+)`", row.split("|")[1]))
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert listed == modules, (f"not in INSTRUCTORS.md's module table: {sorted(modules - listed)}; "
                               f"gone: {sorted(listed - modules)}")


# ----------------------------------------------------------------------------- the file a student reads

def test_train_py_is_short_and_opens_with_d_step_and_g_step():
    source = (PACKAGE / "train.py").read_text(encoding="utf-8")
    # <= 440: the step and the loop with every attribute set on a line of its own; the guard, the speed options,
    # the processes, the data order and the EMA live in their own modules
    assert len(source.splitlines()) <= 440, "train.py is the file notebook 03 sends students to: keep it <= 440 lines"
    tree = ast.parse(source)
    public = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name[0] != "_"]
    assert public[:3] == ["d_step", "g_step", "GANTrainer"], public
    # the numbered comments of notebook 03's step: (4) to (9) in d_step, (11) to (14) in g_step
    bodies = {n.name: ast.get_source_segment(source, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name, numbers in (("d_step", range(4, 10)), ("g_step", range(11, 15))):
        for k in numbers:
            assert f"# ({k})" in bodies[name] or f"# ({k})-" in bodies[name], f"{name} lacks the comment ({k})"
    assert not re.search(r"\._[GD]\b", source), "name the wrapped networks G_wrapped / D_wrapped, not _G / _D"
    train_step = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "train_step")
    calls = {c.func.id for c in ast.walk(train_step) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert {"d_step", "g_step"} <= calls, "GANTrainer.train_step composes d_step and g_step"


def test_no_module_is_over_500_lines():
    long = {p.name: n for p in PACKAGE.glob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, f"split these modules by concept (at most 500 lines each): {long}"


def _function(tree: ast.AST, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_steps_run_backward_and_step_themselves_and_the_trainer_shows_the_engineering():
    """The backward pass and the optimiser step that d_step and g_step write are the ones the trainer runs: no
    callback replaces them; the loss scaler, the NaN guard and the EMA are calls the step shows; every attribute of
    the trainer is set by an assignment of its own."""
    source = (PACKAGE / "train.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    for name, opt in (("d_step", "opt_D"), ("g_step", "opt_G")):
        body = ast.get_source_segment(source, _function(tree, name))
        assert ".backward()" in body and f"scaler.step({opt})" in body, name
        assert "guard.check(" in body and "guard.masked(ok, " in body, name
        assert "update" not in [a.arg for a in _function(tree, name).args.kwonlyargs], name
    step = ast.get_source_segment(source, _function(tree, "train_step"))
    for call in ("d_step(", "g_step(", "scaler=self.scaler_D", "scaler=self.scaler_G", "guard=self.guard",
                 "ema_update("):
        assert call in step, call
    assert "functools" not in source and "partial(" not in source, "pass the step's parts, not a callback"
    assert "__dict__" not in source and "setattr(" not in source, "set each attribute by a visible assignment"
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = [t for tgt in node.targets for t in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt])]
            attributes = [t for t in targets if isinstance(t, ast.Attribute)]
            assert len(attributes) <= 1 and (not attributes or len(node.targets) == 1), \
                f"line {node.lineno}: one attribute per assignment"


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_notebook_03_names_d_step_and_g_step_and_checks_against_them(folder):
    nb = json.loads((ROOT / folder / "03_first_gan_2d.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"]]
    text = "\n".join(cells)
    assert "course_lib.train.d_step" in text and "course_lib.train.g_step" in text
    check = next(c for c in cells if "def _library_d_step" in c)  # Exercise 1's check
    assert "train.d_step(" in check and "d_step(_g1" in check, "the exercise is checked against train.d_step"
    assert any("train.g_step(" in c and "assert" in c for c in cells), "a cell checks the step against g_step"
