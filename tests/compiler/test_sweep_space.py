"""The design space of `sparsec sweep`: lists, ranges, named axes, constraints, sampling,
configuration keys, sweep files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsec.compiler.sweep.space import (
    Constraint,
    Space,
    SweepError,
    Template,
    load_sweep_file,
    parse_values,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GEMM = EXAMPLES / "gemm.sk"
SMALL = EXAMPLES / "gemm_small.sk"


@pytest.mark.parametrize(("text", "values"), [
    ("[1,2]", [1, 2]),
    ("[os, ws,is]", ["os", "ws", "is"]),
    ("[8:32:8]", [8, 16, 24, 32]),
    ("[8:64:*2]", [8, 16, 32, 64]),
    ("[8:60:*2]", [8, 16, 32]),
    ("[1:3]", [1, 2, 3]),
    ("[0.5:0.9:0.1]", [0.5, 0.6, 0.7, 0.8, 0.9]),
    ("[true,false]", [True, False]),
    ('["a b",c]', ["a b", "c"]),
])
def test_lists_and_ranges(text: str, values: list) -> None:
    assert parse_values(text, "t") == values


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "empty list"),
    ("[8:4]", "ends below its start"),
    ("[1:8:*1]", "never reaches its end"),
    ("[1:8:0]", "never reaches its end"),
    ("[a:b]", "needs numbers"),
    ("[1:2:3:4]", "bad range"),
])
def test_bad_lists_are_named(text: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_values(text, "t")


def test_template_slots_and_fill() -> None:
    template = Template.parse("prune-nm{n=[1,2] m=4},cse", "pipeline")
    assert [(s.pass_name, s.option, s.values) for s in template.slots] == [
        ("prune-nm", "n", (1, 2))]
    assert template.fill([2]) == "prune-nm{n=2 m=4},cse"
    named = Template.parse("systolic{rows=$side cols=$side dataflow=[os,ws]}", "target")
    assert [s.axis for s in named.slots] == ["side", "side", "dataflow"]
    assert named.fill([8, 8, "ws"]) == "systolic{rows=8 cols=8 dataflow=ws}"


def test_list_outside_options_is_refused() -> None:
    with pytest.raises(SweepError, match="inside name"):
        Template.parse("[systolic,sigma]", "target")


def test_issue_grid_has_96_points() -> None:
    space = Space.build([GEMM], ["prune-nm{n=[1,2] m=4}"],
                        ["systolic{rows=[8,16,32,64] cols=[8,16,32,64] dataflow=[os,ws,is]}"])
    points = list(space.grid())
    assert len(points) == space.size() == 96
    assert len({p.key for p in points}) == 96
    assert points[0].pipeline == "prune-nm{n=1 m=4}"
    assert points[0].target == "systolic{rows=8 cols=8 dataflow=os}"
    assert points[-1].params == {"prune_nm_n": 2, "systolic_rows": 64, "systolic_cols": 64,
                                 "systolic_dataflow": "is", "n": 2, "rows": 64, "cols": 64,
                                 "dataflow": "is"}


def test_constraint_on_swept_and_default_options() -> None:
    space = Space.build([GEMM], ["prune-nm{n=[1,2] m=4}"],
                        ["systolic{rows=[8,16,32,64] cols=[8,16,32,64] dataflow=[os,ws,is]}"],
                        constraints=["rows*cols == 1024"])
    points = list(space.grid())
    assert len(points) == 2 * 3 * 3
    assert {(p.params["rows"], p.params["cols"]) for p in points} == {(16, 64), (32, 32), (64, 16)}
    # cols is not swept: its value (the default, 32) still answers the constraint
    only_rows = Space.build([GEMM], [""], ["systolic{rows=[8,16,32]}"],
                            constraints=["rows * cols == 512"])
    assert [p.target for p in only_rows.grid()] == ["systolic{rows=16}"]


def test_constraint_naming_nothing_is_an_error() -> None:
    space = Space.build([GEMM], [""], ["systolic{rows=[8,16]}"], constraints=["rowz > 8"])
    with pytest.raises(SweepError, match="names rowz, which no point defines"):
        list(space.grid())


@pytest.mark.parametrize("text", ["__import__('os')", "rows.bit_length()", "open('x')",
                                  "[x for x in rows]"])
def test_constraints_cannot_run_code(text: str) -> None:
    with pytest.raises(SweepError, match="constraint"):
        Constraint.parse(text)


def test_key_is_the_configuration_not_its_spelling() -> None:
    spelled = Space.build([SMALL], ["prune-nm{n=2  m=4}"], ["systolic{rows=8}"])
    full = Space.build([SMALL], ["prune-nm{m=4 n=2}"], ["systolic{rows=8 cols=32 preset=default}"])
    (a,), (b,) = list(spelled.grid()), list(full.grid())
    assert a.target != b.target and a.key == b.key
    no_exec = Space.build([SMALL], ["prune-nm{n=2 m=4}"], ["systolic{rows=8}"], execute=False)
    assert next(no_exec.grid()).key != a.key
    other = Space.build([SMALL], ["prune-nm{n=2 m=4}"], ["systolic{rows=16}"])
    assert next(other.grid()).key != a.key


def test_key_follows_the_spec_text(tmp_path: Path) -> None:
    spec = tmp_path / "k.sk"
    spec.write_text(SMALL.read_text())
    before = next(Space.build([spec], [""], ["systolic"]).grid()).key
    spec.write_text(SMALL.read_text().replace("seed=2", "seed=3"))
    assert next(Space.build([spec], [""], ["systolic"]).grid()).key != before


def test_random_sampling_is_seeded_distinct_and_constrained() -> None:
    targets = ["systolic{rows=[1:256] cols=[1:256] dataflow=[os,ws,is]}"]
    space = Space.build([SMALL], [""], targets, constraints=["rows >= cols"],
                        strategy="random", samples=40, seed=7)
    first = list(space.random(40, 7))
    assert len(first) == 40 and len({p.key for p in first}) == 40
    assert all(p.params["rows"] >= p.params["cols"] for p in first)
    assert [p.key for p in space.random(40, 7)] == [p.key for p in first]
    assert [p.key for p in space.random(40, 8)] != [p.key for p in first]
    # a grid smaller than the sample gives each of its points once
    small = Space.build([SMALL], [""], ["systolic{rows=[8,16]}"], strategy="random", samples=5)
    assert len(list(small.random(5, 0))) == 2


def test_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "a.sk").write_text(SMALL.read_text())
    study = tmp_path / "study.toml"
    study.write_text(
        'kernels = ["k/a.sk"]\n'
        'pipelines = ["", "prune-nm{n=[1,2] m=4}"]\n'
        'targets = ["systolic{rows=$side cols=$side dataflow=[os,ws]}", "sigma{rows=$side}"]\n'
        'constraints = ["side * side <= 256"]\n'
        'execute = false\n'
        "[axes]\n"
        'side = "[4:64:*2]"\n')
    space = load_sweep_file(study)
    points = list(space.grid())
    # pipelines: 1 + 2; systolic: 3 sides x 2 dataflows; sigma: 3 sides
    assert len(points) == 3 * (3 * 2 + 3)
    assert all(not p.execute for p in points)
    square = [p for p in points if p.target_name == "systolic"]
    assert all(p.params["side"] in (4, 8, 16) for p in square)
    assert "systolic{rows=16 cols=16 dataflow=ws}" in {p.target for p in square}
    assert load_sweep_file(study, {"strategy": "random", "samples": 4}).strategy == "random"


@pytest.mark.parametrize(("body", "message"), [
    ('targets = ["systolic"]\n', "'kernels' is missing"),
    ('kernels = ["a.sk"]\ntargets = ["systolic{rows=$s}"]\n', "names no axis"),
    ('kernels = ["a.sk"]\ntargets = ["systolic"]\nwhat = 1\n', "unknown key"),
    ('kernels = ["a.sk"]\ntargets = ["systolic"]\nstrategy = "random"\n', "needs a number of"),
    ('kernels = ["a.sk"]\ntargets = ["systolic"]\n[axes]\ns = []\n', "axis 's'"),
    ('kernels = ["a.sk"\n', "study.toml"),
])
def test_sweep_file_mistakes(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "a.sk").write_text(SMALL.read_text())
    study = tmp_path / "study.toml"
    study.write_text(body)
    with pytest.raises(SweepError, match=message):
        load_sweep_file(study)
