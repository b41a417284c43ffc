"""The one table shape every command prints, rendered four ways with the same numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from medbench.commands.output import (
    Column,
    OutputTable,
    format_value,
    rich_table,
    to_csv,
    to_json,
    to_markdown,
)


@pytest.fixture
def table() -> OutputTable:
    t = OutputTable(
        "runs | demo",
        [Column("framework"), Column("test ACC", "percent"), Column("img/s", "float", 0, key="images_per_s")],
        caption="a caption",
    )
    t.add_row("torch", (0.9012, 0.0141), 8250.4)
    t.add_row("jax", (None, None), None)
    return t


def test_percent_and_mean_std_pairs_read_the_same_in_every_format(table):
    assert format_value(table.columns[1], (0.9012, 0.0141)) == "90.12 ± 1.41"
    assert format_value(table.columns[2], 8250.4) == "8,250"
    records = json.loads(to_json([table]))
    assert records[0] == {
        "framework": "torch",
        "test_acc_pct": 90.12,
        "test_acc_pct_std": 1.41,
        "images_per_s": 8250.4,
    }
    assert records[1] == {
        "framework": "jax",
        "test_acc_pct": None,
        "test_acc_pct_std": None,
        "images_per_s": None,
    }
    rows = list(csv.DictReader(io.StringIO(to_csv([table]))))
    assert rows[0]["test_acc_pct"] == "90.12" and rows[0]["test_acc_pct_std"] == "1.41"
    assert rows[1]["test_acc_pct"] == ""  # missing is empty in CSV, null in JSON, "-" for people


def test_markdown_is_a_pipe_table_with_escaped_cells(table):
    text = to_markdown([table])
    assert "**runs \\| demo**" in text
    assert "| framework | test ACC % | img/s |" in text and "|---|---:|---:|" in text
    assert "| torch | 90.12 ± 1.41 | 8,250 |" in text and "*a caption*" in text


def test_several_tables_are_named_in_json_and_titled_in_csv(table):
    other = OutputTable("files", [Column("size", "int")], [[28]], key="files")
    assert set(json.loads(to_json([table, other]))) == {"runs | demo", "files"}
    text = to_csv([table, other])
    assert text.startswith("# runs | demo\n") and "\n\n# files\nsize\n28\n" in text


def test_a_row_of_the_wrong_length_is_refused(table):
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        table.add_row("keras", 0.5)


def test_a_p_value_below_what_its_digits_show_reads_as_an_upper_bound():
    p = Column("p (t)", "p", 4, key="p_t")
    shown = {v: format_value(p, v) for v in (0.0, 3e-7, 0.0001, 0.0456, 1.0, None)}
    assert shown == {
        0.0: "<0.0001",
        3e-7: "<0.0001",
        0.0001: "0.0001",
        0.0456: "0.0456",
        1.0: "1.0000",
        None: "-",
    }
    table = OutputTable("pairs", [p], [[0.0]])
    assert json.loads(to_json([table])) == [{"p_t": 0.0}] and "p_t\n0.0\n" in to_csv(
        [table]
    )  # scripts: the value
    assert "| <0.0001 |" in to_markdown([table])


def test_a_column_for_scripts_alone_stays_out_of_the_tables_people_read():
    columns = [Column("verdict"), Column("correction", for_people=False), Column("p (t)", "p", 4, key="p_t")]
    table = OutputTable(
        "pairs (p Holm-adjusted over 2 comparisons)", columns, [["different", "holm", 0.00007]]
    )
    assert "holm" not in to_markdown([table]) and "| different | <0.0001 |" in to_markdown([table])
    assert json.loads(to_json([table])) == [{"verdict": "different", "correction": "holm", "p_t": 0.00007}]
    assert "verdict,correction,p_t\ndifferent,holm,7e-05\n" in to_csv([table])
    console = Console(width=200, record=True)
    console.print(rich_table(table))
    terminal = console.export_text()
    assert "holm" not in terminal and "correction" not in terminal and "<0.0001" in terminal
