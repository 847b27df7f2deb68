"""Benchmarks refuse counts and durations they cannot run with, before any work starts."""

import pytest

from bench import marts_bench, realtime_bench


@pytest.mark.parametrize(
    ("module", "argv", "says"),
    [
        (marts_bench, ["--repeat", "0"], "argument --repeat: 0 is not at least 1"),
        (marts_bench, ["--images", "many"], "argument --images: 'many' is not a whole number"),
        (marts_bench, ["--days", "-3"], "argument --days: -3 is not at least 1"),
        (realtime_bench, ["--uploads", "0"], "argument --uploads: 0 is not at least 1"),
        (realtime_bench, ["--every", "-1"], "argument --every: -1 is not zero or more seconds"),
        (realtime_bench, ["--every", "nan"], "argument --every: nan is not zero or more seconds"),
    ],
)
def test_bad_arguments_stop_with_a_clear_message(module, argv, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        module.main(argv)
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err
