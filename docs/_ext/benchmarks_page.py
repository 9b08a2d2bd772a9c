"""Generate the benchmarks page from ``benchmarks/RESULTS.md``, with plots.

At the start of every build, ``benchmarks/RESULTS.md`` is copied to
``docs/generated/benchmarks.md``. A table preceded by a comment line

    <!-- plot: COLUMN [log] -->

gets a horizontal bar chart of that column against the table's first column
(one bar per row: our methods and the peers measured in the same run),
inserted after the table.
"""

import re
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_MARKER = re.compile(r"<!--\s*plot:\s*(.+?)\s*-->")


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _number(text):
    match = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text.replace(",", ""))
    return float(match.group()) if match else None


def _plot(header, rows, column, log, path):
    index = header.index(column)
    labels, values = [], []
    for row in rows:
        value = _number(row[index]) if index < len(row) else None
        if value is not None:
            labels.append(re.sub(r"[`*]", "", row[0]))
            values.append(value)
    if not values:
        return False
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(values) + 1.0))
    colors = ["#1f77b4" if label.lower().startswith(("hnmf", "hyperspy-hnmf", "ours"))
              else "#ff7f0e" for label in labels]
    axis.barh(range(len(values)), values, color=colors)
    axis.set_yticks(range(len(values)), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(column)
    if log:
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def render(results, output_folder):
    """Markdown of the benchmarks page, writing its plots into ``output_folder``.

    Parameters
    ----------
    results : str
        The text of ``benchmarks/RESULTS.md``.
    output_folder : pathlib.Path

    Returns
    -------
    str
    """
    lines = results.splitlines()
    out, count, i = [], 0, 0
    while i < len(lines):
        marker = _MARKER.search(lines[i])
        if not marker:
            out.append(lines[i])
            i += 1
            continue
        spec = marker.group(1).split()
        log = spec[-1] == "log"
        column = " ".join(spec[:-1] if log else spec)
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("|"):
            out.append(lines[i])
            i += 1
        table = []
        while i < len(lines) and lines[i].strip().startswith("|"):
            table.append(lines[i])
            i += 1
        out.extend(table)
        header = _cells(table[0]) if table else []
        if column in header:
            count += 1
            name = f"benchmark_{count}.png"
            if _plot(header, [_cells(row) for row in table[2:]], column, log,
                     output_folder / name):
                out.extend(["", f"![{column}]({name})", ""])
    return "\n".join(out) + "\n"


def _generate(app):
    docs = Path(app.srcdir)
    output = docs / "generated"
    output.mkdir(exist_ok=True)
    results = (docs.parent / "benchmarks" / "RESULTS.md").read_text()
    text = render(results, output)
    target = output / "benchmarks.md"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True}
