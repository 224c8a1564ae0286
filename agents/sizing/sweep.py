"""Site sizing: compute per MW over GPU oversubscription x battery size x controllers.

A sweep file (YAML, e.g. ``configs/sweeps/cpm_frontier.yml``)::

    name: cpm_frontier
    scenario: cpm_env/DataCenter-v0      # the site every point starts from
    oversubscription: [1.0, 1.2, 1.4]    # installed IT peak x PUE / grid limit
    battery_hours: [0, 0.5, 1]           # energy capacity in hours of the grid limit (MWh = hours x limit MW)
    c_rate: 0.5                          # battery power MW = c_rate x capacity MWh
    controllers: [static_cap, greedy, oracle]
    seeds: 100-102

An optional ``economics:`` block (:class:`agents.sizing.economics_config.EconomicsConfig`) also prices the
base site's own battery against the same site without it and writes ``economics.md`` (the
yearly value split: compute enabled, energy, arbitrage, demand-response payments, wear).

Each (oversubscription, battery) point is one job: every controller on every seed, the seeds
batched through one ``make_vec``. Jobs run in a process pool over the machine's cores
(``--workers``). On a cluster the same jobs run on Ray with no code change: start Ray
(``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others), then
``RAY_ADDRESS=HEAD:6379 python evaluate.py --sweep FILE --workers ray``
(``pip install -e ".[cluster]"`` on every node, so each can import ``agents``);
``ray.util.multiprocessing.Pool`` is a drop-in for the local pool. Without ``RAY_ADDRESS`` it
starts a local Ray instance (checked: the same sweep.csv as the local pool on a tiny sweep).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation.outpaths import SAFE_NAME_RULE, is_safe_name, safe_name
from agents.evaluation.runfolder import RunFolder
from agents.evaluation.seeds import parse_seeds
from agents.files import scenario_sha256
from agents.sizing.economics_config import EconomicsConfig
from cpm_env.config import ConfigError, build_config, read_yaml, require, resolve_file_paths, resolve_scenario

# "violation-free" means within the whole grid contract, per episode on average: energy over the
# limit, oscillation above the band, and ramp excess (MW summed over steps) below these
VIOLATION_FREE = {"violation_mwh": 0.01, "swing_excess_mwh": 0.01, "ramp_excess_mw": 1.0}


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep file."""

    name: str = ""  # default: the file's stem
    scenario: str = "cpm_env/DataCenter-v0"
    oversubscription: tuple[float, ...] = ()
    battery_hours: tuple[float, ...] = ()
    c_rate: float = 0.5  # battery MW per MWh
    controllers: tuple[str, ...] = ("static_cap", "greedy", "oracle")
    seeds: tuple[int, ...] = (100, 101, 102)
    economics: EconomicsConfig | None = None  # price the base site's battery; None: skip

    def validate(self) -> None:
        require(is_safe_name(self.name), "name", self.name, SAFE_NAME_RULE)
        for name, lo, hi in (("oversubscription", 0.1, 10.0), ("battery_hours", 0.0, 100.0)):
            values = getattr(self, name)
            require(bool(values) and all(lo <= v <= hi for v in values), name, list(values),
                    f"must be a non-empty list of numbers in [{lo:g}, {hi:g}]")
            require_distinct(name, values)
        require(0 < self.c_rate <= 10, "c_rate", self.c_rate, "must be a number in (0, 10] (battery MW per MWh)")
        require(bool(self.controllers) and all(self.controllers), "controllers", list(self.controllers),
                "must be a non-empty list of controller names")
        require_distinct("controllers", self.controllers)

    def points(self) -> list[tuple[float, float]]:
        """Every (oversubscription, battery_hours) pair, in file order."""
        return [(o, h) for o in self.oversubscription for h in self.battery_hours]


def require_distinct(name: str, values: tuple) -> None:
    """A one-line error naming the first value of ``values`` given twice."""
    for i, v in enumerate(values):
        require(v not in values[:i], name, list(values), f"{v!r} given twice")


def load_sweep(path: str | Path, seeds: str | None = None) -> SweepConfig:
    """Read and check a sweep file (``seeds``, the CLI's --seeds, replaces its seeds); ConfigError names the
    file, field, value and what is allowed (ValueError names --seeds). A price CSV's relative path resolves
    against the file's folder."""
    path = Path(path)
    data = read_yaml(path, "sweep fields")
    data.setdefault("name", path.stem)
    if seeds is not None:
        data["seeds"] = parse_seeds(seeds)  # the CLI's --seeds: its error names the flag
    else:
        text = data.get("seeds", "100-102")
        text = ",".join(map(str, text)) if isinstance(text, list) else str(text)
        try:
            data["seeds"] = parse_seeds(text, "seeds")
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from None
    return build_config(SweepConfig, resolve_file_paths(SweepConfig, data, path.parent), str(path))


def point_overrides(cfg_limit_mw: float, oversubscription: float, battery_hours: float, c_rate: float) -> dict:
    """Scenario overrides of one sweep point: site oversubscription and battery MWh / MW."""
    capacity_mwh = battery_hours * cfg_limit_mw
    return {"site": {"oversubscription": oversubscription},
            "battery": {"capacity_mwh": capacity_mwh, "power_mw": c_rate * capacity_mwh}}


def run_point(job: tuple[SweepConfig, float, float, float]) -> pd.DataFrame:
    """Every controller on every seed at one point (sweep, grid limit MW, oversubscription,
    battery hours); one row per controller x seed."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch  # already loaded with SB3; a forked worker keeps the parent's thread pool unless told

    torch.set_num_threads(1)  # one worker per core, no intra-op threads on top
    from agents.evaluation.runner import make_controller, run_controller
    from cpm_env.vec_env import make_vec

    sweep, limit, over, hours = job
    overrides = point_overrides(limit, over, hours, sweep.c_rate)
    venv = make_vec(sweep.scenario, len(sweep.seeds), scenario=overrides)
    frames = [run_controller(make_controller(name, venv.site), venv, list(sweep.seeds), name)
              for name in sweep.controllers]
    rows = pd.concat(frames, ignore_index=True)
    rows.insert(0, "battery_mw", overrides["battery"]["power_mw"])
    rows.insert(0, "battery_mwh", overrides["battery"]["capacity_mwh"])
    rows.insert(0, "battery_hours", hours)
    rows.insert(0, "oversubscription", over)
    return rows


def check_controllers(sweep: SweepConfig, path: str) -> None:
    """Build every controller once on the base scenario, so a bad name fails before any work."""
    from agents.evaluation.runner import make_controller
    from cpm_env.scenario import Site

    site = Site(resolve_scenario(sweep.scenario))
    for name in sweep.controllers:
        try:
            make_controller(name, site)
        except ValueError as err:
            raise ConfigError(f"{path}: controllers: {err}") from None
    econ = sweep.economics
    if econ is not None:
        from agents.sizing.prices import step_prices_usd_per_mwh

        try:
            make_controller(econ.controller, site)
        except ValueError as err:
            raise ConfigError(f"{path}: economics.controller: {err}") from None
        if econ.dr_scenario and econ.dr_events_per_year > 0:
            try:
                resolve_scenario(econ.dr_scenario)
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"{path}: economics.dr_scenario = {econ.dr_scenario!r}: {err}") from None
        try:
            step_prices_usd_per_mwh(econ.price, 0.0, 1.0, 24)  # a bad price CSV fails here, naming its row
        except ConfigError as err:
            raise ConfigError(f"{path}: economics.price: {err}") from None


def make_pool(workers: str):
    """A process pool with ``imap_unordered``: local processes, or Ray's drop-in on a cluster."""
    if workers == "ray":
        from ray.util.multiprocessing import Pool  # optional: pip install "ray[default]"

        return Pool()
    from multiprocessing import get_context

    n = (os.cpu_count() or 1) if workers == "auto" else int(workers)
    return get_context("fork").Pool(max(n, 1))


def summarize_sweep(episodes: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per point and controller, with the 95% CI of compute per MW."""
    from agents.evaluation.summary import confidence_halfwidth

    keys = ["oversubscription", "battery_hours", "battery_mwh", "battery_mw", "controller"]
    grouped = episodes.groupby(keys, sort=False)
    table = grouped[["compute_per_mw", "violation_mwh", "ramp_excess_mw", "swing_excess_mwh", "reward",
                     "compute_fraction", "ramp_violations", "battery_cycles"]].mean().reset_index()
    table["compute_per_mw_ci95"] = grouped.compute_per_mw.apply(lambda s: confidence_halfwidth(s.to_numpy())).values
    table["seeds"] = grouped.size().values
    table["violation_free"] = np.logical_and.reduce([table[k] <= v for k, v in VIOLATION_FREE.items()])
    return table


def best_configurations(table: pd.DataFrame) -> pd.DataFrame:
    """Per controller, the violation-free point with the most compute per MW (none: absent)."""
    free = table[table.violation_free]
    if free.empty:
        return free
    return free.loc[free.groupby("controller", sort=False).compute_per_mw.idxmax()].reset_index(drop=True)


def sizing_markdown(table: pd.DataFrame, best: pd.DataFrame) -> str:
    """The sweep table and the best violation-free configuration per controller, as markdown."""
    lines = ["| oversubscription | battery h (MWh / MW) | controller | compute per MW (95% CI) | violation MWh "
             "| ramp excess MW | swing excess MWh | violation-free |", "|" + "---|" * 8]
    for r in table.itertuples():
        lines.append(f"| {r.oversubscription:.2f} | {r.battery_hours:g} ({r.battery_mwh:g} / {r.battery_mw:g}) "
                     f"| {r.controller} | {r.compute_per_mw:.3f} ± {r.compute_per_mw_ci95:.3f} "
                     f"| {r.violation_mwh:.3f} | {r.ramp_excess_mw:.1f} | {r.swing_excess_mwh:.3f} "
                     f"| {'yes' if r.violation_free else 'no'} |")
    limits = ", ".join(f"{k} <= {v:g}" for k, v in VIOLATION_FREE.items())
    lines += ["", f"Best violation-free configuration per controller (per episode: {limits}):", ""]
    for r in best.itertuples():
        lines.append(f"- **{r.controller}**: oversubscription {r.oversubscription:.2f}, battery {r.battery_hours:g} h "
                     f"({r.battery_mwh:g} MWh / {r.battery_mw:g} MW): {r.compute_per_mw:.3f} compute per MW")
    missing = sorted(set(table.controller) - set(best.controller))
    if missing:
        lines.append(f"- no violation-free point for: {', '.join(missing)}")
    return "\n".join(lines)


def plot_sweep(table: pd.DataFrame, out: Path, title: str) -> None:
    """``frontier.png`` (compute per MW against battery size, a panel per oversubscription, a line
    per controller, violation-free points filled) and ``heatmap.png`` (a panel per controller)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overs = sorted(table.oversubscription.unique())
    controllers = list(dict.fromkeys(table.controller))
    colors = {c: f"C{i}" for i, c in enumerate(controllers)}
    ncols = min(4, len(overs))  # panels wrap into rows: readable at normal size
    nrows = -(-len(overs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 0.9 + 2.7 * nrows), sharey=True, sharex=True,
                             layout="constrained", squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(overs):
            ax.set_visible(False)
            above = axes.flat[i - ncols]  # the panel above an empty one is the last of its column
            above.xaxis.set_tick_params(labelbottom=True)
            above.set_xlabel("battery (h of grid limit)")
    for ax, over in zip(axes.flat, overs):
        for c in controllers:
            g = table[(table.oversubscription == over) & (table.controller == c)].sort_values("battery_hours")
            ax.plot(g.battery_hours, g.compute_per_mw, color=colors[c], label=c)
            free = g[g.violation_free]
            ax.scatter(free.battery_hours, free.compute_per_mw, color=colors[c], zorder=3)
            ax.scatter(g[~g.violation_free].battery_hours, g[~g.violation_free].compute_per_mw, facecolors="none",
                       edgecolors=colors[c], zorder=3)
        ax.set_title(f"oversubscription {over:.2f}", fontsize=9)
        ax.grid(lw=0.3, alpha=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("battery (h of grid limit)")
    for ax in axes[:, 0]:
        ax.set_ylabel("compute per MW of grid")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8,
               title="filled: violation-free, open: with violations", title_fontsize=8)
    fig.suptitle(f"{title}: frontier")
    fig.savefig(out / "frontier.png", dpi=110)
    plt.close(fig)

    hours = sorted(table.battery_hours.unique())
    fig, axes = plt.subplots(1, len(controllers), figsize=(3.6 * len(controllers), 3.4), layout="constrained",
                             squeeze=False)
    vmin, vmax = table.compute_per_mw.min(), table.compute_per_mw.max()
    for ax, c in zip(axes[0], controllers):
        g = table[table.controller == c]
        grid = g.pivot(index="oversubscription", columns="battery_hours", values="compute_per_mw").loc[overs, hours]
        free = g.pivot(index="oversubscription", columns="battery_hours", values="violation_free").loc[overs, hours]
        image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        for i in range(len(overs)):
            for j in range(len(hours)):
                mark = "" if bool(free.iat[i, j]) else "×"
                ax.text(j, i, f"{grid.iat[i, j]:.2f}{mark}", ha="center", va="center", fontsize=6, color="w")
        ax.set_xticks(range(len(hours)), [f"{h:g}" for h in hours])
        ax.set_yticks(range(len(overs)), [f"{o:.2f}" for o in overs])
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("battery (h of grid limit)")
    axes[0][0].set_ylabel("oversubscription")
    fig.colorbar(image, ax=axes[0].tolist(), label="compute per MW (× = violations)")
    fig.suptitle(f"{title}: compute per MW")
    fig.savefig(out / "heatmap.png", dpi=110)
    plt.close(fig)


SWEEP_FILES = ("sweep.csv", "episodes.csv", "sizing.md", "frontier.png", "heatmap.png")
ECONOMICS_FILES = ("economics.md", "economics.csv")


def run_sweep(sweep: SweepConfig, folder: RunFolder, workers: str = "auto", progress: Any = None) -> pd.DataFrame:
    """Every point's episodes (one row per point x controller x seed), in point order. Each point's rows
    are kept in ``folder`` as its job finishes; points already there (an interrupted run) are not rerun."""
    limit_mw = resolve_scenario(sweep.scenario).grid.limit_mw
    points = sweep.points()
    todo = {p: i for i, p in enumerate(points) if not folder.has(i)}
    if progress is not None:
        progress.update(len(points) - len(todo))
    if todo:
        with make_pool(workers) as pool:
            for rows in pool.imap_unordered(run_point, [(sweep, limit_mw, o, h) for o, h in todo]):
                folder.save(todo[(rows.oversubscription.iat[0], rows.battery_hours.iat[0])], rows)
                if progress is not None:
                    progress.update(1)
    return pd.concat([folder.load(i)[0] for i in range(len(points))], ignore_index=True)


def sweep_stamp(sweep: SweepConfig) -> dict:
    """The configuration a sweep folder is stamped with (run.json): the sweep's fields and its base scenario's hash."""
    from agents.evaluation.runner import policy_fingerprints
    from cpm_env.config import scenario_to_dict
    from cpm_env.scenario import Site

    base = resolve_scenario(sweep.scenario)
    return {"command": "sweep", "sweep": dataclasses.asdict(sweep),
            "scenario_sha256": scenario_sha256(scenario_to_dict(base)),
            "policies": policy_fingerprints(list(sweep.controllers), Site(base))}  # a retrained policy is another run


def sweep_cli(path: str, seeds: str | None, out: Path | None, workers: str, overwrite: bool = False) -> int:
    """``evaluate.py --sweep``: check the file and the output folder, run (resuming an interrupted run in the
    same folder), write sweep.csv, episodes.csv, sizing.md, the plots and the economics files together, print."""
    import sys

    from tqdm import tqdm

    try:
        sweep = load_sweep(path, seeds)
        if workers not in ("auto", "ray") and not (workers.isdigit() and int(workers) > 0):
            raise ValueError(f"--workers = {workers!r}: must be auto, ray or a positive integer")
        out = out if out is not None else Path("results") / "sweeps" / safe_name(sweep.name, f"{path}: name")
        folder = RunFolder(out, sweep_stamp(sweep), "--out", overwrite, (*SWEEP_FILES, *ECONOMICS_FILES))
        check_controllers(sweep, path)
        folder.claim()
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        with tqdm(total=len(sweep.points()), unit="point", desc=sweep.name, disable=None) as bar:
            episodes = run_sweep(sweep, folder, workers, bar)
    except KeyboardInterrupt:
        print(f"interrupted: the finished points' rows are kept in {out}/rows; rerun the same command to continue",
              file=sys.stderr)
        return 130
    table = summarize_sweep(episodes)
    best = best_configurations(table)
    text = sizing_markdown(table, best)
    value = money = None
    written = ", ".join(SWEEP_FILES)
    if sweep.economics is not None:
        from agents.sizing.economics import battery_value, value_markdown

        econ = sweep.economics
        runs = 4 if econ.dr_scenario and econ.dr_events_per_year > 0 else 2
        with tqdm(total=runs, unit="run", desc="economics", disable=None) as bar:
            value = battery_value(sweep.scenario, list(sweep.seeds), econ, progress=bar)
        money = value_markdown(value, econ)
        written += ", " + ", ".join(ECONOMICS_FILES)
    with folder.publish() as staging:
        episodes.to_csv(staging / "episodes.csv", index=False)
        table.to_csv(staging / "sweep.csv", index=False)
        (staging / "sizing.md").write_text(text + "\n")
        plot_sweep(table, staging, f"{sweep.name} ({sweep.scenario}, seeds {sweep.seeds[0]}-{sweep.seeds[-1]})")
        if value is not None:
            value.episodes.to_csv(staging / "economics.csv", index=False)
            (staging / "economics.md").write_text(f"{money}\n")
    print(text)
    if money is not None:
        print("\n" + money)
    print(f"\nwrote {out}/{written}")
    return 0
