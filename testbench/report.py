"""Reports from result stores: summary tables and the offline HTML reproduction report.

:func:`summary` / :func:`format_summary` give the Table-1-style mean ± std of every metric per
network that ``testbench show`` prints and the ``summary_table`` sink writes.

``testbench report RESULTS -o DIR`` (see :func:`add_report_command`) or :func:`write_report` reads a
store written by ``testbench run graphs/paper.yaml`` and writes ``DIR/index.html`` beside its
figures. Sections (paper numbering):

* Table 1: mean ± std over cells of settling time, delta response, amplitude, correlation and
  frequency for each dataset's ``table_size``-cell network, and the fractions of excitatory /
  inhibitory cells by the sign of delta response and of correlation;
* Figs. 2C-G, 3A-E: sorted distributions of every metric;
* Fig. 2B: hidden states of the MNIST network reading one test digit, cells sorted by settling time
  (needs the MNIST data; skipped with a note otherwise);
* Fig. 4 and predictive validity: ablation impact of cells sorted by delta response and by
  amplitude with a moving trend; Spearman/Kendall with bootstrap CIs, permutation p-values and
  top-k overlap (:mod:`testbench.validity`);
* Fig. 5 and capacity: each metric against network size with power-law fits
  (:mod:`testbench.capacity`).

Figures use matplotlib's Agg backend; the page references only files in ``DIR``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from testbench.errors import TestbenchError

TABLE1_METRICS = ("settling_time", "delta_response", "amplitude", "correlation", "frequency")
TREND_METRICS = ("delta_response", "amplitude")
CAPACITY_FIT = ("amplitude", "settling_time")
TABLE_SIZE = 128


def summary(metrics: xr.DataArray) -> pd.DataFrame:
    """Mean and standard deviation over cells of each metric, per network and sweep point.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(..., cell, metric, ...)``; NaN (padding cells, undefined metrics) is skipped.

    Returns
    -------
    pd.DataFrame
        One row per combination of the remaining dims (e.g. dataset, network_size, frequency);
        columns ``(metric, stat)`` with stat in ``mean``, ``std`` (population std, ddof=0) and
        ``n`` (cells with a defined value).
    """
    metrics = metrics.load()
    stats = xr.concat(
        [metrics.mean("cell", skipna=True), metrics.std("cell", skipna=True),
         metrics.notnull().sum("cell").astype(float)],
        dim=pd.Index(["mean", "std", "n"], name="stat"),
    )
    keep = [c for c in stats.coords if c in stats.dims]
    stats = stats.reset_coords([c for c in stats.coords if c not in keep], drop=True)
    frame = stats.to_dataframe(name="value")["value"]
    rows = [d for d in stats.dims if d not in ("metric", "stat")]
    table = frame.unstack(["metric", "stat"]) if rows else frame.to_frame().T
    if not rows:
        table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "stat"])
    metric_order = list(map(str, metrics["metric"].values))
    table = table.reindex(columns=pd.MultiIndex.from_product([metric_order, ["mean", "std", "n"]],
                                                             names=["metric", "stat"]))
    return table


def format_summary(table: pd.DataFrame, *, markdown: bool = False) -> str:
    """Render :func:`summary` as ``mean ± std`` text (aligned columns, or a Markdown table)."""
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))

    def cell(row, m):
        mean, std = row[(m, "mean")], row[(m, "std")]
        return "n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.3g}"

    index_names = [str(n) for n in table.index.names if n is not None] or ["network"]
    header = index_names + metrics
    body = []
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        body.append([str(i) for i in idx][: len(index_names)] + [cell(row, m) for m in metrics])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


class ReportError(TestbenchError):
    """A store cannot be turned into the report (missing variables or dims)."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _units(metrics: xr.DataArray, name: str) -> str:
    if "units" in metrics.coords:
        u = str(metrics["units"].sel(metric=name).item())
        return "" if u in ("", "1") else f" [{u}]"
    return ""


def _check(ds: xr.Dataset, store) -> xr.DataArray:
    if "metrics" not in ds:
        raise ReportError(f"'{store}' holds no 'metrics' variable (has: {', '.join(ds.data_vars)}); "
                          "fix: run graphs/paper.yaml (or any graph with step/sine analyzers)")
    missing = [d for d in ("dataset", "network_size", "cell", "metric") if d not in ds.metrics.dims]
    if missing:
        raise ReportError(f"'{store}': metrics lack dims {missing}; fix: characterize zoo networks "
                          "(their metadata names the dataset)")
    extra = [d for d in ds.metrics.dims if d not in ("dataset", "network_size", "cell", "metric")
             and ds.metrics.sizes[d] > 1]
    if extra:
        raise ReportError(f"'{store}': metrics have sweep dims {extra}; the report needs one point "
                          "per metric; fix: select one sweep point in the graph")
    return ds.metrics.squeeze([d for d in ds.metrics.dims if d not in
                               ("dataset", "network_size", "cell", "metric")], drop=True).load()


# ------------------------------------------------------------------------------------- tables


def table1(metrics: xr.DataArray, *, size: int = TABLE_SIZE,
           names: tuple[str, ...] = TABLE1_METRICS) -> pd.DataFrame:
    """Table 1: ``mean ± std`` over cells of each metric for every dataset's ``size``-cell network.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(dataset, network_size, cell, metric)``.
    size : int
        Network size of the table. Default 128.
    names : tuple of str
        Metrics (columns).

    Returns
    -------
    pd.DataFrame
        Index dataset; columns ``(metric, stat)`` with stat ``mean``, ``std``, ``n``
        (:func:`testbench.reports.summary`).
    """

    names = [n for n in names if n in metrics["metric"].values]
    return summary(metrics.sel(network_size=size, metric=names))


def sign_fractions(metrics: xr.DataArray, *, size: int = TABLE_SIZE) -> pd.DataFrame:
    """Fractions of excitatory (> 0) and inhibitory (< 0) cells by delta response and correlation.

    Returns
    -------
    pd.DataFrame
        Index dataset; columns ``delta_response excitatory``, ``... inhibitory`` and the same for
        ``correlation``: fractions of the cells with a defined value, in [0, 1].
    """
    out = {}
    for name in ("delta_response", "correlation"):
        m = metrics.sel(network_size=size, metric=name)
        n = m.notnull().sum("cell")
        out[f"{name} excitatory"] = ((m > 0).sum("cell") / n).to_series()
        out[f"{name} inhibitory"] = ((m < 0).sum("cell") / n).to_series()
    return pd.DataFrame(out)


def _table1_html(t1: pd.DataFrame, fr: pd.DataFrame, metrics: xr.DataArray) -> str:
    rows = {}
    for d, row in t1.iterrows():
        rows[d] = {f"{m}{_units(metrics, m)}": (f"{row[(m, 'mean')]:.4g} ± {row[(m, 'std')]:.3g}"
                                                 if np.isfinite(row[(m, 'mean')]) else "n/a")
                   for m in dict.fromkeys(t1.columns.get_level_values(0))}
        rows[d].update({k: f"{v:.0%}" for k, v in fr.loc[d].items()})
    return pd.DataFrame(rows).T.to_html(classes="t", border=0)


# ------------------------------------------------------------------------------------ figures


def fig_sorted(metrics: xr.DataArray, *, size: int = TABLE_SIZE):
    """Figs. 2C-G / 3A-E: each metric's values over the ``size``-cell networks, sorted ascending."""
    plt = _plt()
    names = [str(m) for m in metrics["metric"].values]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for d in metrics["dataset"].values:
            v = metrics.sel(network_size=size, dataset=d, metric=name).values
            v = np.sort(v[np.isfinite(v)])
            ax.plot(np.arange(len(v)), v, ".-", ms=2, lw=1, label=str(d))
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_title(name + _units(metrics, name), fontsize=9)
        ax.set_xlabel("cell rank")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Sorted metric distributions, {size}-cell networks")
    fig.tight_layout()
    return fig


def fig_trend(metrics: xr.DataArray, impact: xr.DataArray, *, metric: str, window: int = 15):
    """Fig. 4: ablation impact of the cells sorted by ``metric``, moving mean ± moving std."""
    from testbench.validity import moving_trend

    plt = _plt()
    datasets = [d for d in impact["dataset"].values if np.isfinite(impact.sel(dataset=d)).any()]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.2), squeeze=False)
    for ax, d in zip(axes.flat, datasets):
        y = impact.sel(dataset=d)
        size = int(y["network_size"].values[np.isfinite(y).any("cell").values][0])
        frame = moving_trend(metrics.sel(dataset=d, network_size=size, metric=metric).values,
                             y.sel(network_size=size).values, window=window)
        pos = np.arange(len(frame))
        ax.bar(pos, frame["impact"], width=1.0, color="0.6", label="cell")
        ax.plot(pos, frame["trend"], color="C3", label=f"moving mean ({window})")
        ax.fill_between(pos, frame["trend"] - frame["spread"], frame["trend"] + frame["spread"],
                        color="C3", alpha=0.2, label="± moving std")
        ax.axhline(0, color="k", lw=0.5)
        units = str(impact["error_units"].sel(dataset=d).item()) if "error_units" in impact.coords else ""
        ax.set_title(f"{d}-{size}", fontsize=9)
        ax.set_xlabel(f"cells sorted by {metric} (ascending)")
        ax.set_ylabel(f"Δ test error [{units}]")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_capacity(metrics: xr.DataArray, fits: pd.DataFrame):
    """Fig. 5: mean ± std over cells of each |metric| against network size, per dataset; log-log
    axes and fitted power laws for :data:`CAPACITY_FIT`."""
    from testbench.capacity import size_statistics

    plt = _plt()
    stats = size_statistics(metrics)
    names = [n for n in TABLE1_METRICS if n in metrics["metric"].values]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for k, d in enumerate(metrics["dataset"].values):
            mean = stats["mean"].sel(dataset=d, metric=name)
            std = stats["std"].sel(dataset=d, metric=name)
            N = mean["network_size"].values
            lower = np.minimum(std, 0.9 * mean) if name in CAPACITY_FIT else std  # log axes: > 0
            ax.errorbar(N, mean, yerr=[lower, std], fmt="o", ms=3, capsize=2, color=f"C{k}",
                        label=str(d))
            if name in CAPACITY_FIT and (str(d), name) in fits.index:
                f = fits.loc[(str(d), name)]
                if np.isfinite(f["exponent"]):
                    grid = np.geomspace(N.min(), N.max(), 20)
                    ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "-", color=f"C{k}", lw=1,
                            label=f"b = {f['exponent']:.2f}")
        if name in CAPACITY_FIT:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(metrics["network_size"].values, [str(n) for n in metrics["network_size"].values])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"|{name}|{_units(metrics, name)}", fontsize=9)
        ax.set_xlabel("network size N")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _network_source(ds: xr.Dataset, dataset: str, size: int) -> str | None:
    """The weights source of a characterized network, from the store's provenance."""
    for entries in json.loads(ds.attrs.get("weights", "{}")).values():
        for e in entries:
            if e.get("dataset") == dataset and int(e.get("network_size", -1)) == size:
                return e["source"]
    return None


def fig_heatmap(metrics: xr.DataArray, source: str, *, data_dir=None, digit_index: int = 0):
    """Fig. 2B: hidden outputs of the MNIST network (in the network) reading one test digit.

    Parameters
    ----------
    metrics : xr.DataArray
        Used for the settling time of the network's cells (sort order; never-settling cells last).
    source : str
        Weights of an MNIST network (row variant).
    data_dir : str or Path, optional
        Data folder.
    digit_index : int
        Index of the test image, >= 0.
    """
    from testbench.kernels.network import forward
    from testbench import data as D
    from testbench import weights as W

    plt = _plt()
    net = W.load(source)
    test = D.load("mnist", variant=net.metadata.get("variant", "row"), data_dir=data_dir).test
    x = test.x[digit_index:digit_index + 1]
    layers = [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]
    h = forward(net.cell_type, layers, None, None, x, readout_mode="every")[0]  # (T, N)
    settle = metrics.sel(dataset=str(net.metadata["dataset"]), network_size=net.hidden_size,
                         metric="settling_time").values[:net.hidden_size]
    order = np.argsort(np.where(np.isfinite(settle), settle, np.inf), kind="stable")
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 3]})
    a0.imshow(x[0], cmap="gray_r")
    a0.set_title(f"test digit {digit_index} (label {int(test.y[digit_index])})", fontsize=9)
    a0.set_xlabel("pixel (input channel)")
    a0.set_ylabel("row (time step)")
    im = a1.imshow(h[:, order].T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                   extent=(0.5, h.shape[0] + 0.5, len(order) - 0.5, -0.5))
    a1.set_xlabel("time step (image row)")
    a1.set_ylabel("cell, sorted by settling time (fast → slow)")
    a1.set_title(f"hidden state h_t of {net.metadata.get('name', source)}", fontsize=9)
    fig.colorbar(im, ax=a1)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- report


def _fmt_validity(table: pd.DataFrame) -> pd.DataFrame:
    def ci(c, lo, hi):
        return table.apply(lambda r: f"{r[c]:+.2f} [{r[lo]:+.2f}, {r[hi]:+.2f}]", axis=1)

    return pd.DataFrame({
        "n": table["n"].astype(int),
        "Spearman ρ [95% CI]": ci("spearman", "spearman_lo", "spearman_hi"),
        "Kendall τ [95% CI]": ci("kendall", "kendall_lo", "kendall_hi"),
        "p (perm.)": table["p_perm"].map(lambda p: f"{p:.3g}"),
        "top-k overlap (random)": table.apply(
            lambda r: f"{r['overlap']:.0%} ({r['overlap_random']:.0%}), p={r['p_overlap']:.2g}", axis=1),
    })


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; line-height: 1.4; }}
table.t {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
table.t td, table.t th {{ border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
.note {{ color: #855; }}
</style></head><body>
<h1>{title}</h1>
<p>Store: <code>{store}</code>; created {created}; testbench {version}.</p>
{sections}
</body></html>
"""


def write_report(store: str | Path, out_dir: str | Path, *, data_dir=None, size: int = TABLE_SIZE,
                 n_boot: int = 1000, n_perm: int = 2000, top_k: int = 10, window: int = 15) -> Path:
    """Write the reproduction report of a result store: ``out_dir/index.html`` and PNG figures.

    Parameters
    ----------
    store : str or Path
        Result store (zarr) with ``metrics`` (dataset, network_size, cell, metric) and, for the
        ablation sections, ``ablation_impact`` (from ``graphs/paper.yaml``).
    out_dir : str or Path
        Output folder (created).
    data_dir : str or Path, optional
        Data folder for Fig. 2B (the MNIST digit); default ``$TESTBENCH_DATA`` or
        ``~/.cache/testbench``. Without the data the figure is skipped with a note.
    size : int
        Network size of Table 1, the sorted distributions and the validity tables. Default 128.
    n_boot, n_perm, top_k : int
        Bootstrap resamples, permutations and k of the validity statistics (>= 1).
    window : int
        Cells per moving window of Fig. 4, >= 1.

    Returns
    -------
    Path
        The written ``index.html``.

    Raises
    ------
    ReportError
        The store lacks ``metrics`` or has unselected sweep dims.
    """
    from testbench import store as S
    from testbench.capacity import capacity_table
    from testbench.validity import validity_table

    plt = _plt()
    ds = S.open_store(str(store))
    metrics = _check(ds, store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = []

    def figure(fig, name, caption):
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        sections.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'>"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    sizes = list(metrics["network_size"].values)
    if size in sizes:
        t1 = table1(metrics, size=size)
        t1.to_csv(out / "table1.csv")
        fr = sign_fractions(metrics, size=size)
        fr.to_csv(out / "sign_fractions.csv")
        sections.append(f"<h2>Table 1: metrics of the {size}-cell networks (mean ± std over cells)</h2>"
                        + _table1_html(t1, fr, metrics))
        figure(fig_sorted(metrics, size=size), "fig2_3_sorted.png",
               "Figs. 2C-G, 3A-E: sorted distributions of every metric")
        source = _network_source(ds, "mnist", size)
        sections.append("<h2>Fig. 2B: hidden state reading one MNIST digit</h2>")
        if source is None:
            sections.append(f"<p class='note'>skipped: no {size}-cell MNIST network in this store</p>")
        else:
            try:
                figure(fig_heatmap(metrics, source, data_dir=data_dir), "fig2b_heatmap.png",
                       "Fig. 2B: in-network hidden outputs, cells sorted by isolated settling time")
            except TestbenchError as exc:
                sections.append(f"<p class='note'>skipped: {html.escape(str(exc))}</p>")
    else:
        sections.append(f"<p class='note'>No {size}-cell networks: Table 1 skipped.</p>")

    if "ablation_impact" in ds:
        impact = ds["ablation_impact"].load()
        modes = [str(m) for m in impact["mode"].values] if "mode" in impact.dims else [None]
        sections.append("<h2>Predictive validity: response metrics against ablation impact</h2>"
                        "<p>Impact = test error with the cell knocked out minus intact error "
                        "(misclassification rate, or MAE in the dataset's units). CIs: percentile "
                        f"bootstrap over cells ({n_boot} resamples); p: permutation test of ρ "
                        f"({n_perm} permutations); top-k overlap with k = {top_k} against a random "
                        "ranking (expected k/n), hypergeometric p.</p>")
        intact = ds["ablation_intact"].load().to_series().dropna() if "ablation_intact" in ds else None
        if intact is not None:
            sections.append("<p>Intact test errors: " + ", ".join(
                f"{k if isinstance(k, str) else '/'.join(map(str, k))}: {v:.4g}"
                for k, v in intact.items()) + "</p>")
        sub = xr.Dataset({"metrics": metrics.sel(metric=[m for m in TABLE1_METRICS
                                                         if m in metrics["metric"].values]),
                          "ablation_impact": impact})
        table = validity_table(sub, n_boot=n_boot, n_perm=n_perm, top_k=top_k)
        table.to_csv(out / "validity.csv")
        sections.append(_fmt_validity(table).to_html(classes="t", border=0))
        for mode in modes:
            imp = impact.sel(mode=mode) if mode is not None else impact
            for metric in TREND_METRICS:
                if metric in metrics["metric"].values:
                    tag = f"_{mode}" if mode is not None else ""
                    figure(fig_trend(metrics, imp, metric=metric, window=window),
                           f"fig4_{metric}{tag}.png",
                           f"Fig. 4: ablation impact ({mode or ''} knock-out) of cells sorted by {metric}")
    else:
        sections.append("<p class='note'>No ablation in this store: validity and Fig. 4 skipped "
                        "(run graphs/paper.yaml).</p>")

    if len(sizes) >= 3:
        fits = capacity_table(metrics)
        fits.to_csv(out / "capacity.csv")
        sections.append("<h2>Fig. 5: capacity (metric against network size)</h2>"
                        "<p>Power law |metric| mean over cells = a·N<sup>b</sup>, least squares in "
                        "log-log, 95% t-interval of b.</p>")
        show = fits.loc[fits.index.get_level_values("metric").isin(TABLE1_METRICS)]
        sections.append(show.apply(lambda r: pd.Series({
            "b [95% CI]": f"{r['exponent']:+.2f} [{r['exponent_lo']:+.2f}, {r['exponent_hi']:+.2f}]",
            "R²": f"{r['r2']:.2f}", "sizes": int(r["n_points"])}), axis=1).to_html(classes="t", border=0))
        figure(fig_capacity(metrics, fits), "fig5_capacity.png",
               "Fig. 5: mean ± std over cells of each |metric| against network size")
    from testbench import __version__

    page = PAGE.format(title="Response characterization: reproduction report", store=html.escape(str(store)),
                       created=html.escape(str(ds.attrs.get("created_utc", "?"))),
                       version=html.escape(str(__version__)), sections="\n".join(sections))
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def add_report_command(subparsers) -> None:
    """Add ``testbench report RESULTS -o DIR`` to the CLI's argparse sub-parsers."""
    p = subparsers.add_parser("report", help="write the HTML reproduction report of a result store",
                              description=write_report.__doc__.splitlines()[0])
    p.add_argument("store", help="result store (zarr), e.g. results/paper.zarr")
    p.add_argument("-o", "--output", default="results/report", help="output folder")
    p.add_argument("--data-dir", default=None, help="data folder (for Fig. 2B)")
    p.add_argument("--size", type=int, default=TABLE_SIZE, help="network size of Table 1")

    def run(args) -> int:
        path = write_report(args.store, args.output, data_dir=args.data_dir, size=args.size)
        print(f"wrote {path}")
        return 0

    p.set_defaults(func=run)
