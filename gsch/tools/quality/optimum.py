"""Exact optima of an instance, for the whole instance at once, from HiGHS (the optional
`highspy`, `pip install 'gsch[quality]'`): the fewest nodes that hold every request, the most
requests the fleet can hold, and the least total round trip from the requests' sources.

Each is a 0/1 program over "request i on node j" (pairs where the request alone cannot fit
are left out). When the solver stops at its time limit without a proof, the answer carries
its bound on the optimum instead: ratios computed against it are never better than the truth.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gsch.model.resources import Resources
from gsch.tools.quality.instances import Instance

MIB = 2**20


class SolverMissing(RuntimeError):
    """highspy is not installed."""


def solver_module() -> Any:
    try:
        import highspy
    except ImportError as exc:
        raise SolverMissing(
            "the exact optimum needs HiGHS: pip install 'gsch[quality]' (the highspy wheel)"
        ) from exc
    return highspy


@dataclass(frozen=True)
class Optimum:
    value: float  # the best solution found (the optimum when proven)
    bound: float  # the solver's bound on the optimum (equal to value when proven)
    proven: bool
    where: tuple[int | None, ...]  # node index per request (None: not placed)

    @property
    def conservative(self) -> float:
        """The optimum if proven, else the solver's bound on it (a ratio against it is never
        better than the true one)."""
        return self.value if self.proven else self.bound


def _amounts(amount: Resources) -> tuple[float, float, float, float]:
    return amount.cpu_m, amount.memory / MIB, amount.gpu, amount.pods


class _Program:
    """A 0/1 program on HiGHS: columns with costs, rows of sparse terms."""

    def __init__(self, time_limit: float) -> None:
        highspy = solver_module()
        self._highspy = highspy
        # HiGHS prints its licence banner from C++ at the first construction in a process,
        # whatever the options: hidden, so `gsch bench --quality -o json` stays parseable.
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                self.h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("time_limit", float(time_limit))
        self.h.setOptionValue("mip_rel_gap", 0.0)
        self.h.setOptionValue("threads", 1)
        self.columns = 0

    def binary(self, cost: float) -> int:
        self.h.addVar(0.0, 1.0)
        column = self.columns
        self.h.changeColCost(column, cost)
        self.h.changeColIntegrality(column, self._highspy.HighsVarType.kInteger)
        self.columns += 1
        return column

    def row(self, lower: float, upper: float, terms: Sequence[tuple[int, float]]) -> None:
        if not terms:
            return
        indices = [column for column, _ in terms]
        values = [value for _, value in terms]
        self.h.addRow(lower, upper, len(terms), indices, values)

    def solve(self, maximise: bool) -> tuple[float, float, bool, list[float]]:
        highspy = self._highspy
        if maximise:
            self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.h.run()
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        if status == highspy.HighsModelStatus.kInfeasible:
            raise ValueError("infeasible")
        values = list(self.h.getSolution().col_value)
        proven = status == highspy.HighsModelStatus.kOptimal
        value = info.objective_function_value
        return value, (value if proven else info.mip_dual_bound), proven, values


Pairs = dict[tuple[int, int], int]  # (request, node) -> column


def _assign(
    program: _Program, instance: Instance, cost: Callable[[int, int], float], exactly_once: bool
) -> Pairs:
    """Columns for every (request, node) pair where the request fits alone, each request on
    at most (or exactly) one node, and every node's capacity per resource."""
    inf = math.inf
    nodes = instance.nodes
    pairs: Pairs = {}
    for i, demand in enumerate(instance.demands):
        for j, (_, node) in enumerate(nodes):
            if demand.amount.fits_in(node.allocatable):
                pairs[(i, j)] = program.binary(cost(i, j))
    for i in range(len(instance.demands)):
        terms = [(column, 1.0) for (r, _), column in pairs.items() if r == i]
        if not terms and exactly_once:
            raise ValueError(f"request {i} fits on no node: the instance cannot be placed whole")
        program.row(1.0 if exactly_once else -inf, 1.0, terms)
    for j, (_, node) in enumerate(nodes):
        on_node = [(i, column) for (i, n), column in pairs.items() if n == j]
        capacity = _amounts(node.allocatable)
        for k, limit in enumerate(capacity):
            terms = [(column, _amounts(instance.demands[i].amount)[k]) for i, column in on_node]
            if sum(value for _, value in terms) > limit:
                program.row(-inf, limit, terms)
    return pairs


def _where(instance: Instance, pairs: Pairs, values: list[float]) -> tuple[int | None, ...]:
    where: list[int | None] = [None] * len(instance.demands)
    for (i, j), column in pairs.items():
        if values[column] > 0.5:
            where[i] = j
    return tuple(where)


def fewest_nodes(instance: Instance, time_limit: float = 10.0) -> Optimum:
    """The fewest nodes holding every request (ValueError when they cannot all fit)."""
    program = _Program(time_limit)
    pairs = _assign(program, instance, lambda i, j: 0.0, exactly_once=True)
    nodes = instance.nodes
    used = [program.binary(1.0) for _ in nodes]
    for (_, j), column in pairs.items():
        program.row(-math.inf, 0.0, [(column, 1.0), (used[j], -1.0)])  # on j only if j is used
    for j in range(len(nodes)):
        # A used node holds at most its capacity (with the pairs' rows: the LP is tighter).
        on_node = [(i, column) for (i, n), column in pairs.items() if n == j]
        for k, limit in enumerate(_amounts(nodes[j][1].allocatable)):
            terms = [(c, _amounts(instance.demands[i].amount)[k]) for i, c in on_node]
            program.row(-math.inf, 0.0, [*terms, (used[j], -limit)])
    # Nodes of one shape are interchangeable: use them in order (fewer equivalent solutions).
    for j in range(1, len(nodes)):
        same = [k for k in range(j) if nodes[k][1].allocatable == nodes[j][1].allocatable]
        if same:
            program.row(0.0, math.inf, [(used[same[-1]], 1.0), (used[j], -1.0)])
    value, bound, proven, values = program.solve(maximise=False)
    return Optimum(round(value), math.ceil(bound - 1e-6), proven, _where(instance, pairs, values))


def most_placed(instance: Instance, time_limit: float = 10.0) -> Optimum:
    """The most requests the fleet can hold at once."""
    program = _Program(time_limit)
    pairs = _assign(program, instance, lambda i, j: 1.0, exactly_once=False)
    value, bound, proven, values = program.solve(maximise=True)
    return Optimum(round(value), math.floor(bound + 1e-6), proven, _where(instance, pairs, values))


def least_rtt(instance: Instance, time_limit: float = 10.0) -> Optimum:
    """The least total round trip (ms) from each request's source to its node, every request
    placed (ValueError when they cannot all fit)."""
    topology = instance.topology
    nodes = instance.nodes

    def rtt(i: int, j: int) -> float:
        source = instance.demands[i].source
        found = topology.rtt(source, nodes[j][0], nodes[j][1].name) if source else None
        if found is None:
            raise ValueError(f"no round trip known for request {i} to node {j}")
        return found

    program = _Program(time_limit)
    pairs = _assign(program, instance, rtt, exactly_once=True)
    value, bound, proven, values = program.solve(maximise=False)
    return Optimum(value, bound, proven, _where(instance, pairs, values))
