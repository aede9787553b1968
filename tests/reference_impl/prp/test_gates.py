"""The gate DAG: deterministic commit order, planned batches, one clear error per bad graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_impl.errors import ConfigError
from reference_impl.prp import GateGraphError, GateKind, GateSpec, load_gates, plan_gates
from reference_impl.prp.demo import EXAMPLE_GATES

H = GateKind.HUMAN


def test_commit_order_is_kahn_with_declaration_order_ties() -> None:
    gates = [
        GateSpec("z", deps=("b",)),
        GateSpec("b"),
        GateSpec("a"),
        GateSpec("y", deps=("a", "b")),
        GateSpec("c", deps=("z",)),
    ]
    plan = plan_gates(gates)
    # Ready at first: b and a (b declared first). After b: z, declared first of all.
    assert plan.order == ("b", "z", "a", "y", "c")
    assert plan.deps == ((), (0,), (), (0, 2), (1,))
    assert plan.dependents == ((1, 3), (4,), (3,), (), ())
    assert plan_gates(list(reversed(gates))).order == ("a", "b", "y", "z", "c")


def test_human_gates_get_planned_batches_in_commit_order() -> None:
    gates = [
        GateSpec("h1", H, deps=("a",)),
        GateSpec("a"),
        GateSpec("h2", H),
        GateSpec("h3", H, deps=("h1",)),
    ]
    plan = plan_gates(gates, approval_batch_size=2)
    assert plan.order == ("a", "h1", "h2", "h3")
    assert plan.batch == (None, 0, 0, 1)
    assert plan.batch_members == ((1, 2), (3,))
    assert plan_gates(gates, approval_batch_size=1).batch == (None, 0, 1, 2)


def test_a_cycle_names_its_gates_in_order() -> None:
    gates = [
        GateSpec("ok"),
        GateSpec("a", deps=("c", "ok")),
        GateSpec("b", deps=("a",)),
        GateSpec("c", deps=("b",)),
        GateSpec("after", deps=("c",)),
    ]
    with pytest.raises(GateGraphError) as caught:
        plan_gates(gates)
    assert set(caught.value.gates) == {"a", "b", "c"}
    assert str(caught.value) == "gates: dependency cycle: 'a' -> 'c' -> 'b' -> 'a'"


def test_a_gate_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(GateGraphError, match="dependency cycle: 'x' -> 'x'"):
        plan_gates([GateSpec("x", deps=("x",))])


def test_an_unknown_dependency_names_both_gates() -> None:
    with pytest.raises(GateGraphError) as caught:
        plan_gates([GateSpec("lint", deps=("checkout",))])
    assert caught.value.gates == ("lint", "checkout")
    assert str(caught.value) == "gates: gate 'lint' depends on unknown gate(s) 'checkout'"


def test_a_duplicate_id_is_named() -> None:
    with pytest.raises(GateGraphError, match="gate 'a' is declared twice"):
        plan_gates([GateSpec("a"), GateSpec("a")])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration_s": -1.0}, "duration_s must be a finite number >= 0"),
        ({"duration_s": float("nan")}, "duration_s must be a finite number >= 0"),
        ({"timeout_s": 0.0}, "timeout_s must be a positive number"),
        ({"wait_s": 5.0}, "wait_s and approved apply to human gates only"),
    ],
)
def test_bad_gate_numbers_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^gate 'g': {message}"):
        GateSpec("g", **kwargs)  # type: ignore[arg-type]  # parametrised keywords


def test_the_bundled_example_loads_and_plans() -> None:
    gates = load_gates(EXAMPLE_GATES)
    assert len(gates) == 12
    assert sum(g.kind is H for g in gates) == 3
    assert len(plan_gates(gates)) == 12


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"schema": 2, "gates": []}', "schema 2 is not supported"),
        (
            '{"schema": 1, "gates": [{"id": "a", "duration_s": "long"}]}',
            r"\$\.gates\[0\]\.duration_s",
        ),
        ('{"schema": 1, "gates": [{"id": "a", "colour": "red"}]}', "colour"),
        ('{"schema": 1, "gates": [{"id": "a", "kind": "robot"}]}', r"\$\.gates\[0\]\.kind"),
        ('{"schema": 1, "gates": [{"id": "a"}, {"id": "b", "duration_s": -2}]}', r"\$\.gates\[1\]"),
    ],
)
def test_a_bad_gates_file_names_the_file_and_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "gates.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_gates(path)
    assert str(path) in str(caught.value)


def test_a_missing_gates_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the gates file") as caught:
        load_gates(tmp_path / "absent.json")
    assert caught.value.source == str(tmp_path / "absent.json")


def test_a_gates_file_round_trips_every_field(tmp_path: Path) -> None:
    record = {
        "id": "review",
        "kind": "human",
        "deps": ["a"],
        "duration_s": 3.5,
        "fails": False,
        "wait_s": 20,
        "approved": False,
        "timeout_s": 60,
    }
    path = tmp_path / "gates.json"
    path.write_text(json.dumps({"schema": 1, "gates": [{"id": "a"}, record]}), encoding="utf-8")
    assert load_gates(path)[1] == GateSpec("review", H, ("a",), 3.5, False, 20.0, False, 60.0)
