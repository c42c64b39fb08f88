"""What a finished (or stopped) search leaves in its folder: trials table, best.yaml, plots, summary."""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from cnnlab.experiments.overrides import apply_params
from cnnlab.experiments.space import SearchSpace
from cnnlab.experiments.tables import inline, write_tables
from cnnlab.io import atomic_write_text, write_json
from cnnlab.plots import pyplot, save_figure

SURPLUS = "cnnlab_surplus"  # user attr of trials created past the budget (told FAIL, never shown)
PLOTS = {
    "history": "plot_optimization_history",
    "importance": "plot_param_importances",
    "parallel": "plot_parallel_coordinate",
    "slice": "plot_slice",
    "intermediate": "plot_intermediate_values",
}


def visible_trials(study: Any) -> list[Any]:
    """Every trial of the study except the internal surplus ones, by number."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    done = [t for t in visible_trials(study) if t.state == TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value)]
    if not done:
        return None
    maximize = study.direction.name == "MAXIMIZE"
    return (max if maximize else min)(done, key=lambda t: t.value)


def trial_rows(study: Any, space: SearchSpace, metric: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per trial: number, state, metric value, params, epochs reported, duration, run folder."""
    best = best_trial(study)
    trials = visible_trials(study)
    rows = []
    for t in trials:
        params = space.decode(t.params)
        rows.append({**(t.user_attrs.get("metrics") or {}), "trial": t.number, "state": t.state.name.lower(),
                     metric: t.value, **{name: inline(params.get(name)) for name in space.names},
                     "epochs": len(t.intermediate_values) or None,
                     "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                     "best": "*" if best is not None and t.number == best.number else "",
                     "run_dir": t.user_attrs.get("run_dir", "")})
    reported = dict.fromkeys(k for t in trials for k in (t.user_attrs.get("metrics") or {}))  # in order
    keep = [k for k in reported if k in ("accuracy", "val_loss", "loss", "val_top5_accuracy", "test_accuracy")
            and k != metric and k not in space.names]
    columns = ["trial", "state", metric, *space.names, *keep, "epochs", "seconds", "best", "run_dir"]
    return rows, columns


def save_plots(study: Any, out_dir: Path) -> dict[str, Path]:
    """Optuna's matplotlib plots as PNG files; a plot that needs more trials is skipped."""
    plt = pyplot()  # Agg before optuna imports pyplot
    import numpy as np
    import optuna
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    done = [t for t in visible_trials(study) if t.state == TrialState.COMPLETE]
    reported = [t for t in visible_trials(study) if t.intermediate_values]
    saved: dict[str, Path] = {}
    for key, fn_name in PLOTS.items():
        if len(done) < (2 if key == "importance" else 1) or (key == "intermediate" and not reported):
            continue
        kwargs = {}
        if key == "importance":  # fANOVA, seeded; 32 trees are plenty for a handful of params
            kwargs["evaluator"] = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = getattr(ovm, fn_name)(study, **kwargs)
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError, KeyError):
                plt.close("all")
                continue
            fig = np.ravel(ax)[0].figure
            fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
            fig.tight_layout()
        saved[key] = save_figure(fig, Path(out_dir) / f"{key}.png")
    return saved


def write_outputs(study: Any, space: SearchSpace, base: dict[str, Any], run_dir: Path, metric: str,
                  spec: dict[str, Any], plots: bool = True) -> dict[str, Any]:
    """Write trials.csv/.md, best.yaml, plots/*.png and tune.json into ``run_dir``; return the summary."""
    from optuna.trial import TrialState

    run_dir = Path(run_dir)
    rows, columns = trial_rows(study, space, metric)
    title = f"cnnlab tune {run_dir.name}: {spec['sampler']} search, {spec['direction']} {metric}"
    csv_path, md_path = write_tables(run_dir / "trials", rows, columns, title=title)
    best = best_trial(study)
    best_path = None
    if best is not None:  # the base config with the best parameters, ready for cnnlab train --config
        cfg = apply_params({k: v for k, v in base.items() if k != "exist_ok"}, space.decode(best.params))
        best_path = run_dir / "best.yaml"
        head = (f"# best configuration of cnnlab tune {run_dir.name}: trial {best.number}, "
                f"{metric} = {best.value:.6g}\n# run it: cnnlab train --config {best_path}\n")
        atomic_write_text(best_path, head + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False))
    plot_paths = save_plots(study, run_dir / "plots") if plots else {}
    visible = visible_trials(study)
    counts = {s.name.lower(): sum(t.state == s for t in visible) for s in TrialState}
    summary = {
        "kind": "cnnlab.tune",
        "study": study.study_name,
        **spec,
        "trials": counts,
        "best": None if best is None else {
            "trial": best.number, "value": best.value, "params": space.decode(best.params),
            "run_dir": best.user_attrs.get("run_dir"),
        },
        "files": {"trials_csv": csv_path.name, "trials_md": md_path.name,
                  "best_config": best_path.name if best_path else None,
                  "plots": {k: str(p.relative_to(run_dir)) for k, p in plot_paths.items()}},
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    write_json(run_dir / "tune.json", summary)
    return summary
