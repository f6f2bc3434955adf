"""Solve hooks: record every solve, with its termination and objective, inside the job.

Installed once in the zygote (so forked jobs inherit them for free) or, for modules a job
imports that its zygote did not, right after that import. The record is the primary source
of the objective: it reads the value from the solver/model, not from what the program prints.

Nesting: Pyomo's and PuLP's HiGHS interfaces call ``highspy.Highs.run`` underneath; only the
outermost hooked call records, and the inner highspy call lends it HiGHS' own status (which
is how an infeasible Pyomo solve that *raises* still gets recorded as infeasible).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from .result import SolverStatus as S

# Names a model might reach for that are not in the sandbox; one clear message for all.
UNAVAILABLE_MODULES = (
    "gurobipy",
    "cplex",
    "docplex",
    "mosek",
    "xpress",
    "pyscipopt",
    "coptpy",
    "ortools",
    "cylp",
    "mip",
    "cvxpy",
    "gamspy",
    "swiglpk",
    "glpk",
)
HIGHS_SOLVERS = ("highs", "appsi_highs")
ADVICE = "Use Pyomo with HiGHS instead: pyo.SolverFactory('highs').solve(model)."


class SolverUnavailableError(RuntimeError):
    """Raised when job code asks for a solver this sandbox does not have."""


class _State:
    def __init__(self) -> None:
        self.solves: list[dict[str, Any]] = []
        self.count = 0
        self.cell: int = 0
        self.deadline: float | None = None  # time.monotonic() at which the job is killed
        self.emit: Callable[[dict[str, Any]], None] | None = None
        self.depth = 0  # >0 while inside an outer hooked solve
        self.inner: dict[str, Any] | None = None  # HiGHS' own view of the current solve


STATE = _State()
MAX_KEPT = 1000  # a job that solves in a loop keeps its first records; the count stays exact


def begin_job(*, deadline: float | None, emit: Callable[[dict[str, Any]], None] | None) -> None:
    STATE.solves = []
    STATE.count = 0
    STATE.cell = 0
    STATE.deadline = deadline
    STATE.emit = emit
    STATE.depth = 0
    STATE.inner = None


def remaining_time() -> float | None:
    """Seconds the solver may use, leaving a margin so it stops before the hard kill."""
    if STATE.deadline is None:
        return None
    left = STATE.deadline - time.monotonic()
    return max(0.05, left * 0.9 - 0.1)


def _record(rec: dict[str, Any]) -> None:
    rec["cell"] = STATE.cell
    obj = rec.get("objective")
    if obj is not None:
        try:
            obj = float(obj)
        except (TypeError, ValueError):
            obj = None
        rec["objective"] = obj if obj is None or math.isfinite(obj) else None
    STATE.count += 1
    if len(STATE.solves) < MAX_KEPT:
        STATE.solves.append(rec)
    if STATE.emit is not None:
        STATE.emit(rec)


# ---------------------------------------------------------------- status normalization

_HIGHS_STATUS = {
    "kOptimal": S.OPTIMAL,
    "kModelEmpty": S.OPTIMAL,
    "kInfeasible": S.INFEASIBLE,
    "kUnbounded": S.UNBOUNDED,
    "kUnboundedOrInfeasible": S.INFEASIBLE_OR_UNBOUNDED,
    "kTimeLimit": S.TIME_LIMIT,
    "kIterationLimit": S.ITERATION_LIMIT,
    "kSolutionLimit": S.SOLUTION_LIMIT,
    "kObjectiveBound": S.SOLUTION_LIMIT,
    "kObjectiveTarget": S.SOLUTION_LIMIT,
    "kInterrupt": S.INTERRUPTED,
    "kMemoryLimit": S.ERROR,
}
_PYOMO_STATUS = {
    # pyomo.opt.TerminationCondition (legacy results)
    "optimal": S.OPTIMAL,
    "globallyOptimal": S.OPTIMAL,
    "locallyOptimal": S.OPTIMAL,
    "infeasible": S.INFEASIBLE,
    "invalidProblem": S.ERROR,
    "unbounded": S.UNBOUNDED,
    "infeasibleOrUnbounded": S.INFEASIBLE_OR_UNBOUNDED,
    "maxTimeLimit": S.TIME_LIMIT,
    "maxIterations": S.ITERATION_LIMIT,
    "maxEvaluations": S.ITERATION_LIMIT,
    "maxSolutions": S.SOLUTION_LIMIT,
    "userInterrupt": S.INTERRUPTED,
    "solverFailure": S.ERROR,
    "error": S.ERROR,
    "internalSolverError": S.ERROR,
    # pyomo.contrib.solver / appsi TerminationCondition names
    "convergenceCriteriaSatisfied": S.OPTIMAL,
    "provenInfeasible": S.INFEASIBLE,
    "locallyInfeasible": S.INFEASIBLE,
    "infeasibleOrUnbounded_": S.INFEASIBLE_OR_UNBOUNDED,
    "iterationLimit": S.ITERATION_LIMIT,
    "objectiveLimit": S.SOLUTION_LIMIT,
    "interrupted": S.INTERRUPTED,
    "minStepLength": S.NUMERICAL_ERROR,
}


def normalize_highs(model_status: Any) -> S:
    name = getattr(model_status, "name", str(model_status)).split(".")[-1]
    return _HIGHS_STATUS.get(name, S.ERROR if "Error" in name else S.UNKNOWN)


def normalize_pyomo(condition: Any) -> S:
    name = getattr(condition, "name", None) or str(condition)
    return _PYOMO_STATUS.get(name.split(".")[-1], S.UNKNOWN)


# ---------------------------------------------------------------- highspy


def _highs_view(h: Any) -> dict[str, Any]:
    status = normalize_highs(h.getModelStatus())
    objective = None
    try:
        info = h.getInfo()
        if info.primal_solution_status == 2:  # kSolutionStatusFeasible
            objective = info.objective_function_value
    except Exception:  # noqa: S110 - a broken Highs object just yields no objective
        pass
    return {"termination": status.value, "objective": objective}


def _wrap_highs_run(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if STATE.depth:  # called by Pyomo/PuLP: lend HiGHS' view to the outer record
            out = orig(self, *args, **kwargs)
            STATE.inner = _highs_view(self)
            return out
        limit = remaining_time()
        if limit is not None:
            try:
                current = self.getOptionValue("time_limit")
                if not isinstance(current, int | float) or current > limit:
                    self.setOptionValue("time_limit", float(limit))
            except Exception:  # noqa: S110 - best effort; the hard deadline still holds
                pass
        STATE.depth += 1
        t0 = time.perf_counter()
        try:
            out = orig(self, *args, **kwargs)
        finally:
            STATE.depth -= 1
        rec = {"solver": "highs", "interface": "highspy", **_highs_view(self)}
        rec["wall_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        _record(rec)
        return out

    return run


def install_highspy(highspy: Any) -> None:
    cls = highspy.Highs
    if getattr(cls, "_calm_hooked", False):
        return
    cls.run = _wrap_highs_run(cls.run)
    cls.solve = _wrap_highs_run(cls.solve)
    orig_init = cls.__init__

    @functools.wraps(orig_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        # One thread per job: the pool's parallelism is across jobs, and HiGHS' worker threads
        # count against the slot's process limit.
        with contextlib.suppress(Exception):
            self.setOptionValue("threads", 1)

    cls.__init__ = __init__
    cls._calm_hooked = True


# ---------------------------------------------------------------- Pyomo


def _model_objective(model: Any) -> float | None:
    """The model's single active objective, evaluated from the loaded variable values."""
    try:
        from pyomo.environ import Objective, value

        objs = list(model.component_data_objects(Objective, active=True, descend_into=True))
        if len(objs) != 1:
            return None
        return float(value(objs[0], exception=False))
    except Exception:
        return None


def _solver_name(solver: Any, default: str) -> str:
    for attr in ("name", "_solver_name"):
        name = getattr(solver, attr, None)
        if isinstance(name, str) and name:
            return name
    return default


def _results_termination(results: Any) -> S | None:
    for path in (("solver", "termination_condition"), ("termination_condition",)):
        obj = results
        try:
            for part in path:
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if obj is not None:
            return normalize_pyomo(obj)
    return None


def _wrap_pyomo_solve(orig: Callable[..., Any], interface: str, legacy: bool) -> Callable[..., Any]:
    @functools.wraps(orig)
    def solve(self: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        if STATE.depth:
            return orig(self, model, *args, **kwargs)
        limit = remaining_time()
        if legacy and limit is not None:
            user = kwargs.get("timelimit")
            kwargs["timelimit"] = limit if user is None else min(float(user), limit)
        STATE.depth += 1
        STATE.inner = None
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"solver": _solver_name(self, "highs"), "interface": interface}
        try:
            results = orig(self, model, *args, **kwargs)
        except BaseException as exc:
            inner = STATE.inner or {}
            rec["termination"] = inner.get("termination", S.ERROR.value)
            rec["objective"] = None
            rec["error"] = type(exc).__name__
            rec["wall_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            STATE.depth -= 1
            _record(rec)
            raise
        STATE.depth -= 1
        inner = STATE.inner or {}
        term = _results_termination(results) or S(inner.get("termination", "unknown"))
        rec["termination"] = term.value
        objective = None
        if term in (S.OPTIMAL, S.TIME_LIMIT, S.ITERATION_LIMIT, S.SOLUTION_LIMIT):
            objective = _model_objective(model)
            if objective is None:
                objective = inner.get("objective")
        rec["objective"] = objective
        rec["wall_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        _record(rec)
        return results

    solve._calm_hooked = True  # type: ignore[attr-defined]
    return solve


class UnavailableSolver:
    """What ``SolverFactory('gurobi')`` and friends return here: unavailable, and says why."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _message(self) -> str:
        return f"Solver {self.name!r} is not available in this sandbox. {ADVICE}"

    def available(self, exception_flag: bool = False) -> bool:
        if exception_flag:
            raise SolverUnavailableError(self._message())
        return False

    def license_is_valid(self) -> bool:
        return False

    def solve(self, *args: Any, **kwargs: Any) -> Any:
        raise SolverUnavailableError(self._message())

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise SolverUnavailableError(self._message())


def _is_available(opt: Any) -> bool:
    try:
        try:
            avail = opt.available(exception_flag=False)
        except TypeError:
            avail = opt.available()
    except Exception:
        return False
    try:
        return bool(avail) and int(avail) > 0
    except (TypeError, ValueError):
        return bool(avail)


def _wrap_factory_call(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def __call__(self: Any, _name: Any = None, **kwds: Any) -> Any:
        opt = orig(self, _name, **kwds)
        if _name is None or str(_name).lower() in HIGHS_SOLVERS:
            return opt
        if not _is_available(opt):
            return UnavailableSolver(str(_name))
        return opt

    return __call__


def install_pyomo() -> None:
    """Hook the legacy and new Pyomo solver interfaces and the SolverFactory."""
    from pyomo.contrib.appsi.base import LegacySolverInterface
    from pyomo.contrib.appsi.solvers.highs import Highs as AppsiHighs
    from pyomo.contrib.solver.common.base import LegacySolverWrapper
    from pyomo.contrib.solver.solvers.highs import Highs as NewHighs
    from pyomo.opt.base.solvers import SolverFactoryClass

    for cls, interface, legacy in (
        (LegacySolverWrapper, "pyomo", True),
        (LegacySolverInterface, "pyomo-appsi", True),
        (NewHighs, "pyomo-contrib", False),
        (AppsiHighs, "pyomo-appsi", False),
    ):
        if not getattr(cls.solve, "_calm_hooked", False):
            cls.solve = _wrap_pyomo_solve(cls.solve, interface, legacy)
    if not getattr(SolverFactoryClass.__call__, "_calm_hooked", False):
        SolverFactoryClass.__call__ = _wrap_factory_call(SolverFactoryClass.__call__)
        SolverFactoryClass.__call__._calm_hooked = True


# ---------------------------------------------------------------- PuLP


def install_pulp(pulp: Any) -> None:
    """Route every PuLP solve to HiGHS (in-process, via highspy) and record it."""
    problem = pulp.LpProblem
    if getattr(problem.solve, "_calm_hooked", False):
        return
    orig = problem.solve
    highs_cls = pulp.HiGHS

    def _highs(msg: bool = False) -> Any:
        limit = remaining_time()
        return highs_cls(msg=msg, timeLimit=limit) if limit else highs_cls(msg=msg)

    @functools.wraps(orig)
    def solve(self: Any, solver: Any = None, **kwargs: Any) -> Any:
        if STATE.depth:
            return orig(self, solver, **kwargs)
        rec: dict[str, Any] = {"solver": "highs", "interface": "pulp"}
        if solver is not None and not isinstance(solver, highs_cls):
            # CBC/GLPK command-line solvers cannot run here (no exec): same model, HiGHS.
            rec["routed_from"] = getattr(solver, "name", type(solver).__name__)
            solver = _highs(bool(getattr(solver, "msg", False)))
        elif solver is None:
            solver = _highs()
        STATE.depth += 1
        STATE.inner = None
        t0 = time.perf_counter()
        try:
            out = orig(self, solver, **kwargs)
        except BaseException as exc:
            rec.update(termination=(STATE.inner or {}).get("termination", "error"))
            rec.update(objective=None, error=type(exc).__name__)
            rec["wall_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            _record(rec)
            raise
        finally:
            STATE.depth -= 1
        inner = STATE.inner or {}
        status = {1: S.OPTIMAL, -1: S.INFEASIBLE, -2: S.UNBOUNDED}.get(self.status)
        if status is None:
            status = S(inner.get("termination", "unknown"))
        rec["termination"] = status.value
        objective = None
        if status == S.OPTIMAL or inner.get("objective") is not None:
            try:
                objective = pulp.value(self.objective)
            except Exception:
                objective = inner.get("objective")
        rec["objective"] = objective
        rec["wall_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        _record(rec)
        return out

    solve._calm_hooked = True  # type: ignore[attr-defined]
    problem.solve = solve
    default = _highs()
    for mod in (pulp, getattr(pulp, "pulp", None), getattr(pulp, "apis", None)):
        if mod is not None and hasattr(mod, "LpSolverDefault"):
            mod.LpSolverDefault = default


# ---------------------------------------------------------------- SciPy

_LINPROG = {
    0: S.OPTIMAL,
    1: S.ITERATION_LIMIT,
    2: S.INFEASIBLE,
    3: S.UNBOUNDED,
    4: S.NUMERICAL_ERROR,
}
_MILP = {0: S.OPTIMAL, 1: S.TIME_LIMIT, 2: S.INFEASIBLE, 3: S.UNBOUNDED, 4: S.ERROR}


def _wrap_scipy(orig: Callable[..., Any], name: str, table: dict[int, S]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def entry(*args: Any, **kwargs: Any) -> Any:
        if STATE.depth:
            return orig(*args, **kwargs)
        STATE.depth += 1
        t0 = time.perf_counter()
        try:
            res = orig(*args, **kwargs)
        finally:
            STATE.depth -= 1
        status = table.get(getattr(res, "status", None), S.UNKNOWN)
        fun = getattr(res, "fun", None)
        _record(
            {
                "solver": "highs",
                "interface": f"scipy.{name}",
                "termination": status.value,
                "objective": fun if status == S.OPTIMAL else None,
                "wall_ms": round((time.perf_counter() - t0) * 1000, 3),
            }
        )
        return res

    entry._calm_hooked = True  # type: ignore[attr-defined]
    return entry


def install_scipy(optimize: Any) -> None:
    for name, table in (("linprog", _LINPROG), ("milp", _MILP)):
        fn = getattr(optimize, name, None)
        if fn is not None and not getattr(fn, "_calm_hooked", False):
            setattr(optimize, name, _wrap_scipy(fn, name, table))


# ---------------------------------------------------------------- import machinery

_POST_IMPORT: dict[str, Callable[[Any], None]] = {
    "highspy": install_highspy,
    "pyomo.environ": lambda _m: install_pyomo(),
    "pulp": install_pulp,
    "scipy.optimize": install_scipy,
}


class _UnavailableLoader(importlib.abc.Loader):
    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        raise ModuleNotFoundError(
            f"{module.__name__} is not available in this sandbox. {ADVICE}", name=module.__name__
        )


class _Finder(importlib.abc.MetaPathFinder):
    """Applies solve hooks right after a hooked module is first imported in a job, and turns
    imports of solver packages that are not installed into one clear message."""

    def __init__(self, blocked: set[str]) -> None:
        self._blocked = blocked
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname in self._blocked:
            return importlib.machinery.ModuleSpec(fullname, _UnavailableLoader())
        hook = _POST_IMPORT.get(fullname)
        if hook is None or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        orig_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            orig_exec(module)
            hook(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Install all hooks for what is already imported, and post-import hooks for the rest."""

    blocked = {
        n for n in UNAVAILABLE_MODULES if importlib.machinery.PathFinder.find_spec(n) is None
    }
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(blocked))
    for name, hook in _POST_IMPORT.items():
        module = sys.modules.get(name)
        if module is not None:
            hook(module)
