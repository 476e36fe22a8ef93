"""Evaluation reports: a JSON file with every figure, and Markdown or HTML with a plot."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

BEYOND_LABELS = {"coverage": "Coverage", "novelty": "Novelty", "diversity": "Diversity"}


def write_json(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


def _k(summary: dict[str, Any]) -> int:
    return int(summary["protocol"]["k"])


def _ordered(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    k = _k(summary)
    return sorted(summary["models"].items(), key=lambda kv: -kv[1][f"ndcg@{k}"]["mean"])


def plot_png(summary: dict[str, Any]) -> bytes:
    """Bar charts of NDCG@K and Recall@K (mean, std over seeds as error bars) and NDCG@K by
    user-activity bucket, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = _k(summary)
    models = _ordered(summary)
    names = [n for n, _ in models]
    colours = [
        "#d62728" if m["default"] else ("#7f7f7f" if m["peer"] else "#1f77b4") for _, m in models
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.45 * len(names) + 2.5))
    for ax, metric in zip(axes[:2], (f"ndcg@{k}", f"recall@{k}"), strict=True):
        means = [m[metric]["mean"] for _, m in models]
        stds = [m[metric]["std"] for _, m in models]
        ax.barh(names, means, xerr=stds, color=colours, capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric.upper()} (mean ± std over seeds)")
        ax.grid(axis="x", alpha=0.3)
    ax = axes[2]
    counts = bucket_users(summary)
    ticks = [f"{b}\n({_users(n)} users)" for b, n in counts.items()]
    for name, m in models:
        buckets = m.get("by_activity", {})
        values = [
            float("nan") if n == 0 else buckets.get(b, {}).get(f"ndcg@{k}")
            for b, n in counts.items()
        ]  # an empty bucket is a gap in the line, not a zero
        ax.plot(
            ticks,
            [v if v is not None else float("nan") for v in values],
            marker="o",
            label=name,
            linewidth=2.5 if m["default"] else 1.0,
        )
    for x, n in enumerate(counts.values()):
        if n == 0:
            ax.axvspan(x - 0.4, x + 0.4, color="#eeeeee", zorder=0)
            ax.annotate(
                "no test users",
                (x, 0.5),
                xycoords=("data", "axes fraction"),
                ha="center",
                rotation=90,
                fontsize=8,
                color="#777777",
            )
    ax.set_xlabel("training items per user (test users per seed)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("by user activity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    p = summary["protocol"]
    fig.suptitle(f"{p['dataset']}: {p['split']} split, seeds {p['seeds']}, K={k}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _cell(stats: dict[str, Any], digits: int = 4) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    k = _k(summary)
    header = [
        "model",
        f"NDCG@{k}",
        f"Recall@{k}",
        f"MAP@{k}",
        f"HitRate@{k}",
        f"Coverage@{k}",
        f"Novelty@{k}",
        f"Diversity@{k}",
        "seconds",
    ]
    rows = []
    for name, m in _ordered(summary):
        label = name + (" (default)" if m["default"] else "") + (" [peer]" if m["peer"] else "")
        rows.append(
            [
                label,
                _cell(m[f"ndcg@{k}"]),
                _cell(m[f"recall@{k}"]),
                _cell(m[f"map@{k}"]),
                _cell(m[f"hitrate@{k}"], 3),
                _cell(m[f"coverage@{k}"], 3),
                _cell(m[f"novelty@{k}"], 2),
                _cell(m[f"diversity@{k}"], 3),
                f"{m['seconds']:.1f}",
            ]
        )
    return header, rows


def bucket_users(summary: dict[str, Any]) -> dict[str, float]:
    """Test users per activity bucket (mean per seed), in bucket order; every model is scored
    on the same users, so the first model that has a bucket gives its count."""
    out: dict[str, float] = {}
    for _, m in _ordered(summary):
        for b, v in m.get("by_activity", {}).items():
            out.setdefault(b, float(v.get("users", 0) or 0))
    return out


def _users(n: float) -> str:
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def _bucket_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Models x activity buckets; each bucket's header gives its test users, and a bucket
    without test users reads "no users", never a score."""
    k = _k(summary)
    models = _ordered(summary)
    counts = bucket_users(summary)
    header = ["model"] + [f"{b} items ({_users(n)} users)" for b, n in counts.items()]
    rows = []
    for name, m in models:
        cells = []
        for b, n in counts.items():
            v = m.get("by_activity", {}).get(b, {}).get(f"ndcg@{k}")
            cells.append("no users" if n == 0 else ("" if v is None else f"{v:.4f}"))
        rows.append([name, *cells])
    return header, rows


def _verdict(summary: dict[str, Any]) -> str:
    if "default_model" not in summary:
        return ""
    k = _k(summary)
    name = summary["default_model"]
    lines = []
    for other, c in summary["default_vs_others"].items():
        mark = "beats" if c["beats"] else "does not beat"
        lines.append(
            f"- {name} {mark} {other}: NDCG@{k} margin {c['ndcg_margin']:+.4f}, "
            f"larger std {c['larger_std']:.4f}"
        )
    return "\n".join(lines)


def markdown(summary: dict[str, Any], image_name: str | None) -> str:
    p = summary["protocol"]
    k = _k(summary)
    header, rows = _rows(summary)
    bheader, brows = _bucket_rows(summary)
    out = [f"# Evaluation: {p['dataset']}", ""]
    desc = f"Split **{p['split']}**"
    if p["split"] == "user-holdout":
        desc += (
            f": every user with at least {p.get('min_items')} items holds out "
            f"{p.get('test_fraction'):.0%} of them at random"
        )
    else:
        desc += f": the last {p.get('test_days')} days of listening are the test window"
    desc += (
        f"; seeds {p['seeds']}; K = {k}; {p['n_users']} users, {p['n_items']} items; "
        f"test users per seed {p['test_users']}. Training items are excluded from the "
        "ranking; mean ± standard deviation over seeds."
    )
    out += [desc, ""]
    if image_name:
        out += [f"![NDCG and recall per model]({image_name})", ""]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", f"## NDCG@{k} by user activity (training items per user; test users per seed)", ""]
    out += ["| " + " | ".join(bheader) + " |", "|" + "---|" * len(bheader)]
    out += ["| " + " | ".join(r) + " |" for r in brows]
    verdict = _verdict(summary)
    if verdict:
        out += ["", "## The default model against the others", "", verdict]
    out += ["", "## Models", ""]
    for name, m in _ordered(summary):
        out.append(f"- **{name}**: {m['description']} `{json.dumps(m['params'], default=str)}`")
    return "\n".join(out) + "\n"


def html_page(summary: dict[str, Any], png: bytes) -> str:
    p = summary["protocol"]
    header, rows = _rows(summary)
    bheader, brows = _bucket_rows(summary)

    def table(h: list[str], rs: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in h)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rs
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    img = base64.b64encode(png).decode()
    verdict = html.escape(_verdict(summary)).replace("\n", "<br>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Evaluation: {html.escape(str(p['dataset']))}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>Evaluation: {html.escape(str(p['dataset']))}</h1>"
        f"<p>{html.escape(json.dumps(p, default=str))}</p>"
        f"<img alt='NDCG and recall per model' src='data:image/png;base64,{img}'>"
        f"{table(header, rows)}<h2>NDCG by user activity</h2>{table(bheader, brows)}"
        f"<h2>The default model against the others</h2><p>{verdict}</p></body></html>\n"
    )


def write_report(summary: dict[str, Any], path: str | Path) -> list[Path]:
    """Markdown (``.md``, with a PNG plot beside it) or HTML (``.html``, plot inline).

    Returns the files written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = plot_png(summary)
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(html_page(summary, png))
        return [path]
    image = path.with_suffix(".png")
    image.write_bytes(png)
    path.write_text(markdown(summary, image.name))
    return [path, image]
