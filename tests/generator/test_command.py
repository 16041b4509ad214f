import pytest

from hub.generator import layout
from hub.generator.__main__ import main


def test_command_writes_the_data_set_and_prints_row_counts(tmp_path, capsys):
    assert main(["--people", "50", "--seed", "9", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert layout.TRUTH in printed
    assert "rows for 50 people" in printed
    assert (tmp_path / "demo" / layout.TAOBAO_ORDERS).exists()


def test_command_refuses_a_people_count_out_of_range(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--people", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--people" in capsys.readouterr().err
