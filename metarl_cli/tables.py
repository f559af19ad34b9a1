"""The rich tables the commands print on stdout, each fitted to the terminal's width: `metarl eval`'s
(a row per number of adaptation steps, or for an RL^2 trial a row per method), `metarl report`'s and
`metarl envs`'."""

from __future__ import annotations

import itertools
from pathlib import Path

from rich import box
from rich.cells import cell_len
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from metarl_cli.training.progress import stdout_console

out = stdout_console()  # tables go to stdout; progress bars and messages to stderr


def interval(bounds, spec: str = "g") -> str:
    """A range's bounds as `[lo, hi]`, each formatted by `spec`."""
    return f"[{bounds[0]:{spec}}, {bounds[1]:{spec}}]"


def _result_table(run_dir: Path, result, what: str) -> Table:
    """An empty table titled with the run, what it shows, the checkpoint, and the papers cited."""
    sources = sorted({row.source for row in result.published})
    done, planned = result.progress
    unfinished = f"; the run, unfinished, has done {done} of {planned}" if done < planned else ""
    return Table(
        title=f"{escape(str(run_dir))}\n{what}\n(mean ± 95% CI; {result.checkpoint} checkpoint, iteration {result.iteration}{unfinished})",
        caption=f"published: {'; '.join(sources)}" if sources else None,
    )


def score_label(score_name: str) -> str:
    """How tables name what an evaluation scores (`Algorithm.score_name`): "return", or "query MSE",
    as the training metric names it (`run_outputs.TRAINING_METRICS`)."""
    return "query MSE" if score_name == "mse" else score_name


def figures(x: float) -> str:
    """A number as the report and the progress bar show it: three significant figures, or the whole
    number where those would take an exponent below a million (a return of -1654.3 as -1654, not
    -1.65e+03; 999.6 as 1000)."""
    text = f"{x:.3g}"
    return f"{x:.0f}" if "e+" in text and abs(x) < 999_999.5 else text


def _diverged_cell(diverged: int, of: int) -> str:
    return f"[red]diverged on {diverged}/{of}[/]"


def mean_ci(summary, tasks: int, digits: int = 2) -> str:
    """A cell of an eval table: mean ± 95% CI (in powers of ten from a million up, so that a run
    gone astray still fits its cell), or how many of the `tasks` diverged."""
    if summary.diverged:
        return _diverged_cell(summary.diverged, tasks)
    form = "e" if max(abs(summary.mean), abs(summary.ci95)) >= 1e6 else "f"
    return f"{summary.mean:.{digits}{form}} ± {summary.ci95:.{digits}{form}}"


def _natural_width(table: Table) -> int:
    """The columns `table` takes unsqueezed (rich measures against the terminal's width otherwise)."""
    return _measure(table).maximum


def _least_width(table: Table) -> int:
    """The fewest columns `table` takes with each column as narrow as its longest word (or fixed width)."""
    return _measure(table).minimum


def _measure(table: Table) -> Measurement:
    return Measurement.get(out, out.options.update_width(10_000), table)


def _grid_tables(make_table, corner: str, row_labels: list[str], column_labels: list[str], cells: list[list[str]],
                 min_widths: dict[int, int] | None = None) -> list[Table]:
    """The grid (`cells`: a list per row label) as one table from `make_table()`, or, where that is
    wider than the terminal, as several one after another, each with the row labels (kept whole: they
    carry tuned settings) and as many of the columns as fit (column j at least `min_widths[j]` wide);
    the title on the first, the caption on the last."""

    def build(columns: list[int]) -> Table:
        table = make_table()
        table.add_column(corner, no_wrap=True)
        for j in columns:
            table.add_column(column_labels[j], justify="right", min_width=(min_widths or {}).get(j))
        for label, row in zip(row_labels, cells):
            table.add_row(label, *(row[j] for j in columns))
        return table

    chunks = [[]]
    for j in range(len(column_labels)):
        if chunks[-1] and _natural_width(build(chunks[-1] + [j])) > out.width:
            chunks.append([])
        chunks[-1].append(j)
    tables = [build(columns) for columns in chunks]
    for table in tables[1:]:
        table.title = None
    for table in tables[:-1]:
        table.caption = None
    return tables


def eval_tables(run_dir: Path, result) -> list[Table]:
    """One row per number of adaptation steps k, one column per method, then the published columns."""
    adapted = "after k adaptation steps" if result.steps else "without adaptation"
    tasks = f"{result.tasks} episodes of its one task" if result.one_task else f"{result.tasks} '{result.split}' tasks"
    what = f"{score_label(result.score_name)} on {tasks} {adapted}"
    digits = 3 if result.score_name == "mse" else 2
    cells = [[mean_ci(rows[j], result.tasks, digits) for rows in result.methods.values()]
             + [f"[dim]{row.values[j]:.2f}[/]" if j in row.values else "" for row in result.published]
             for j in range(result.steps + 1)]
    columns = list(result.methods) + [f"[dim]{row.label}[/]" for row in result.published]
    steps = [str(j) for j in range(result.steps + 1)]
    return _grid_tables(lambda: _result_table(run_dir, result, what), "k", steps, columns, cells)


def trial_tables(run_dir: Path, result) -> list[Table]:
    """RL^2 runs: one row per method, a column per episode of the trial, the trial's total, the paper's total."""
    what = f"return on {result.tasks} '{result.split}' tasks, one trial each, memory carried across its episodes"
    episodes = result.steps + 1

    def paper_cell(row) -> str:
        return f"[dim]{row.values.get('total', row.values.get(0)):.1f} ({row.label})[/]"

    def paper(method: str) -> str:
        row = next((r for r in result.published if r.method and method.startswith(r.method)), None)
        return "" if row is None else paper_cell(row)

    columns = ([f"episode {j + 1}" for j in range(episodes)] if episodes > 1 else []) + ["trial total"]
    columns += ["[dim]paper[/]"] if result.published else []
    methods, cells = [], []
    for name, rows in result.methods.items():
        per_episode = [mean_ci(r, result.tasks) for r in rows] if episodes > 1 else []
        methods.append(name)
        cells.append(per_episode + [mean_ci(result.totals[name], result.tasks)] + ([paper(name)] if result.published else []))
    for row in result.published:  # published methods we do not run
        if not any(name.startswith(row.method) for name in result.methods):
            methods.append(f"[dim]{row.method}[/]")
            cells.append([""] * (len(columns) - 1) + [paper_cell(row)])
    # The paper's column is as wide as its widest "(label)": a cell wraps between number and label, never inside.
    paper_width = {len(columns) - 1: max(len(f"({r.label})") for r in result.published)} if result.published else None
    return _grid_tables(lambda: _result_table(run_dir, result, what), "method", methods, columns, cells, paper_width)


def print_evaluation(run_dir: Path, result) -> None:
    """`metarl eval`'s tables of `result` (an `evaluate.EvalResult`)."""
    for table in (trial_tables if result.trial else eval_tables)(run_dir, result):
        out.print(table)


def report_table(rows, title: str, with_run: bool) -> Table:
    """The report's rows as a table: a run's name on its first row only, a rule between runs. One
    run's table, `with_run` False, is squeezed where the terminal is narrower than it: its cells
    wrap rather than lose their ends, between words where every column can take its longest word,
    else anywhere. (A table `with_run` that is too wide is printed as a table per run instead.)"""
    labels = ["run", "split", "method", "metric"][0 if with_run else 1:] + ["seeds", "n", "estimate", "95% CI"]
    body = []
    for i, row in enumerate(rows):
        first_of_run = i == 0 or rows[i - 1].run != row.run
        if row.diverged:
            summary = [_diverged_cell(row.diverged, row.n), "n/a"]
        elif not row.n:  # a training row with no value (its label says why)
            summary = ["none", "n/a"]
        else:
            summary = [f"{figures(row.estimate)} ({row.estimator})", f"[{figures(row.low)}, {figures(row.high)}]" if row.n > 1 else "n/a (one value)"]
        cells = [row.split, row.method, row.metric, str(row.seeds), str(row.n), *summary]
        body.append((first_of_run and i > 0, ([escape(row.run) if first_of_run else ""] if with_run else []) + cells))
    texts = [[Text.from_markup(text).plain for text in [label] + [cells[j] for _, cells in body]] for j, label in enumerate(labels)]
    longest = [max(cell_len(text) for text in column) for column in texts]
    words = [max(cell_len(word) for text in column for word in text.split() or [""]) for column in texts]

    def build(widths: list[int] | None = None) -> Table:
        narrow = widths is not None
        table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0 if narrow else 1), show_edge=not narrow)
        for j, label in enumerate(labels):
            table.add_column(label, justify="left" if j < len(labels) - 4 else "right", overflow="fold", width=widths[j] if narrow else None)
        for new_run, cells in body:
            if new_run:
                table.add_section()
            table.add_row(*cells)
        return table

    table = build()
    if with_run or _natural_width(table) <= out.width:
        return table
    # Narrower: one space between columns, each column as wide as its longest word, then whole the
    # columns that need least room for it, the room left to the next; where even the words do not
    # fit, rich's widths, cut anywhere.
    room = out.width - (_natural_width(build([1] * len(labels))) - len(labels)) - sum(words)
    if room < 0:
        return build([None] * len(labels))
    widths = list(words)
    for j in sorted(range(len(labels)), key=lambda j: longest[j] - words[j]):
        widths[j] += min(room, longest[j] - words[j])
        room -= widths[j] - words[j]
    return build(widths)


ENVS_TITLE = ("task families (train and test draw from the train range, metamaze's test from cells train never draws; "
              "ood from the held-out ranges)")


def _envs_table(families, numbers_whole: bool) -> Table:
    """The families' parameters and ranges; with `numbers_whole`, the parameter column at least as wide
    as the longest name and the number columns unwrapped, else the parameter column exactly that wide."""
    table = Table(title=ENVS_TITLE,
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("env", no_wrap=True)  # the names to type stay whole at any width
    # One space of padding beside the box's one-space divider and no outer edge: on an 80-column
    # terminal no interval is broken.
    longest = max(len(r.name) for fam in families for r in fam.ranges)
    table.add_column("parameter", min_width=longest if numbers_whole else None, width=None if numbers_whole else longest)
    for col in ("default", "train / test", "ood"):  # too narrow for a number: it folds (narrower than the words: envs lists)
        table.add_column(col, no_wrap=numbers_whole, overflow="fold")
    for name, rows in _envs_rows(families):
        for i, row in enumerate(rows):
            table.add_row(name if i == 0 else "", *row)
        table.add_section()
    return table


def _envs_rows(families) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Each family's name and rows (parameter, default, train / test, ood)."""
    from metarl_cli.families import Family

    rows = []
    for fam in families:
        mine = []
        if isinstance(fam, Family) and fam.draw_text:
            mine.append((fam.draw_text, "", "drawn per task", "see parameter" if "ood" in fam.splits else "none"))
        elif fam.one_task:
            mine.append(("(none: one task)", "", "", ""))
        for r in fam.ranges:
            ood = "\n∪ ".join(map(interval, r.ood)) or "as train"  # an interval a line
            mine.append((r.name, f"{r.default:g}", interval(r.train), ood))
        rows.append((fam.name, mine))
    return rows


def _print_envs_list(families) -> None:
    """The envs table's contents as a list (a family's name, then each parameter over its values, one
    a line, an ood range's intervals one a line as in the table), for a terminal too narrow for the
    table's columns to hold their words."""
    out.print(f"{ENVS_TITLE}:", highlight=False)
    for name, rows in _envs_rows(families):
        out.print(f"[bold]{name}[/]", highlight=False)
        for parameter, default, train, ood in rows:
            out.print(Padding(parameter, (0, 0, 0, 2)), highlight=False)
            first_ood, *more_ood = ood.split("\n") if ood else [""]
            values = [f"default {default}" if default else "", f"train / test {train}" if train else "",
                      f"ood {first_ood}" if ood else "", *(f"  {more}" for more in more_ood)]
            for value in filter(None, values):
                out.print(Padding(value, (0, 0, 0, 4)), highlight=False)


def print_report(rows, title: str) -> None:
    """The report's rows as one table, or, on a terminal too narrow for it, a table per run, its name
    as the title (never cut), its cells wrapped where still too wide."""
    table = report_table(rows, title, with_run=True)
    if _natural_width(table) <= out.width:
        out.print(table)
        return
    out.print(f"[italic]{title}[/]")
    for run, run_rows in itertools.groupby(rows, key=lambda row: row.run):
        out.print(report_table(list(run_rows), escape(run), with_run=False))


def print_envs(families) -> None:
    """`metarl envs`: the families' parameters and ranges, as a table or (too narrow for one) a list,
    then a line on each family."""
    from metarl_cli.families import RegressionFamily

    # The numbers never wrap where the terminal is as wide as the table with its parameter column
    # at the longest name (80 columns do): a family's description wraps within that column instead.
    # On a narrower terminal the numbers wrap too, rather than run off its edge.
    narrow = _envs_table(families, numbers_whole=False)
    if _least_width(narrow) > out.width:  # rich would fold its headers a letter a line, or drop columns
        _print_envs_list(families)
    else:
        out.print(narrow if _natural_width(narrow) > out.width else _envs_table(families, numbers_whole=True))
    for fam in families:
        if isinstance(fam, RegressionFamily):
            shape = f"regression, x in {interval(fam.x_range)}"
        else:
            shape = f"{fam.horizon}-step episodes, " + (f"{fam.action_dim} discrete actions" if fam.discrete else f"{fam.action_dim}-d continuous actions")
        out.print(f"[bold]{fam.name}[/] ({shape}): {fam.summary}", highlight=False)
